"""Compaction of committed batch partitions, on the real stack: bounded partitions, exact trends,
and a crash on either side of the ledger switch loses and doubles nothing."""

from __future__ import annotations

import pytest

from berka_assets.spark_jobs.hive_tables import HiveTables
from berka_assets.spark_jobs.ledger import BatchLedger
from berka_assets.spark_jobs.microbatch import COMPACTED_PREFIX, batches_to_compact
from berka_assets_tests import independent
from berka_assets_tests.streaming.harness import Pipeline, as_plain, spark_session
from berka_assets_tests.streaming.test_exactly_once import (
    POISON,
    SAMPLE,
    SAMPLE_TRANS,
    first_trans_ids,
)

pytestmark = pytest.mark.integration

COMPACT_AFTER = 3


def _partitions(spark, pipeline: Pipeline, table: str) -> set[str]:
    tables = HiveTables(pipeline.hive_database)
    return tables.batch_ids(spark, getattr(tables, table))


def _assert_exact(spark, pipeline: Pipeline, good: int, quarantined: int) -> None:
    assert as_plain(pipeline.trends(spark)) == independent.trends(
        SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, good))
    assert pipeline.counts(spark) == (good, quarantined)
    totals = pipeline.ledger().totals(pipeline.topic)
    assert (totals.consumed, totals.enriched, totals.quarantined) == (
        good + quarantined, good, quarantined)
    tables = HiveTables(pipeline.hive_database)
    repeats = spark.sql(f"SELECT trans_id FROM {tables.enriched} GROUP BY trans_id "
                        "HAVING COUNT(*) > 1").count()
    assert repeats == 0
    # Every partition left is a committed batch: nothing uncommitted, nothing orphaned.
    committed = pipeline.ledger().committed_batch_ids()
    assert _partitions(spark, pipeline, "enriched") <= committed
    assert _partitions(spark, pipeline, "quarantine") <= committed


@pytest.fixture
def pipeline(stack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BERKA_COMPACT_AFTER_BATCHES", str(COMPACT_AFTER))
    pipeline = Pipeline(stack, SAMPLE, max_records=300)
    yield pipeline
    pipeline.drop(spark_session(stack))


def test_batches_are_compacted_and_trends_stay_exact(pipeline: Pipeline) -> None:
    good = 3_000  # ~10 batches of <= 300 records over 3 partitions, poison in between
    pipeline.produce_file(SAMPLE_TRANS, limit=1_200)
    pipeline.drain()
    pipeline.produce_raw(POISON)  # quarantined rows get compacted too
    pipeline.drain()
    pipeline.produce_file(SAMPLE_TRANS, limit=good, skip=1_200)
    pipeline.drain()
    spark = spark_session(pipeline.settings)
    _assert_exact(spark, pipeline, good, len(POISON))
    committed = pipeline.ledger().committed_batch_ids()
    merged = {b for b in committed if b.startswith(COMPACTED_PREFIX)}
    assert merged, committed
    assert len(committed - merged) <= COMPACT_AFTER
    assert len(merged) <= COMPACT_AFTER
    tables = HiveTables(pipeline.hive_database)
    in_merged = spark.sql(f"SELECT COUNT(*) FROM {tables.quarantine} "
                          f"WHERE batch_id LIKE '{COMPACTED_PREFIX}%'").first()[0]
    assert in_merged == len(POISON)


@pytest.mark.parametrize("crash", ["before the ledger switch", "after the ledger switch"])
def test_a_crash_in_compaction_is_repaired_by_the_next_run(
    pipeline: Pipeline, crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = 1_200  # 6 batches of <= 300 records: the fourth commit makes the compaction due
    pipeline.produce_file(SAMPLE_TRANS, limit=good)
    tick = pipeline.tick()
    pipeline.cursor = tick.cursor
    assert len(tick.run_requests) > COMPACT_AFTER + 1
    for run_request in tick.run_requests[:COMPACT_AFTER]:
        assert pipeline.execute(run_request).success
    assert pipeline.ledger().totals(pipeline.topic).batches == COMPACT_AFTER

    def fail(*_args, **_kwargs):
        raise RuntimeError(f"simulated crash {crash}")

    if crash == "before the ledger switch":
        monkeypatch.setattr(BatchLedger, "compact", fail)
    else:
        monkeypatch.setattr(HiveTables, "drop_batches", fail)
    result = pipeline.execute(tick.run_requests[COMPACT_AFTER], raise_on_error=False)
    assert not result.success
    failures = "\n".join(e.event_specific_data.error.to_string()
                          for e in result.all_events if e.is_step_failure)
    assert "This run's batch is committed" in failures, failures
    monkeypatch.undo()
    monkeypatch.setenv("BERKA_COMPACT_AFTER_BATCHES", str(COMPACT_AFTER))

    spark = spark_session(pipeline.settings)
    leftovers = (_partitions(spark, pipeline, "enriched")
                 - pipeline.ledger().committed_batch_ids())
    assert leftovers, "the crash left partitions that no longer (or not yet) count"

    for run_request in tick.run_requests[COMPACT_AFTER + 1:]:
        assert pipeline.execute(run_request).success
    pipeline.drain()
    _assert_exact(spark, pipeline, good, 0)
    assert any(b.startswith(COMPACTED_PREFIX) for b in pipeline.ledger().committed_batch_ids())


def test_which_batches_are_compacted() -> None:
    loose = {f"t.p0-{i}-{i + 1}" for i in range(4)}
    merged = {f"{COMPACTED_PREFIX}{i:016x}" for i in range(4)}
    assert batches_to_compact(set(), 3) == []
    assert batches_to_compact(set(list(loose)[:3]) | merged, 3) == sorted(merged)
    assert batches_to_compact(loose | set(list(merged)[:3]), 3) == sorted(loose)
    assert batches_to_compact(loose | merged, 3) == sorted(loose)  # the small ones first
    assert batches_to_compact(set(list(loose)[:3]) | set(list(merged)[:3]), 3) == []
