"""Micro-batches launched by the real Dagster daemon (`dagster dev`), through a fault.

The Kafka sensor runs in the daemon; its runs start in processes of their own, as in
production. While Spark Connect is stopped the runs fail (and the daemon's run retries fail
too); once it is back, with no new data arriving, the sensor plans the failed offsets again
from the ledger's frontier and they become visible, every record once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import (
    Pipeline,
    as_plain,
    reset_spark_client,
    spark_session,
)
from berka_assets_tests.streaming.test_exactly_once import SAMPLE, SAMPLE_TRANS
from berka_core.config import Settings
from berka_stack.dev import INSTANCE_CONFIG, DagsterDev
from berka_stack.spark import SparkConnectServer

pytestmark = pytest.mark.integration

FAILED_RUNS = """
{ runsOrError(filter: {pipelineName: "microbatch_job", statuses: [FAILURE]}) {
    ... on Runs { results { runId } } } }
"""
RUN_TAGS = """
{ runsOrError(filter: {pipelineName: "microbatch_job"}) {
    ... on Runs { results { status tags { key value } } } } }
"""


def _caught_up(pipeline: Pipeline) -> bool:
    ends = {p.partition: p.high for p in pipeline.kafka.partition_offsets(pipeline.topic)}
    ledger = pipeline.ledger()
    frontier = ledger.frontiers(pipeline.topic)
    return (all(frontier.get(partition, 0) == end for partition, end in ends.items())
            and ledger.invisible_batches() == 0)  # committed and in the trends


def _wait(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


@pytest.mark.slow
def test_daemon_launched_batches_recover_from_a_stopped_spark_server_with_no_new_data(
    stack: Settings, tmp_path: Path
) -> None:
    pipeline = Pipeline(stack, SAMPLE)
    pipeline.load_reference()
    sensor = f"kafka_{pipeline.topic}_sensor"
    dev = DagsterDev(dagster_home=tmp_path / "dagster-home",
                     env={"BERKA_KAFKA_TOPIC": pipeline.topic,
                          "BERKA_HIVE_DATABASE": pipeline.hive_database},
                     log_path=tmp_path / "dagster-dev.log")
    server = SparkConnectServer(stack)
    try:
        dev.start()
        assert dev.start_sensor(sensor) == "RUNNING"
        first = pipeline.produce_file(SAMPLE_TRANS, limit=1_000)
        _wait(lambda: _caught_up(pipeline), 240, "the first records through the daemon")

        assert server.stop()
        try:
            pipeline.produce_file(SAMPLE_TRANS, limit=2_000, skip=first)
            _wait(lambda: dev.graphql(FAILED_RUNS)["runsOrError"]["results"], 120,
                  "a micro-batch run failing while Spark Connect is down")
            assert not _caught_up(pipeline)
        finally:
            server.start()  # as a supervisor would; no new data from here on
        recovered = _wait(lambda: _caught_up(pipeline), 90,
                          "the failed offsets committed after Spark Connect is back")
        print(f"caught up {recovered:.1f} s after Spark Connect answered again")
        assert recovered <= 60
        runs = dev.graphql(RUN_TAGS)["runsOrError"]["results"]
        # The daemon retried a failed run (run_retries in dagster.yaml, tag dagster/max_retries).
        assert any(tag["key"] == "dagster/parent_run_id" for run in runs for tag in run["tags"])
    finally:
        dev.stop()
        if server.pid() is None:
            server.start()

    reset_spark_client()  # this process's session belonged to the stopped server
    spark = spark_session(stack)
    try:
        assert pipeline.counts(spark) == (2_000, 0)
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, 2_000))
    finally:
        pipeline.drop(spark)


@pytest.mark.slow
def test_a_run_whose_process_is_killed_is_failed_by_run_monitoring_then_retried(
    stack: Settings, tmp_path: Path
) -> None:
    """kill -9 of a run's process leaves the run STARTED for ever: the default run launcher
    cannot see its workers die. The micro-batch job's dagster/max_runtime lets run monitoring
    fail it, and run retries run it again; every record ends up counted once."""
    pipeline = Pipeline(stack, SAMPLE)
    config = tmp_path / "dagster.yaml"
    config.write_text(INSTANCE_CONFIG.read_text().replace(
        "poll_interval_seconds: 30", "poll_interval_seconds: 5"))
    assert "poll_interval_seconds: 5" in config.read_text()
    home = tmp_path / "dagster-home"
    dev = DagsterDev(dagster_home=home, instance_config=config,
                     env={"BERKA_KAFKA_TOPIC": pipeline.topic,
                          "BERKA_HIVE_DATABASE": pipeline.hive_database,
                          "BERKA_MICROBATCH_MAX_RUNTIME_S": "20"},
                     log_path=tmp_path / "dagster-dev.log")
    try:
        dev.start()
        assert dev.start_sensor(f"kafka_{pipeline.topic}_sensor") == "RUNNING"
        pipeline.produce_file(SAMPLE_TRANS, limit=20_000)
        deadline = time.monotonic() + 180
        while not (victims := dev.run_workers()):
            assert time.monotonic() < deadline, "no micro-batch run started"
            time.sleep(0.05)
        victim = victims[0]
        victim.kill()
        victim.wait(10)
        assert not victim.is_running()
        _wait(lambda: dev.graphql(FAILED_RUNS)["runsOrError"]["results"], 120,
              "the killed run failed by run monitoring")
        _wait(lambda: _caught_up(pipeline), 240, "every record after the retry")
        runs = dev.graphql(RUN_TAGS)["runsOrError"]["results"]
        assert any(tag["key"] == "dagster/parent_run_id" for run in runs for tag in run["tags"])
    finally:
        dev.stop()

    spark = spark_session(stack)
    try:
        assert pipeline.counts(spark) == (20_000, 0)
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, 20_000))
    finally:
        pipeline.drop(spark)
