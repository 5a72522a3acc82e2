"""A Kafka topic deleted and created again under the same name starts its offsets over. The
ledger tells the incarnations apart by Kafka's topic ID, so the new topic is processed from its
first offset, never taken as committed up to the old frontier; the old rows stay as history."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline, as_plain, spark_session
from berka_assets_tests.streaming.test_daemon_microbatches import _caught_up, _wait
from berka_assets_tests.streaming.test_exactly_once import SAMPLE, SAMPLE_TRANS
from berka_core.config import Settings
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.ledger import BatchLedger, PartitionCommit, archived_topic
from berka_stack.dev import DagsterDev
from berka_stack.kafka import ensure_topics

pytestmark = pytest.mark.integration


def _recreate(pipeline: Pipeline) -> tuple[str, str]:
    """Delete the pipeline's topic and create it again; its (old, new) Kafka topic IDs."""
    admin = pipeline.kafka.admin()
    before = pipeline.kafka.topic_id(pipeline.topic)
    admin.delete_topics([pipeline.topic], operation_timeout=30)[pipeline.topic].result(60)
    deadline = time.monotonic() + 60
    while True:  # deletion completes in the background; creating too early is refused
        try:
            ensure_topics(pipeline.settings.kafka.bootstrap_servers,
                          {pipeline.topic: pipeline.partitions})
            after = pipeline.kafka.topic_id(pipeline.topic)
            if after not in (None, before):
                return before, after
        except Exception:  # noqa: BLE001 - still being deleted
            pass
        assert time.monotonic() < deadline, "the topic could not be created again"
        time.sleep(1)


def test_the_ledger_keeps_an_earlier_incarnation_as_history(stack: Settings) -> None:
    pipeline = Pipeline(stack, SAMPLE)
    ledger = BatchLedger(pipeline.mysql.connect, f"t_{uuid.uuid4().hex[:10]}")
    ledger.ensure_table()
    topic = pipeline.topic
    try:
        assert ledger.follow_topic(topic, "first-id") is None
        ledger.plan("b1", [OffsetRange(topic, 0, 0, 10)])
        ledger.commit("b1", [PartitionCommit(OffsetRange(topic, 0, 0, 10), 9, 1)])
        assert ledger.follow_topic(topic, "first-id") is None
        assert ledger.frontiers(topic) == {0: 10}

        ledger.plan("b-crashed", [OffsetRange(topic, 0, 10, 20)])  # never committed

        assert ledger.follow_topic(topic, "second-id") == "first-id"
        assert ledger.frontiers(topic) == {}  # the new topic starts at its first offset
        assert ledger.pending() is None  # its records went with the old topic
        history = ledger.totals(archived_topic(topic, "first-id"))
        assert (history.consumed, history.enriched, history.quarantined) == (10, 9, 1)
        # The new incarnation commits the same offsets again without a conflict.
        ledger.plan("b2", [OffsetRange(topic, 0, 0, 4)])
        ledger.commit("b2", [PartitionCommit(OffsetRange(topic, 0, 0, 4), 4, 0)])
        assert ledger.frontiers(topic) == {0: 4}
        assert ledger.follow_topic(topic, "second-id") is None
    finally:
        ledger.reset()


@pytest.mark.slow
def test_a_topic_recreated_while_the_daemon_runs_is_processed_from_its_first_offset(
    stack: Settings, tmp_path: Path
) -> None:
    """The new topic gets more records than the old frontier: without incarnations its first
    ones would silently count as committed."""
    pipeline = Pipeline(stack, SAMPLE)
    dev = DagsterDev(dagster_home=tmp_path / "dagster-home",
                     env={"BERKA_KAFKA_TOPIC": pipeline.topic,
                          "BERKA_HIVE_DATABASE": pipeline.hive_database},
                     log_path=tmp_path / "dagster-dev.log")
    try:
        dev.start()
        assert dev.start_sensor(f"kafka_{pipeline.topic}_sensor") == "RUNNING"
        first = pipeline.produce_file(SAMPLE_TRANS, limit=2_000)
        _wait(lambda: _caught_up(pipeline), 240, "the first topic's records")

        old_id, _ = _recreate(pipeline)
        assert pipeline.produce_file(SAMPLE_TRANS, limit=5_000, skip=first) == 3_000
        _wait(lambda: _caught_up(pipeline), 240, "the recreated topic's records")
    finally:
        dev.stop()

    ledger = pipeline.ledger()
    now, before = ledger.totals(pipeline.topic), ledger.totals(archived_topic(pipeline.topic,
                                                                              old_id))
    assert (now.consumed, before.consumed) == (3_000, 2_000)
    spark = spark_session(stack)
    try:
        assert pipeline.counts(spark) == (5_000, 0)
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, 5_000))
    finally:
        pipeline.drop(spark)
