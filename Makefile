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

# Five minutes of the soak (bench/soak.py) on the running stack, with one fault: kill -9 of the
# streaming job, which `berka-stack watch` brings back. It proves the harness, the recovery, both
# paths equal to the oracle and no torn read; latency and memory flatness need the long run's
# 5-minute windows (bench/RESULTS.md), so the 1-minute windows here get looser ratios.
soak-smoke: bootstrap
	.venv/bin/berka-stack up
	.venv/bin/python bench/soak.py --minutes 5 --rate 20 --fault-every-minutes 1 \
		--window-minutes 1 --sample-seconds 10 --fault "kill -9 streaming-job" \
		--latency-ratio 2 --rss-ratio 1.5

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
