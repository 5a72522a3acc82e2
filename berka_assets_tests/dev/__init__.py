"""Tests of the Dagster UI part: berka-dev, MySQL instance storage, GraphQL, the browser."""
