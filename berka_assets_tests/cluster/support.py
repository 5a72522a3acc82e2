"""Helpers shared by the cluster tests and their fixtures."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from berka_assets_tests.cluster.clusters import SparkStandaloneCluster, application_executors
from berka_assets_tests.streaming.harness import reset_spark_client
from berka_core.config import REPO_ROOT, Settings
from berka_stack import process
from berka_stack.spark import SparkConnectServer

SAMPLE = REPO_ROOT / "data" / "berka"
SAMPLE_TRANS = SAMPLE / "trans_prefix.asc"
# A second Spark Connect server, beside the local stack's on 15002.
CONNECT_REMOTE = "sc://127.0.0.1:15102"
CONNECT_APP = "berka-spark-connect"
# Measured durations and observations, printed in pytest's terminal summary.
TIMINGS: dict[str, float] = {}
NOTES: list[str] = []


def unique_topic() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@dataclass
class ConnectOnCluster:
    settings: Settings
    app_id: str


@contextlib.contextmanager
def connect_on_cluster(spark_cluster: SparkStandaloneCluster, *,
                       timing: str | None = None) -> Iterator[ConnectOnCluster]:
    """The project's SparkConnectServer, configured by BERKA_SPARK_REMOTE/BERKA_SPARK_MASTER only,
    as an application of the standalone cluster with an executor on each worker."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BERKA_SPARK_REMOTE", CONNECT_REMOTE)
        settings = Settings()
        assert settings.spark.master == spark_cluster.master_url
        server = SparkConnectServer(settings)
        reset_spark_client()  # this process talks to this server from now on
        started = time.monotonic()
        try:
            server.start()
            app = spark_cluster.application(CONNECT_APP)
            assert app is not None, spark_cluster.master.state()
            # Both workers' executors registered before any work is scheduled.
            process.wait_until(
                server.name,
                lambda: sum(e["id"] != "driver" and e["isActive"]
                            for e in application_executors(app["id"])) == 2,
                timeout=90, pid=server.pid(),
            )
            if timing:
                TIMINGS[timing] = time.monotonic() - started
            yield ConnectOnCluster(settings, app["id"])
        finally:
            reset_spark_client()
            server.stop()
