"""The pipeline without Dagster: the Berka data set, the Kafka messages, the transformations and
Spark I/O shared by both paths, the server clients and the producer library.

`berka_assets` (the Dagster code location) and `spark_streaming` (the spark-submit job) wire it;
neither it nor they import the developer tooling in `berka_stack` (.importlinter)."""
