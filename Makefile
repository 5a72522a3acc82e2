# The two commands of the README: `make demo` and `make test`. Both bootstrap first.
.PHONY: bootstrap demo test test-fast test-not-slow soak-smoke up down status lint bench

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/berka-demo $(ARGS)

test: bootstrap
	.venv/bin/python -m pytest $(PYTEST_ARGS)

# No server at all (pure functions, in-memory fakes, static checks of docker/): under a minute.
test-fast: bootstrap
	.venv/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

# Everything but the tests of a minute or more (kills, restarts, clusters, long streams).
test-not-slow: bootstrap
	.venv/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Three and a half minutes of the soak (bench/soak.py) on the running stack, with one fault: a Kafka broker
# restart, which `berka-stack watch` repairs. It proves the harness, the recovery, both paths
# equal to the oracle and no torn read. Half-minute windows are noisy, so the latency ratio is
# looser than the hour's, and memory is not judged: minutes measure a JVM's warm-up, not a leak
# (the hour-long run does, bench/RESULTS.md).
soak-smoke: bootstrap
	.venv/bin/berka-stack up
	.venv/bin/python bench/soak.py --minutes 3.5 --rate 20 --window-minutes 0.5 \
		--sample-seconds 10 --fault-every-minutes 0.25 --recovery-bound 105 \
		--fault "kafka restart" --latency-ratio 2 --rss-ratio 0

up: bootstrap
	.venv/bin/berka-stack up

down:
	.venv/bin/berka-stack down

status:
	.venv/bin/berka-stack status

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/lint-imports

# The Dagster UI, daemon and code location on http://127.0.0.1:3000 with the Kafka sensor on
# (berka_stack/dev.py). ARGS="--port 3001 --no-sensor" etc.; Ctrl-C stops all of it.
.PHONY: dev
dev: bootstrap
	.venv/bin/berka-dev $(ARGS)
