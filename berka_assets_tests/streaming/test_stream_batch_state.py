"""The streaming batch's pure parts: offset ranges from collected rows, the seen-id set."""

from __future__ import annotations

from types import SimpleNamespace

from berka_core.dataset.reader import SeenKeys
from berka_core.spark_jobs.kafka_source import OffsetRange
from spark_streaming.stream_batch import requested_ranges


def _row(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(kafka_partition=partition, kafka_offset=offset)


def test_requested_ranges_span_each_partitions_offsets() -> None:
    rows = [_row(2, 7), _row(0, 5), _row(2, 3), _row(0, 4), _row(2, 5)]
    assert requested_ranges("t", rows) == [OffsetRange("t", 0, 4, 6), OffsetRange("t", 2, 3, 8)]
    assert requested_ranges("t", []) == []


def test_seen_keys_membership_without_adding() -> None:
    seen = SeenKeys()
    assert 5 not in seen and (1 << 40) not in seen and 10**7 not in seen
    assert seen.add(5) is False and seen.add(1 << 40) is False
    assert 5 in seen and (1 << 40) in seen and 4 not in seen and 6 not in seen
    assert seen.add(5) is True


def test_seen_keys_add_all_equals_adding_one_by_one() -> None:
    import numpy as np

    keys = np.array([0, 7, 8, 7, 1_056_320, 3, (1 << 32) + 5, 1 << 40], np.int64)
    at_once, one_by_one = SeenKeys(), SeenKeys()
    at_once.add(2)
    at_once.add_all(keys)
    for key in [2, *keys.tolist()]:
        one_by_one.add(int(key))
    for probe in [*range(12), 1_056_319, 1_056_320, 1_056_321, (1 << 32) + 5, (1 << 32) + 6,
                  1 << 40]:
        assert (probe in at_once) == (probe in one_by_one), probe
    at_once.add_all(np.array([], np.int64))  # nothing to add
    assert at_once.add(1_056_320) is True and at_once.add(9) is False


def test_cubes_add_counts_and_exact_amounts_per_key() -> None:
    from decimal import Decimal

    from spark_streaming.stream_batch import add_cubes

    committed = [(1995, 3, "30-39", "F", 2, Decimal("10.10")),
                 (1995, 4, "30-39", "F", 1, Decimal("0.20"))]
    batch = [(1995, 3, "30-39", "F", 1, Decimal("0.01")), (1996, 1, "<20", "M", 3, Decimal("3.00"))]
    assert sorted(add_cubes(committed, batch)) == [
        (1995, 3, "30-39", "F", 3, Decimal("10.11")),
        (1995, 4, "30-39", "F", 1, Decimal("0.20")),
        (1996, 1, "<20", "M", 3, Decimal("3.00")),
    ]
    assert add_cubes([], []) == []
