"""Spark I/O at the edges of the pipeline: Kafka ranges in, Hive tables out."""
