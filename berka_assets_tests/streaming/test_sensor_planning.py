"""The sensor's range planning, as pure functions (no servers)."""

from __future__ import annotations

from berka_core.clients.kafka import PartitionOffsets
from berka_core.offset_planning import group_runs, plan_ranges, run_key
from berka_core.spark_jobs.kafka_source import OffsetRange

PARTITIONS = [PartitionOffsets(0, 0, 250), PartitionOffsets(1, 10, 40), PartitionOffsets(2, 0, 0)]


def test_ranges_are_bounded_contiguous_and_start_at_the_cursor() -> None:
    ranges = plan_ranges("trans", {0: 20}, PARTITIONS, max_records=100)
    assert ranges == [
        OffsetRange("trans", 0, 20, 120), OffsetRange("trans", 0, 120, 220),
        OffsetRange("trans", 0, 220, 250), OffsetRange("trans", 1, 10, 40),
    ]


def test_planning_is_deterministic_and_idempotent_at_the_end() -> None:
    first = plan_ranges("trans", {}, PARTITIONS, max_records=100)
    assert first == plan_ranges("trans", {}, PARTITIONS, max_records=100)
    done = {r.partition: r.end for r in first}
    assert plan_ranges("trans", done, PARTITIONS, max_records=100) == []


def test_cursor_before_retention_starts_at_the_low_watermark() -> None:
    assert plan_ranges("trans", {1: 3}, [PartitionOffsets(1, 10, 12)], 100) == [
        OffsetRange("trans", 1, 10, 12)]


def test_run_keys_and_grouping() -> None:
    ranges = plan_ranges("trans", {}, PARTITIONS, max_records=100)
    per_partition = group_runs(ranges, "partition")
    assert [run_key(g) for g in per_partition] == [
        "trans-0-0-100", "trans-0-100-200", "trans-0-200-250", "trans-1-10-40"]
    per_tick = group_runs(ranges, "tick")
    assert [run_key(g) for g in per_tick] == [
        "trans-0-0-100_1-10-40", "trans-0-100-200", "trans-0-200-250"]
    assert sorted(r for g in per_tick for r in g) == sorted(ranges)


def test_catch_up_takes_one_bounded_range_per_partition_from_the_frontier() -> None:
    from berka_core.offset_planning import catch_up_ranges

    assert catch_up_ranges("trans", {0: 20}, PARTITIONS, max_records=100) == [
        OffsetRange("trans", 0, 20, 120), OffsetRange("trans", 1, 10, 40),
        OffsetRange("trans", 2, 0, 0)]
    # Nothing new: empty ranges at the frontier (the batch only refreshes the trends).
    assert catch_up_ranges("trans", {0: 250, 1: 40}, PARTITIONS, 100) == [
        OffsetRange("trans", 0, 250, 250), OffsetRange("trans", 1, 40, 40),
        OffsetRange("trans", 2, 0, 0)]


def test_reconcile_plans_from_the_frontier_and_replans_failed_runs_after_a_backoff() -> None:
    from berka_core.offset_planning import SensorCursor, reconcile

    partitions = [PartitionOffsets(0, 0, 250), PartitionOffsets(1, 0, 40)]
    # All scheduled offsets committed: continue at the frontier, nothing to say.
    done = reconcile(SensorCursor({0: 200, 1: 40}), {0: 200, 1: 40}, partitions,
                     now=100.0, interval=2)
    assert (done.next_offsets, done.warnings, done.replan, done.wait_seconds) == (
        {0: 200, 1: 40}, [], False, 0.0)
    # A run failed (scheduled 200 on partition 0, committed 100): plan [100, ...) again now ...
    failed = reconcile(SensorCursor({0: 200, 1: 40}), {0: 100, 1: 40}, partitions,
                       now=100.0, interval=2)
    assert failed.replan and failed.next_offsets == {0: 100, 1: 40} and failed.wait_seconds == 0
    # ... and after a second failure in a row, only after a doubled interval.
    again = SensorCursor({0: 200, 1: 40}, replans=1, replanned_at=99.0)
    assert reconcile(again, {0: 100, 1: 40}, partitions, now=100.0, interval=2).wait_seconds == 3
    assert reconcile(again, {0: 100, 1: 40}, partitions, now=103.0, interval=2).wait_seconds == 0


def test_reconcile_repairs_a_cursor_above_a_recreated_topic_and_says_so() -> None:
    from berka_core.offset_planning import SensorCursor, reconcile

    recreated = [PartitionOffsets(0, 0, 300)]
    # A wipe emptied the ledger, the sensor kept its cursor of the old topic (5,000).
    wiped = reconcile(SensorCursor({0: 5_000}), {}, recreated, now=0.0, interval=2)
    assert wiped.next_offsets == {0: 0} and not wiped.replan
    assert len(wiped.warnings) == 1 and "above the topic's end" in wiped.warnings[0]
    # The ledger itself still holds the old topic's offsets: never silent.
    stale = reconcile(SensorCursor({0: 5_000}), {0: 5_000}, recreated, now=0.0, interval=2)
    assert stale.next_offsets == {0: 300} and "reset" in stale.warnings[0].lower()
    # Retention deleted offsets nobody processed: continue at the first stored one, loudly.
    trimmed = reconcile(None, {0: 10}, [PartitionOffsets(0, 50, 60)], now=0.0, interval=2)
    assert trimmed.next_offsets == {0: 50} and "retention" in trimmed.warnings[0]


def test_cursor_reads_the_flat_cursor_of_earlier_releases() -> None:
    from berka_core.offset_planning import SensorCursor

    assert SensorCursor.parse('{"0": 5, "2": 7}') == SensorCursor({0: 5, 2: 7})
    cursor = SensorCursor({0: 5}, replans=2, replanned_at=12.5)
    assert SensorCursor.parse(cursor.dump()) == cursor
    assert SensorCursor.parse(None) is None
