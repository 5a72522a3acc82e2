"""The continuous Structured Streaming job (spark-submit spark_streaming/job.py)."""
