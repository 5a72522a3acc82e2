"""The Dagster UI of the project: `berka-dev` (`make dev`) and the helper tests use to drive it."""
