"""The sensor's range planning, as pure functions (no servers)."""

from __future__ import annotations

from berka_assets.resources.kafka import PartitionOffsets
from berka_assets.sensors.kafka_offsets import group_runs, plan_ranges, run_key
from berka_assets.spark_jobs.kafka_source import OffsetRange

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
