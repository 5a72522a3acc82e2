# The two commands of the README: `make demo` and `make test`. Both bootstrap first.
.PHONY: bootstrap demo test test-fast test-not-slow up down status lint bench

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
