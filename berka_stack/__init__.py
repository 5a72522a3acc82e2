"""Developer tooling, never imported by the pipeline: `berka-stack` (the embedded servers: Kafka,
MariaDB, Spark Connect, Thrift Server, S3), `berka-dev` (`dagster dev` with the sensors on) and
`berka-demo` (the bounded end-to-end run)."""
