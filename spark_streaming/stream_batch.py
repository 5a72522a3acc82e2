"""The streaming job's exactly-once batch, in few Spark statements for low latency.

Same tables, same functions and the same ledger as the Dagster micro-batch (microbatch.run_batch),
but the streaming job is the only writer of its database for its whole life (it holds the
writer claim), so it may keep two things between batches instead of re-reading every enriched
row in every batch:

- the committed valid trans_ids (a bitmap), so de-duplication against earlier batches looks up
  the batch's ids in memory instead of joining the whole enriched table;
- the trend cube of everything committed, so the trends of a batch are the cube plus the
  batch's own cube (counts and exact decimal sums add up) instead of a scan of the enriched
  table.

Both are rebuilt from the committed tables when the job starts (after a batch a crash left
planned is finished, and the trend cube table is rewritten from them), and in memory both only
change after a batch's ledger commit, so a crash anywhere loses nothing and counts nothing
twice: a replayed trigger is trimmed by the ledger as in run_batch, and a batch is planned
before its appends as there (ledger.py).

A usual batch (nothing to quarantine) is three Spark statements: classify + collect the narrow
columns, then, concurrently, the enriched append and the new trend cube (the trend tables are
views over it); then the ledger commit. A batch with something to quarantine appends quarantine
and enriched, commits, then writes the cube.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from berka_core import transformations as T
from berka_core.dataset.reader import SeenKeys
from berka_core.spark_jobs.hive_tables import HiveTables, WrittenCounts
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.ledger import BatchLedger, PartitionCommit
from berka_core.spark_jobs.microbatch import (
    BatchResult,
    _timed,
    batch_id_for,
    counted,
    from_frontier,
    partition_commits,
)

log = logging.getLogger(__name__)


@dataclass
class CommittedState:
    """The committed valid trans_ids and the trend cube of one Hive database's enriched table."""

    trans_ids: SeenKeys
    cube: list[tuple]  # rows of transformations.trend_cube, in T.CUBE_SCHEMA's order

    @classmethod
    def load(cls, spark: SparkSession, tables: HiveTables) -> CommittedState:
        enriched = spark.table(tables.enriched)
        trans_ids = SeenKeys()
        # One Arrow column into the bitmap with numpy, not a Python Row object per id.
        ids = enriched.select("trans_id").toArrow().column("trans_id")
        trans_ids.add_all(ids.to_numpy() if ids.null_count == 0 else ids.drop_null().to_numpy())
        return cls(trans_ids, [tuple(row) for row in T.trend_cube(enriched).collect()])


def cube_frame(spark: SparkSession, cube: Sequence[tuple]) -> DataFrame:
    """Rows of a trend cube (T.CUBE_SCHEMA's order) as a small local DataFrame."""
    return spark.createDataFrame(list(cube), T.CUBE_SCHEMA)


def load_committed_state(spark: SparkSession, tables: HiveTables,
                         ledger: BatchLedger) -> CommittedState:
    """The state from the committed tables, and the trends written from it: at start this
    repairs a crash between a commit and its trends. A batch left planned must be finished
    first (microbatch.finish_plan)."""
    state = CommittedState.load(spark, tables)
    tables.write_trends(spark, cube_frame(spark, state.cube))
    ledger.mark_visible()
    return state


def requested_ranges(topic: str, narrow: list[Row]) -> list[OffsetRange]:
    """The offsets a streaming batch holds, per partition (contiguous: no transactions used)."""
    bounds: dict[int, list[int]] = {}
    for row in narrow:
        low_high = bounds.setdefault(row.kafka_partition, [row.kafka_offset, row.kafka_offset])
        low_high[0] = min(low_high[0], row.kafka_offset)
        low_high[1] = max(low_high[1], row.kafka_offset)
    return [OffsetRange(topic, partition, low, high + 1)
            for partition, (low, high) in sorted(bounds.items())]


def run_stream_batch(
    spark: SparkSession,
    *,
    classified: DataFrame,
    topic: str,
    tables: HiveTables,
    ledger: BatchLedger,
    state: CommittedState,
) -> BatchResult | None:
    """Process one foreachBatch of classified records (transformations.classify applied to
    the stream once, so a batch does not analyze that plan again) exactly once; None for an
    empty batch.

    The batch is visible (its trends written, its ledger rows marked) when this returns."""
    seconds: dict[str, float] = {}
    started = time.monotonic()
    classified = classified.persist()
    try:
        narrow = _timed(seconds, "classify", lambda: _narrow_rows(classified))
        if not narrow:
            return None
        requested = requested_ranges(topic, narrow)
        processed = from_frontier(requested, _timed(seconds, "frontier",
                                                    lambda: ledger.frontiers(
                                                        topic, [r.partition for r in requested])))
        if not processed:
            log.info("offsets %s are already committed", requested)
            return BatchResult(None, requested, [], seconds=seconds)
        batch = classified
        if processed != requested:  # a replayed batch, partly committed before a crash
            starts = {r.partition: r.start for r in processed}
            narrow = [row for row in narrow
                      if row.kafka_offset >= starts.get(row.kafka_partition, 1 << 62)]
            batch = classified.where(_in_ranges(processed))
        batch_id = batch_id_for(processed)
        writer = _BatchWriter(spark, tables, ledger, state, batch_id, seconds)

        valid = [row.trans_id for row in narrow if row.valid]
        valid_ids = set(valid)
        committed = [trans_id for trans_id in sorted(valid_ids) if trans_id in state.trans_ids]
        # No reason and no repeated or committed trans_id: nothing can be quarantined (the
        # usual case), so the quarantine insert is skipped. This job is the only writer, and
        # it drops uncommitted partitions at start: no stale quarantine partition can exist.
        if len(valid) == len(narrow) == len(valid_ids) and not committed:
            # Every record goes to enriched: the counts are the records read, which the check
            # compares with the offsets (retention or compaction).
            counts = _all_enriched(narrow)
            commits = writer.plan(processed, counts)
            new_cube = writer.write_all_valid(batch, narrow, commits)
        else:
            seen = spark.createDataFrame([(trans_id,) for trans_id in committed],
                                         "trans_id BIGINT")
            final = T.with_duplicate_reasons(batch, T.duplicate_reasons(batch, seen))
            counts = _timed(seconds, "count", lambda: counted(final))
            commits = writer.plan(processed, counts)
            new_cube = writer.write_with_quarantine(final, commits)
        # Committed: the batch's valid ids are now all committed (a duplicate's id is its
        # winner's), and the trends show the new cube.
        for trans_id in valid_ids:
            state.trans_ids.add(trans_id)
        state.cube = new_cube
        _timed(seconds, "visible", lambda: ledger.mark_visible([batch_id]))
    finally:
        _timed(seconds, "unpersist", classified.unpersist)
    seconds["total"] = time.monotonic() - started
    return BatchResult.committed(batch_id, requested, processed, commits, counts, seconds)


def _narrow_rows(classified: DataFrame) -> list[Row]:
    """Narrow columns of every record: the offsets, the ids to de-duplicate, and what the
    batch adds to the trend cube (no second Spark job for that when nothing is quarantined)."""
    return classified.select(
        "kafka_partition", "kafka_offset", "trans_id",
        F.col("reason").isNull().alias("valid"), *T.CUBE_KEYS, "amount",
    ).collect()


def _all_enriched(narrow: Sequence[Row]) -> WrittenCounts:
    per_partition: dict[int, tuple[int, int]] = {}
    for row in narrow:
        enriched, _ = per_partition.get(row.kafka_partition, (0, 0))
        per_partition[row.kafka_partition] = (enriched + 1, 0)
    return WrittenCounts(per_partition, {})


@dataclass
class _BatchWriter:
    """Plans, writes and commits one batch; each write returns the new trend cube."""

    spark: SparkSession
    tables: HiveTables
    ledger: BatchLedger
    state: CommittedState
    batch_id: str
    seconds: dict[str, float]

    def plan(self, processed: list[OffsetRange], counts: WrittenCounts) -> list[PartitionCommit]:
        commits = partition_commits(self.batch_id, processed, counts)
        _timed(self.seconds, "plan", lambda: self.ledger.plan(self.batch_id, processed))
        return commits

    def write_all_valid(self, batch: DataFrame, narrow: Sequence[Row],
                        commits: list[PartitionCommit]) -> list[tuple]:
        """Nothing can be quarantined, so the new trend cube is known before the write: it is
        written beside the enriched append, concurrently (the trends are then visible when the
        batch commits, with no write after it). The batch is planned, so whatever fails from
        here on, the restart finishes it, never rolls it back: the cube that counts it stays.
        (Putting the previous cube back showed readers the trends going down and up again:
        the soak's MariaDB restart failed a ledger commit after both writes.)"""
        spark, seconds = self.spark, self.seconds
        new_cube = add_cubes(self.state.cube, cube_of(narrow))
        with ThreadPoolExecutor(1, thread_name_prefix="cube-write") as pool:
            cube_write = pool.submit(self.tables.write_trends, spark, cube_frame(spark, new_cube))
            try:
                _timed(seconds, "write", lambda: self.tables.append_batch(
                    spark, one_file(batch), self.batch_id, quarantine=False))
            finally:
                _timed(seconds, "trends", cube_write.result)
        _timed(seconds, "commit", lambda: self.ledger.commit(self.batch_id, commits))
        return new_cube

    def write_with_quarantine(self, final: DataFrame,
                              commits: list[PartitionCommit]) -> list[tuple]:
        spark, seconds = self.spark, self.seconds
        _timed(seconds, "write", lambda: self.tables.append_batch(
            spark, one_file(final), self.batch_id))
        batch_cube = _timed(seconds, "cube", lambda: [tuple(row) for row in T.trend_cube(
            final.where(F.col("reason").isNull())).collect()])
        new_cube = add_cubes(self.state.cube, batch_cube)
        _timed(seconds, "commit", lambda: self.ledger.commit(self.batch_id, commits))
        # After the commit; a crash before this write is repaired when the job restarts.
        _timed(seconds, "trends", lambda: self.tables.write_trends(
            spark, cube_frame(spark, new_cube)))
        return new_cube


def one_file(records: DataFrame) -> DataFrame:
    """A trigger's records written as one file per table instead of one per Kafka partition:
    a trigger is small and already classified in the cache, so one task writes it, and
    between two compactions the table gains a third of the files."""
    return records.coalesce(1)


def cube_of(rows: Sequence[Row]) -> list[tuple]:
    """transformations.trend_cube of rows already collected (each with the cube keys and
    `amount`), all enriched: one row per key with the count and the exact decimal sum."""
    return add_cubes([], [(*(row[key] for key in T.CUBE_KEYS), 1, row["amount"])
                          for row in rows])


def add_cubes(cube: Sequence[tuple], other: Sequence[tuple]) -> list[tuple]:
    """The sum of two trend cubes (rows of transformations.trend_cube, in T.CUBE_SCHEMA's
    column order): per key, counts and exact decimal amounts add up."""
    keys = len(T.CUBE_KEYS)
    totals: dict[tuple, list] = {}
    for row in (*cube, *other):
        total = totals.setdefault(tuple(row[:keys]), [0, Decimal(0)])
        total[0] += row[keys]
        total[1] += row[keys + 1]
    return [(*key, count, amount) for key, (count, amount) in totals.items()]


def _in_ranges(ranges: list[OffsetRange]) -> Column:
    condition = F.lit(False)
    for r in ranges:
        condition = condition | (
            (F.col("kafka_partition") == r.partition)
            & (F.col("kafka_offset") >= r.start)
            & (F.col("kafka_offset") < r.end)
        )
    return condition
