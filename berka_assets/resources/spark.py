"""Spark for Dagster runs: a session on the long-running Spark Connect server.

A new local JVM per run costs 15-20 s before any work; a Connect session costs ~1 s (README,
"Spark"). Setting BERKA_SPARK_REMOTE to an empty string makes runs start a local Spark instead,
configured by the same spark-defaults.conf (SPARK_CONF_DIR).
"""

from __future__ import annotations

import socket

import dagster as dg
from dagster_pyspark import PySparkResource

from berka_core.config import SparkSettings, get_settings


class ReleasingPySparkResource(PySparkResource):
    """dagster-pyspark's resource on Spark Connect, with a session of its own that it gives
    back when the step is done: the server otherwise keeps a session, with its temp views,
    cached plans and uploaded jars, for an hour after its client is gone, and the sensor
    starts a run every few seconds. Its own (not the process's default session, which
    dagster-pyspark takes) so that releasing it cannot stop a session someone else uses."""

    client_max_retries: int = 6

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from pyspark.sql import SparkSession
        from pyspark.sql.connect.client.retries import DefaultPolicy

        session = SparkSession.builder.remote(self.spark_config["spark.remote"]).create()
        session.client.set_retry_policies([
            DefaultPolicy(max_retries=self.client_max_retries, max_backoff=5_000)])
        self._spark_session = session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._spark_session is not None:
            self._spark_session.stop()
            self._spark_session = None


def spark_resource(settings: SparkSettings | None = None) -> PySparkResource:
    settings = settings or get_settings().spark
    if settings.remote:
        return ReleasingPySparkResource(spark_config={"spark.remote": settings.remote},
                                        client_max_retries=settings.client_max_retries)
    return PySparkResource(spark_config={"spark.master": settings.master})


def connect_endpoint_reachable(remote: str, timeout: float = 3.0) -> bool:
    """Whether a Spark Connect endpoint (`sc://host:port/...`) accepts connections."""
    host, _, port = remote.removeprefix("sc://").split("/")[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 15002)), timeout=timeout):
            return True
    except OSError:
        return False
