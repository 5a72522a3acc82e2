"""spark_streaming/job.py, unchanged, as an application of the Spark standalone cluster, reading
the 3-broker Kafka cluster: the same trends as the independent computation, work on both workers.

Runs after test_microbatch_on_clusters.py has stopped its Connect server: each worker has one
core, and a standalone application keeps its executors while it lives. So the results are read
once the streaming job has stopped, through a Connect server on the cluster again (never through
the local stack's, which other work may stop at any time).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from berka_assets_tests import independent
from berka_assets_tests.cluster.clusters import KafkaCluster, SparkStandaloneCluster
from berka_assets_tests.cluster.support import (
    NOTES,
    SAMPLE,
    SAMPLE_TRANS,
    TIMINGS,
    connect_on_cluster,
    unique_topic,
)
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline, as_plain, spark_session
from berka_core.config import Settings
from berka_stack import process
from berka_stack.spark import StreamingJob

pytestmark = pytest.mark.integration

STREAMING_APP = "berka-streaming"


def test_streaming_job_on_the_cluster_gives_exact_trends(
    spark_cluster: SparkStandaloneCluster, kafka3: KafkaCluster, cluster_env: dict[str, str],
    reference_loaded: None, tmp_path: Path,
) -> None:
    count = 12_000
    settings = Settings()
    assert settings.spark.master == spark_cluster.master_url
    topic = unique_topic()
    kafka3.create_topic(topic, partitions=3)
    stream = Pipeline(settings, SAMPLE, topic=topic)  # producer, and the stream's Hive database
    assert stream.kafka.bootstrap_servers == kafka3.bootstrap_servers
    assert stream.produce_file(SAMPLE_TRANS, limit=count) == count
    job = StreamingJob(
        settings,
        "--topic", topic,
        "--hive-database", stream.hive_database,
        "--checkpoint", str(tmp_path / "checkpoint"),
        "--trigger-seconds", "1",
        "--max-offsets-per-trigger", "6000",
    )
    ledger = stream.ledger()
    streamed = False
    started = time.monotonic()
    try:
        job.start()
        TIMINGS["B: streaming job submitted, query started"] = time.monotonic() - started
        app = spark_cluster.application(STREAMING_APP)
        assert app is not None, spark_cluster.master.state()
        deadline = time.monotonic() + 240
        while ledger.totals(topic).consumed < count or ledger.invisible_batches():
            assert job.pid() is not None, process.tail(job.log_path())
            assert time.monotonic() < deadline, process.tail(job.log_path())
            time.sleep(0.5)
        TIMINGS["B: streaming job up to all 12,000 rows committed"] = time.monotonic() - started
        placement = spark_cluster.executors_by_worker(app["id"])
        assert sorted(len(ids) for ids in placement.values()) == [1, 1], placement
        tasks = spark_cluster.completed_tasks_by_worker(app["id"])
        NOTES.append(f"B: completed tasks per worker (streaming app): {tasks}")
        assert len(tasks) == 2 and all(n > 0 for n in tasks.values()), tasks
        totals = ledger.totals(topic)
        assert (totals.consumed, totals.enriched, totals.quarantined) == (count, count, 0)
        streamed = True
    finally:
        job.stop()  # gives its executors back to the cluster
        with connect_on_cluster(spark_cluster,
                                timing="B: connect server on cluster (to read)") as connect:
            spark = spark_session(connect.settings)
            try:
                if streamed:
                    assert as_plain(stream.trends(spark)) == independent.trends(
                        SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, count)
                    )
                    assert stream.counts(spark) == (count, 0)
            finally:
                stream.drop(spark)
