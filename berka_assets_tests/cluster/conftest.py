"""Package fixtures: a Spark standalone cluster and a 3-node Kafka KRaft cluster on 127.0.0.1.

They run beside the local stack, on their own ports and in their own var dir (var/cluster-test,
or BERKA_CLUSTER_TEST_DIR), and are stopped after the last test of this folder, also when one
fails. Of the local stack only MariaDB is used (Hive metastore, batch ledger, reference tables);
the session's `stack` fixture starts it when it is down (the root conftest runs this folder
last). The pipeline reaches the clusters through its ordinary environment variables only
(BERKA_SPARK_MASTER, BERKA_SPARK_REMOTE, BERKA_KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from berka_assets.assets.reference import reference_tables
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.factory import build_resources
from berka_assets.resources.mysql import MySQLResource
from berka_assets_tests.cluster.clusters import (
    KafkaCluster,
    SparkStandaloneCluster,
    isolated_var_dir,
    kafka_cluster,
    spark_standalone_cluster,
)
from berka_assets_tests.cluster.support import NOTES, SAMPLE, TIMINGS
from berka_core.config import (
    REPO_ROOT,
    Settings,
    get_settings,
    load_secrets_into_environment,
    secret,
)


@pytest.fixture(scope="package")
def mariadb(stack: Settings) -> Settings:
    """The local stack's settings, once its MariaDB answers."""
    load_secrets_into_environment()
    settings = get_settings()
    try:
        mysql = MySQLResource(password=secret(settings.mysql.password_env))
        with mysql.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure means the same to the user
        pytest.fail(f"The local stack's MariaDB ({settings.mysql.host}:{settings.mysql.port}) "
                    f"is needed for the Hive metastore and the ledger: {error}. Start it with "
                    "`berka-stack up mariadb`.")
    return settings


@pytest.fixture(scope="package")
def cluster_home(mariadb: Settings) -> Iterator[Path]:
    """The clusters' own var dir (the local stack's var dir is left alone)."""
    path = Path(os.environ.get("BERKA_CLUSTER_TEST_DIR", REPO_ROOT / "var" / "cluster-test"))
    with isolated_var_dir(path) as home:
        yield home


@dataclass
class Clusters:
    spark: SparkStandaloneCluster
    kafka: KafkaCluster


@pytest.fixture(scope="package")
def clusters(cluster_home: Path) -> Iterator[Clusters]:
    """Both clusters, started side by side; stopped after the folder's last test."""

    def timed(name: str, manager):
        started = time.monotonic()
        entered = exits.enter_context(manager)
        TIMINGS[f"{name} up"] = time.monotonic() - started
        return entered

    with contextlib.ExitStack() as exits:
        with ThreadPoolExecutor(max_workers=2) as pool:
            spark = pool.submit(timed, "spark cluster (master + 2 workers)",
                                spark_standalone_cluster(workers=2, worker_cores=1,
                                                         worker_memory="1g"))
            kafka = pool.submit(timed, "kafka cluster (3 nodes)", kafka_cluster(nodes=3))
        # Raises if either failed; leaving the ExitStack stops whichever did start.
        yield Clusters(spark.result(), kafka.result())


@pytest.fixture(scope="package")
def spark_cluster(clusters: Clusters) -> SparkStandaloneCluster:
    return clusters.spark


@pytest.fixture(scope="package")
def kafka3(clusters: Clusters) -> KafkaCluster:
    return clusters.kafka


@pytest.fixture(scope="package")
def cluster_env(spark_cluster: SparkStandaloneCluster,
                kafka3: KafkaCluster) -> Iterator[dict[str, str]]:
    """The pipeline's configuration pointed at both clusters, for this folder's tests."""
    environment = {
        **spark_cluster.environment(),
        **kafka3.environment(),
        # Small drivers: the machine also runs the local stack.
        "BERKA_SPARK_CONNECT_MEMORY": "1g",
        "BERKA_STREAMING_MEMORY": "1g",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment.items():
            patch.setenv(key, value)
        yield environment


@pytest.fixture(scope="package")
def reference_loaded(mariadb: Settings) -> None:
    """The sample's reference tables in MySQL (atomic swap; other tests load the same)."""
    resources = build_resources(mariadb)
    result = dg.materialize(
        [reference_tables],
        resources={
            "mysql": MySQLResource(password=secret(mariadb.mysql.password_env)),
            "berka_source": BerkaSourceResource(folder=str(SAMPLE), s3=resources["s3"]),
        },
    )
    assert result.success


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS or NOTES:
        terminalreporter.section("cluster timings and observations")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<52} {seconds:8.1f} s")
        for note in NOTES:
            terminalreporter.write_line(note)
