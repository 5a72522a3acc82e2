"""Clients of the servers (Kafka, MySQL) without Dagster: the Dagster resources and the
spark-submit streaming job share them."""
