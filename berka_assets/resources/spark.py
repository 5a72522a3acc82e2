"""Spark for Dagster runs: a session on the long-running Spark Connect server.

A new local JVM per run costs 15-20 s before any work; a Connect session costs ~1 s (README,
"Spark"). Setting BERKA_SPARK_REMOTE to an empty string makes runs start a local Spark instead,
configured by the same spark-defaults.conf (SPARK_CONF_DIR).
"""

from __future__ import annotations

from dagster_pyspark import PySparkResource

from berka_assets.config import SparkSettings


def spark_resource(settings: SparkSettings | None = None) -> PySparkResource:
    settings = settings or SparkSettings()
    if settings.remote:
        return PySparkResource(spark_config={"spark.remote": settings.remote})
    return PySparkResource(spark_config={"spark.master": settings.master})
