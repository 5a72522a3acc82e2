"""One exactly-once micro-batch: Kafka offsets -> Delta tables (enriched, quarantine) -> trends.

Order of work, and why each crash point is safe (ledger.py has the protocol):
1. finish the batch a crash left planned but not committed, if any (the same offsets again,
   replacing whatever rows of it a table committed);
2. start every partition at the ledger's committed frontier, whatever range was requested, so
   re-runs, duplicate ticks and overlapping ranges cannot count a record twice or skip one;
3. classify the records (parse, validate, enrich, find duplicates of committed or earlier
   records), check they add up to the offsets read, plan the batch in the ledger;
4. append the quarantined and the enriched records, one Delta commit each;
5. commit the ledger rows in one MySQL transaction;
6. bring the trend cube up to the enriched table's latest version in one commit (also when
   there was nothing new, so a crash between 5 and 6 is repaired by the next run): the cube
   records the version it counts and adds the changes since (HiveTables.update_trends).
Compaction and clean-up (HiveTables.maintain) are not part of a batch: they run beside the
batches (the Dagster path's delta_maintenance_job, the streaming job's maintenance thread).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from berka_core import transformations as T
from berka_core.spark_jobs.hive_tables import HiveTables, WrittenCounts, read_counts
from berka_core.spark_jobs.jvm_functions import register_jvm_functions
from berka_core.spark_jobs.kafka_source import OffsetRange, read_offset_ranges
from berka_core.spark_jobs.ledger import BatchLedger, BatchPlan, PartitionCommit

log = logging.getLogger(__name__)

# The reference tables a transaction is enriched from (of the seven reference tables).
ENRICHMENT_TABLES = ("account", "district", "disp", "client")
WRITE_ENRICHED = "enriched only"
WRITE_WITH_QUARANTINE = "enriched + quarantine"
WRITE_REPLAYED = "replayed plan"
Result = TypeVar("Result")


@dataclass(frozen=True)
class BatchResult:
    batch_id: str | None
    requested: list[OffsetRange]
    processed: list[OffsetRange]
    enriched_rows: int = 0
    quarantined_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    finished_plan: str | None = None  # a crashed batch's plan this run finished first
    seconds: dict[str, float] = field(default_factory=dict)
    write_path: str | None = None  # WRITE_*: which tables the batch appended to
    # Delta versions after the batch: enriched_transactions and trend_cube (time travel).
    delta_versions: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(r.count for r in self.processed)

    @classmethod
    def committed(cls, batch_id: str, requested: list[OffsetRange], processed: list[OffsetRange],
                  commits: Sequence[PartitionCommit], counts: WrittenCounts,
                  seconds: dict[str, float], **details: Any) -> BatchResult:
        """The result of a batch committed in the ledger with these partition commits."""
        return cls(
            batch_id=batch_id,
            requested=requested,
            processed=processed,
            enriched_rows=sum(c.enriched_rows for c in commits),
            quarantined_rows=sum(c.quarantined_rows for c in commits),
            reasons=counts.reasons,
            seconds=seconds,
            **details,
        )


def read_reference(
    spark: SparkSession, jdbc_url: str, jdbc_properties: Mapping[str, str]
) -> T.ReferenceData:
    """The reference tables over JDBC; small, so the enrichment broadcasts them."""
    frames = {
        name: spark.read.jdbc(jdbc_url, f"`{name}`", properties=dict(jdbc_properties))
        for name in ENRICHMENT_TABLES
    }
    return T.ReferenceData(**frames)


def batch_id_for(ranges: list[OffsetRange]) -> str:
    """Deterministic from the offsets, so a retry of the same work overwrites its own partition."""
    topic = ranges[0].topic
    parts = ".".join(f"p{r.partition}-{r.start}-{r.end}" for r in sorted(ranges))
    batch_id = f"{topic}.{parts}"
    if len(batch_id) > 120:
        batch_id = f"{topic}.h{hashlib.sha1(parts.encode()).hexdigest()[:16]}"
    return batch_id


def from_frontier(requested: list[OffsetRange], frontiers: Mapping[int, int],
                  low_offsets: Mapping[int, int] | None = None) -> list[OffsetRange]:
    """Each partition's work starts at its committed frontier; finished partitions drop out.

    A partition with nothing committed starts at its first stored offset (`low_offsets`, when
    known): had an earlier range failed, a later one must not leave a gap below it."""
    effective = []
    for offset_range in requested:
        start = frontiers.get(offset_range.partition,
                              min(offset_range.start,
                                  (low_offsets or {}).get(offset_range.partition,
                                                          offset_range.start)))
        if offset_range.end > start:
            effective.append(
                OffsetRange(offset_range.topic, offset_range.partition, start, offset_range.end)
            )
    return effective


def run_batch(
    spark: SparkSession,
    *,
    kafka_options: Mapping[str, str],
    requested: list[OffsetRange],
    reference: T.ReferenceData,
    tables: HiveTables,
    ledger: BatchLedger,
    low_offsets: Mapping[int, int] | None = None,
) -> BatchResult:
    """Process `requested` exactly once (the streaming job has its own: stream_batch).

    `low_offsets`: the first offset Kafka still stores per partition (see from_frontier)."""
    seconds: dict[str, float] = {}
    started = time.monotonic()
    topic = requested[0].topic

    def prepare() -> BatchPlan | None:
        ledger.ensure_table()  # first, so an unreachable MySQL fails fast and clearly
        register_jvm_functions(spark)  # the message parser of transformations.parse_messages
        tables.ensure(spark)
        return ledger.pending()

    pending = _timed(seconds, "prepare", prepare)
    if pending is not None:
        log.warning("finishing batch %s, planned and not committed (a crash): %s",
                    pending.batch_id, pending.ranges)
        _timed(seconds, "finish plan", lambda: finish_plan(
            spark, kafka_options, pending, reference, tables, ledger))
    processed = _timed(seconds, "frontier",
                       lambda: from_frontier(requested, ledger.frontiers(
                           topic, [r.partition for r in requested]), low_offsets))
    finished = pending.batch_id if pending else None
    if not processed:
        log.info("offsets %s are already committed; updating trends only", requested)
        _timed(seconds, "trends", lambda: tables.update_trends(spark))
        ledger.mark_visible()
        return BatchResult(None, requested, [], finished_plan=finished, seconds=seconds)

    batch_id = batch_id_for(processed)
    records = read_offset_ranges(spark, kafka_options, processed)
    counts, write_path = write_batch(
        spark, records, reference, tables, ledger, batch_id, processed, seconds)
    commits = partition_commits(batch_id, processed, counts)
    _timed(seconds, "commit", lambda: ledger.commit(batch_id, commits))
    _timed(seconds, "trends", lambda: tables.update_trends(spark))
    ledger.mark_visible()
    versions = _timed(seconds, "version", lambda: tables.versions(spark))
    seconds["total"] = time.monotonic() - started
    return BatchResult.committed(
        batch_id, requested, processed, commits, counts, seconds,
        finished_plan=finished, write_path=write_path, delta_versions=versions,
    )


@contextmanager
def classified_batch(spark: SparkSession, records: DataFrame, reference: T.ReferenceData,
                     tables: HiveTables, batch_id: str) -> Iterator[DataFrame]:
    """Every record with its reason (null: valid), duplicates included: of an earlier record
    of the batch, or of a committed one (the batch's own rows excluded, for a replay).

    Kafka is read and parsed once (the records are cached); the duplicates, found on three
    narrow columns, are cached too, so the count and both appends do not search again."""
    classified = T.classify(records, reference).persist()
    duplicates = T.duplicate_reasons(
        classified, tables.committed_trans_ids(spark, but_batch=batch_id)).persist()
    try:
        yield T.with_duplicate_reasons(classified, duplicates)
    finally:
        duplicates.unpersist()
        classified.unpersist()


def counted(final: DataFrame) -> WrittenCounts:
    """Per Kafka partition (enriched, quarantined) and the reasons, of classified records."""
    return read_counts(
        final.groupBy(F.col("reason").isNotNull().cast("int").alias("side"),
                      "kafka_partition", "reason")
        .agg(F.count(F.lit(1)).alias("n")).collect())


def write_batch(
    spark: SparkSession,
    records: DataFrame,
    reference: T.ReferenceData,
    tables: HiveTables,
    ledger: BatchLedger,
    batch_id: str,
    processed: list[OffsetRange],
    seconds: dict[str, float],
) -> tuple[WrittenCounts, str]:
    """Classify, count, plan and append the batch (not committed in the ledger yet).

    The count is checked against the offsets before anything is planned."""
    with classified_batch(spark, records, reference, tables, batch_id) as final:
        counts = _timed(seconds, "classify", lambda: counted(final))
        partition_commits(batch_id, processed, counts)  # refuses before anything is written
        _timed(seconds, "plan", lambda: ledger.plan(batch_id, processed))
        quarantine = bool(counts.reasons)
        _timed(seconds, "write", lambda: tables.append_batch(
            spark, final, batch_id, quarantine=quarantine))
    return counts, WRITE_WITH_QUARANTINE if quarantine else WRITE_ENRICHED


def finish_plan(spark: SparkSession, kafka_options: Mapping[str, str], plan: BatchPlan,
                reference: T.ReferenceData, tables: HiveTables, ledger: BatchLedger) -> None:
    """Finish a batch a crash interrupted after it was planned: the same offsets classified
    again and written in place of whatever rows of the batch a table committed (one commit
    each), then the ledger commit, with the counts read back from the tables."""
    records = read_offset_ranges(spark, kafka_options, plan.ranges)
    with classified_batch(spark, records, reference, tables, plan.batch_id) as final:
        tables.append_batch(spark, final, plan.batch_id, replace=True)
    counts = tables.batch_counts(spark, plan.batch_id)
    ledger.commit(plan.batch_id, partition_commits(plan.batch_id, plan.ranges, counts))


def partition_commits(batch_id: str, processed: list[OffsetRange],
                      counts: WrittenCounts) -> list[PartitionCommit]:
    """The ledger rows of a batch, refusing when a partition's rows do not add up to its
    offsets (records missing from Kafka: retention or compaction)."""
    commits = []
    for offset_range in processed:
        enriched, quarantined = counts.per_partition.get(offset_range.partition, (0, 0))
        if enriched + quarantined != offset_range.count:
            raise MicrobatchError(
                f"batch {batch_id}: partition {offset_range.partition} read "
                f"{enriched + quarantined} records for {offset_range.count} offsets "
                f"[{offset_range.start}, {offset_range.end}); refusing to commit. Were offsets "
                "deleted by retention or compaction?"
            )
        commits.append(PartitionCommit(offset_range, enriched, quarantined))
    return commits


class MicrobatchError(RuntimeError):
    """A step of a batch failed; nothing of the batch counts until a retry commits it."""


def _timed(seconds: dict[str, float], name: str, action: Callable[[], Result]) -> Result:
    started = time.monotonic()
    try:
        result = action()
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise MicrobatchError(
            f"micro-batch step '{name}' failed: {first_line[:500]}. Nothing of this batch is "
            "committed; retry the run once the cause is fixed."
        ) from error
    seconds[name] = time.monotonic() - started
    return result
