"""Which Kafka offsets the next micro-batches take: pure functions shared by the Kafka sensor and
the on-demand materialization of the micro-batch asset.

The ledger's frontier (what is committed to Hive) is the truth; the sensor's cursor (what it
has scheduled) is only ahead of it while runs are queued or running. Each tick reconciles the
two with the topic's real offsets (`reconcile`), so a failed run's offsets are planned again, a
recreated topic is noticed, and nothing is ever skipped in silence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from berka_core.clients.kafka import PartitionOffsets
from berka_core.spark_jobs.kafka_source import OffsetRange


def plan_ranges(
    topic: str,
    next_offsets: dict[int, int],
    partitions: list[PartitionOffsets],
    max_records: int,
) -> list[OffsetRange]:
    """Cut each partition's new offsets into ranges of at most `max_records`.

    Pure and deterministic: the same cursor and end offsets always give the same ranges, so a
    repeated evaluation produces the same run keys and Dagster launches each range once.
    """
    ranges = []
    for partition in partitions:
        start = max(next_offsets.get(partition.partition, partition.low), partition.low)
        while start < partition.high:
            end = min(start + max_records, partition.high)
            ranges.append(OffsetRange(topic, partition.partition, start, end))
            start = end
    return ranges


def catch_up_ranges(topic: str, frontier: dict[int, int], partitions: list[PartitionOffsets],
                    max_records: int) -> list[OffsetRange]:
    """One batch from the ledger's frontier towards the end of every partition, at most
    `max_records` per partition; a partition with nothing new gives an empty range at its
    frontier (the batch then only refreshes the trends)."""
    first: dict[int, OffsetRange] = {}
    for offset_range in plan_ranges(topic, frontier, partitions, max_records):
        first.setdefault(offset_range.partition, offset_range)
    return [
        first.get(p.partition) or OffsetRange(
            topic, p.partition, *(2 * [min(max(frontier.get(p.partition, p.low), p.low), p.high)]))
        for p in partitions
    ]


def run_key(ranges: list[OffsetRange], attempt: int = 0) -> str:
    """`<topic>-<partition>-<start>-<end>`; a per-tick batch joins its partitions with `_`; a
    range planned again after a failed run gets `-retry<attempt>` (Dagster launches a run key
    once)."""
    key = f"{ranges[0].topic}-" + "_".join(f"{r.partition}-{r.start}-{r.end}" for r in ranges)
    return f"{key}-retry{attempt}" if attempt else key


def group_runs(ranges: list[OffsetRange], run_per: str) -> list[list[OffsetRange]]:
    """One run per range ("partition"), or the i-th range of every partition together ("tick":
    fewer, larger runs, so lower latency when runs are serialized)."""
    if run_per == "partition":
        return [[r] for r in ranges]
    by_partition: dict[int, list[OffsetRange]] = {}
    for offset_range in ranges:
        by_partition.setdefault(offset_range.partition, []).append(offset_range)
    rounds = max((len(v) for v in by_partition.values()), default=0)
    return [
        [chunks[i] for chunks in by_partition.values() if i < len(chunks)]
        for i in range(rounds)
    ]


@dataclass
class SensorCursor:
    """The sensor's cursor: the next offset scheduled per partition, and how many times in a
    row it had to plan failed ranges again (for the back-off and the retry run keys)."""

    scheduled: dict[int, int] = field(default_factory=dict)
    replans: int = 0
    replanned_at: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> SensorCursor | None:
        if not text:
            return None
        data = json.loads(text)
        if "scheduled" not in data:  # the flat {"partition": offset} of earlier releases
            return cls({int(p): int(o) for p, o in data.items()})
        return cls({int(p): int(o) for p, o in data["scheduled"].items()},
                   int(data.get("replans", 0)), float(data.get("replanned_at", 0.0)))

    def dump(self) -> str:
        return json.dumps({"scheduled": {str(p): o for p, o in sorted(self.scheduled.items())},
                           "replans": self.replans, "replanned_at": round(self.replanned_at, 3)})


@dataclass
class Reconciled:
    """Where the next runs start, and what the sensor should say about it."""

    next_offsets: dict[int, int]
    warnings: list[str]
    replan: bool  # scheduled offsets were never committed: failed runs, planned again
    wait_seconds: float = 0.0  # > 0: back off, plan nothing this tick


def backoff_seconds(replans: int, interval: float, cap: float = 30.0) -> float:
    """Wait before the n-th consecutive re-plan: the interval, doubling, at most `cap`."""
    return min(cap, interval * 2 ** max(0, replans - 1))


def reconcile(cursor: SensorCursor | None, frontier: dict[int, int],
              partitions: list[PartitionOffsets], *, now: float,
              interval: float) -> Reconciled:
    """Decide where to plan from, with no run of the database queued or running.

    Then everything scheduled has either committed (the frontier moved up to it) or failed, so
    the plan starts at the frontier; the cursor only explains the difference:
    - scheduled above the frontier: runs failed; plan their offsets again, after a back-off;
    - scheduled above the topic's end: the topic was recreated or its offsets reset;
    - the frontier above the topic's end: the same, with this database's ledger still holding
      the old topic's offsets: new records below them would count as committed.
    """
    warnings: list[str] = []
    next_offsets: dict[int, int] = {}
    replan = False
    for p in partitions:
        committed = frontier.get(p.partition, p.low)
        scheduled = cursor.scheduled.get(p.partition) if cursor else None
        if committed > p.high:
            warnings.append(
                f"partition {p.partition}: the ledger has offsets up to {committed:,} committed "
                f"but the topic ends at {p.high:,} (recreated, or offsets reset); records "
                f"below {committed:,} would be taken as committed. Reset this database's "
                "ledger (BatchLedger.reset, or `berka-stack wipe`) to process them.")
            next_offsets[p.partition] = p.high
            continue
        if committed < p.low:
            warnings.append(
                f"partition {p.partition}: offsets {committed:,}..{p.low - 1:,} were deleted "
                "by retention before they were processed; continuing at the first stored one.")
            committed = p.low
        if scheduled is not None and scheduled > p.high:
            warnings.append(
                f"partition {p.partition}: the cursor was at {scheduled:,}, above the topic's "
                f"end {p.high:,} (topic recreated or offsets reset): continuing at {committed:,}.")
        elif scheduled is not None and scheduled > committed:
            replan = True
        next_offsets[p.partition] = committed
    if replan and cursor is not None:
        wait = backoff_seconds(cursor.replans + 1, interval) - (now - cursor.replanned_at)
        if wait > 0:
            return Reconciled(next_offsets, warnings, replan, wait)
    return Reconciled(next_offsets, warnings, replan)
