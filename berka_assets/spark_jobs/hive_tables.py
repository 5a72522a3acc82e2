"""The Hive tables of one pipeline database: DDL, per-batch partition writes, trend rebuilds."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from berka_assets import transformations as T

# Columns whose values (nearly) never repeat. Parquet's dictionary encoding only costs time for
# them: at ~130k rows a file, a dictionary of distinct BIGINTs outgrows Parquet's 1 MB limit and
# is thrown away after the work is done. A Parquet write of 1M enriched rows took 6.5-6.7 s with
# these plain, 7.3-7.8 s with dictionaries tried for all.
PLAIN_ENCODED = ("trans_id", "kafka_offset", "sent_at_ms", "amount", "balance", "raw_value")


def _batch_table_ddl(columns: dict[str, str], comment: str) -> str:
    """A table with one partition per batch; `{table}` is filled in later."""
    body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    options = ", ".join(f"'parquet.enable.dictionary#{name}' = 'false'"
                        for name in PLAIN_ENCODED if name in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {{table}} ({body}, batch_id STRING) "
        f"USING parquet OPTIONS ({options}) PARTITIONED BY (batch_id) COMMENT '{comment}'"
    )


ENRICHED_DDL = _batch_table_ddl(
    T.ENRICHED_TYPES,
    "Valid Berka transactions enriched from MySQL; one partition per committed batch",
)
QUARANTINE_DDL = _batch_table_ddl(
    T.QUARANTINE_TYPES, "Records that could not be enriched, with the raw payload and the reason"
)
# A batch that repeats a trans_id (rare: a re-sent range) is staged here with every classified
# record, then de-duplicated and copied into the enriched and quarantine partitions. Spark
# cannot overwrite a table it reads in the same statement, and the de-duplication reads the
# enriched table: its result goes to a work table of its own too.
STAGING_DDL = _batch_table_ddl(
    T.STAGED_TYPES, "Work table of the micro-batches: a batch is staged here, then copied"
)
DUPLICATES_DDL = _batch_table_ddl(
    T.DUPLICATE_TYPES, "Work table of the micro-batches: the staged records that are duplicates"
)

# The trend cube (transformations.trend_cube) is the one trend table written: the three trends
# are views over it, so one write updates them together and they always agree with each other.
CUBE_DDL = "CREATE TABLE IF NOT EXISTS {table} (" + T.CUBE_SCHEMA + ") USING parquet"

ENRICHED, QUARANTINE, STAGING, DUPLICATES, CUBE = (
    "enriched_transactions", "quarantine", "batch_staging", "batch_duplicates", "trend_cube")
# Every table of a pipeline database with its DDL, in creation order.
TABLE_DDL = {ENRICHED: ENRICHED_DDL, QUARANTINE: QUARANTINE_DDL, STAGING: STAGING_DDL,
             DUPLICATES: DUPLICATES_DDL, CUBE: CUBE_DDL}
# Changes whenever a table or view definition does; HiveTables.ensure re-runs the DDL then.
DDL_FINGERPRINT = hashlib.sha1("\n".join([
    *TABLE_DDL.values(), *(trend.view_sql(CUBE) for trend in T.TRENDS.values()),
]).encode()).hexdigest()[:16]
_FINGERPRINT_KEY = "berka.ddl_fingerprint"
_ALL_TABLES = {*TABLE_DDL, *T.TRENDS}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenCounts:
    per_partition: dict[int, tuple[int, int]]  # Kafka partition -> (enriched, quarantined)
    reasons: dict[str, int]  # quarantine reason -> rows


_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_BATCH_ID = re.compile(r"^[A-Za-z0-9_.:+-]{1,255}$")


@dataclass(frozen=True)
class HiveTables:
    database: str

    def __post_init__(self) -> None:
        if not _SAFE_NAME.match(self.database):
            raise ValueError(f"invalid Hive database name {self.database!r}")

    @property
    def enriched(self) -> str:
        return self._qualified(ENRICHED)

    @property
    def quarantine(self) -> str:
        return self._qualified(QUARANTINE)

    @property
    def staging(self) -> str:
        return self._qualified(STAGING)

    @property
    def duplicates(self) -> str:
        return self._qualified(DUPLICATES)

    @property
    def cube(self) -> str:
        return self._qualified(CUBE)

    def trend(self, name: str) -> str:
        return self._qualified(name)

    def _qualified(self, table: str) -> str:
        return f"`{self.database}`.`{table}`"

    def ensure(self, spark: SparkSession) -> None:
        """Create the database, tables and trend views this release needs.

        Once done, the database carries a fingerprint of the DDL: later batches check it and
        the table names in two catalog calls instead of ~10 DDL statements (~1 s per batch).
        """
        if (self._fingerprint(spark) == DDL_FINGERPRINT
                and self._table_names(spark) >= _ALL_TABLES):
            return
        tables = self._table_kinds(spark)
        if tables is None:
            # IF NOT EXISTS alone makes the metastore log an AlreadyExists error every batch.
            spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            tables = {}
        for name, ddl in TABLE_DDL.items():
            spark.sql(ddl.format(table=self._qualified(name)))
        for name, trend in T.TRENDS.items():
            if tables.get(name, True) is False:
                # A trend table of an earlier release: the view replaces it (the data is in
                # enriched_transactions; the next rebuild fills the cube).
                spark.sql(f"DROP TABLE {self.trend(name)}")
            # Replaced, so a changed definition reaches existing databases.
            spark.sql(f"CREATE OR REPLACE VIEW {self.trend(name)} AS "
                      f"{trend.view_sql(self.cube)}")
        spark.sql(f"ALTER DATABASE `{self.database}` SET DBPROPERTIES "
                  f"('{_FINGERPRINT_KEY}'='{DDL_FINGERPRINT}')")

    def _table_kinds(self, spark: SparkSession) -> dict[str, bool] | None:
        """Table name -> is a view, or None when the database does not exist."""
        if self.database not in {row[0] for row in spark.sql("SHOW DATABASES").collect()}:
            return None
        return {table.name: table.tableType == "VIEW"
                for table in spark.catalog.listTables(self.database)}

    def _table_names(self, spark: SparkSession) -> set[str]:
        # SHOW TABLES lists names only; catalog.listTables fetches every table (~3x slower).
        return {row.tableName for row in spark.sql(f"SHOW TABLES IN `{self.database}`").collect()
                if not row.isTemporary}

    def _fingerprint(self, spark: SparkSession) -> str | None:
        """The database's DDL fingerprint; None when it has none or does not exist (the slow
        path of ensure then finds out which, and says so if the metastore is down)."""
        try:
            rows = spark.sql(f"DESCRIBE DATABASE EXTENDED `{self.database}`").collect()
        except AnalysisException:
            return None
        properties = next((row[1] for row in rows if row[0] == "Properties"), "") or ""
        match = re.search(rf"\({re.escape(_FINGERPRINT_KEY)},([0-9a-f]+)\)", properties)
        return match.group(1) if match else None

    def batch_ids(self, spark: SparkSession, table: str) -> set[str]:
        rows = spark.sql(f"SHOW PARTITIONS {table}").collect()
        return {row[0].split("=", 1)[1] for row in rows}

    def drop_uncommitted(self, spark: SparkSession, committed: set[str]) -> set[str]:
        """Remove partitions a crashed batch left behind; return their batch ids."""
        leftovers: set[str] = set()
        for table in (self.enriched, self.quarantine):
            uncommitted = self.batch_ids(spark, table) - committed
            for batch_id in sorted(uncommitted):
                _drop_partition(spark, table, batch_id)
            leftovers |= uncommitted
        self.clear_staging(spark)
        return leftovers

    def clear_staging(self, spark: SparkSession) -> None:
        for table in (self.staging, self.duplicates):
            for batch_id in sorted(self.batch_ids(spark, table)):
                _drop_partition(spark, table, batch_id)

    def write_staged(
        self,
        spark: SparkSession,
        classified: DataFrame,
        batch_id: str,
        committed_trans_ids: DataFrame | None = None,
    ) -> None:
        """Replace the batch's partitions through the staging table, de-duplicated: the path of
        a batch that repeats a trans_id (microbatch.write_batch). A re-run overwrites."""
        batch_id = _check(batch_id)
        started = time.monotonic()
        partition = f"PARTITION (batch_id='{batch_id}')"
        T.staged_rows(classified).createOrReplaceTempView("classified_batch")
        # Kafka is read and parsed a single time, into the staging partition; everything after
        # reads that (de-duplication only its three narrow key columns).
        spark.sql(
            f"INSERT OVERWRITE TABLE {self.staging} {partition} "
            f"SELECT {', '.join(T.STAGED_COLUMNS)} FROM classified_batch"
        )
        staged_at = time.monotonic()
        staged = spark.table(self.staging).where(F.col("batch_id") == batch_id)
        T.duplicate_reasons(staged, committed_trans_ids).createOrReplaceTempView("duplicates")
        spark.sql(
            f"INSERT OVERWRITE TABLE {self.duplicates} {partition} "
            f"SELECT {', '.join(T.DUPLICATE_COLUMNS)} FROM duplicates"
        )
        duplicates = spark.table(self.duplicates).where(F.col("batch_id") == batch_id)
        self.write_final(spark, T.with_duplicate_reasons(staged, duplicates.drop("batch_id")),
                         batch_id)
        log.info("batch %s: classified and staged in %.2f s, de-duplicated and copied in %.2f s",
                 batch_id, staged_at - started, time.monotonic() - staged_at)

    def write_final(self, spark: SparkSession, final: DataFrame, batch_id: str, *,
                    all_valid: bool = False) -> None:
        """Replace the batch's enriched and quarantine partitions with `final`'s records (each
        with its reason, null for a valid one), in one statement over one read of `final`.

        `all_valid`: the caller knows no record has a reason, and that the batch's quarantine
        partition does not exist: the enriched partition alone is written (~0.25 s less)."""
        partition = f"PARTITION (batch_id='{_check(batch_id)}')"
        if all_valid:
            self.write_enriched(spark, final, batch_id, valid_only=False)
            return
        final.createOrReplaceTempView("final_batch")
        spark.sql(
            f"FROM final_batch "
            f"INSERT OVERWRITE TABLE {self.enriched} {partition} "
            f"SELECT {', '.join(T.ENRICHED_COLUMNS)} WHERE reason IS NULL "
            f"INSERT OVERWRITE TABLE {self.quarantine} {partition} "
            f"SELECT {', '.join(T.QUARANTINE_COLUMNS)} WHERE reason IS NOT NULL"
        )

    def write_enriched(self, spark: SparkSession, records: DataFrame, batch_id: str, *,
                       valid_only: bool = True) -> None:
        """Replace the batch's enriched partition with `records` (those without a reason when
        `valid_only`): a usual micro-batch's one write, straight from Kafka."""
        self._overwrite(spark, self.enriched, T.ENRICHED_COLUMNS, records, batch_id,
                        "reason IS NULL" if valid_only else "TRUE")

    def write_quarantine(self, spark: SparkSession, records: DataFrame, batch_id: str) -> None:
        """Replace the batch's quarantine partition with the records that have a reason."""
        self._overwrite(spark, self.quarantine, T.QUARANTINE_COLUMNS, records, batch_id,
                        "reason IS NOT NULL")

    def _overwrite(self, spark: SparkSession, table: str, columns: tuple[str, ...],
                   records: DataFrame, batch_id: str, where: str) -> None:
        records.createOrReplaceTempView("batch_records")
        spark.sql(f"INSERT OVERWRITE TABLE {table} PARTITION (batch_id='{_check(batch_id)}') "
                  f"SELECT {', '.join(columns)} FROM batch_records WHERE {where}")

    def written_offsets(self, spark: SparkSession, batch_id: str) -> DataFrame:
        """(partition, offset) of the batch's enriched rows, named as in a Kafka read."""
        return (spark.table(self.enriched).where(F.col("batch_id") == _check(batch_id))
                .select(F.col("kafka_partition").alias("partition"),
                        F.col("kafka_offset").alias("offset")))

    def batch_counts(self, spark: SparkSession, batch_id: str) -> WrittenCounts:
        """What was written for the batch, read back in one query: per Kafka partition
        (enriched rows, quarantined rows), and quarantined rows per reason."""
        return _read_counts(spark.sql(self._counts_sql(batch_id)).collect())

    def enriched_counts_and_repeats(self, spark: SparkSession, batch_id: str,
                                    kafka_partitions: list[int]) -> tuple[dict[int, int], bool]:
        """The batch's enriched rows per Kafka partition, and whether any trans_id occurs twice
        in the enriched table, from one scan of it (0.5 s at 1M rows; the counts of both
        tables and the check as separate scans took 1.0 s).

        Committed batches never share a trans_id, so after a batch's write a repeat involves
        that batch (or a table changed by hand, which the asset check no_duplicate_trans_id
        reports; the batch then only takes the slower, staged path). Distinct ids are counted
        exactly with bitmaps, a partial aggregate per 32,768 ids."""
        batch_id = _check(batch_id)
        partitions = [int(p) for p in kafka_partitions]
        per_partition = "".join(
            f", count_if(batch_id = '{batch_id}' AND kafka_partition = {p}) AS p{i}"
            for i, p in enumerate(partitions))
        totals = "".join(f", COALESCE(SUM(p{i}), 0)" for i in range(len(partitions)))
        (row,) = spark.sql(
            "SELECT COALESCE(SUM(n), 0) - COALESCE(SUM(ids), 0)" + totals + " FROM ("
            "SELECT COUNT(*) AS n, "
            "bitmap_count(bitmap_construct_agg(bitmap_bit_position(trans_id))) AS ids"
            f"{per_partition} FROM {self.enriched} GROUP BY bitmap_bucket_number(trans_id))"
        ).collect()
        return dict(zip(partitions, row[1:], strict=True)), row[0] > 0

    def _counts_sql(self, batch_id: str) -> str:
        batch_id = _check(batch_id)
        return (
            f"SELECT 0 AS side, kafka_partition, CAST(NULL AS STRING) AS reason, COUNT(*) AS n "
            f"FROM {self.enriched} WHERE batch_id = '{batch_id}' GROUP BY kafka_partition "
            f"UNION ALL SELECT 1 AS side, kafka_partition, reason, COUNT(*) AS n "
            f"FROM {self.quarantine} WHERE batch_id = '{batch_id}' "
            "GROUP BY kafka_partition, reason"
        )

    def clear_batch_work(self, spark: SparkSession, batch_id: str) -> None:
        """Drop a committed batch's work partitions (no listing: the batch id is known)."""
        for table in (self.staging, self.duplicates):
            _drop_partition(spark, table, batch_id)

    def compact(self, spark: SparkSession, batch_ids: list[str], into: str) -> tuple[int, int]:
        """Copy the rows of the batches `batch_ids` into partition `into` of the enriched and
        quarantine tables, and return (enriched, quarantined) rows copied. `into` counts only once
        the ledger says so (BatchLedger.compact); until then prepare drops it like any other
        uncommitted partition. Through the staging table: Spark cannot overwrite a table it
        reads in the same statement."""
        into = _check(into)
        ids = ", ".join(f"'{_check(batch_id)}'" for batch_id in batch_ids)

        def staged_from(table_types: dict[str, str]) -> str:
            return ", ".join(
                name if name in table_types else f"CAST(NULL AS {kind}) AS {name}"
                for name, kind in T.STAGED_TYPES.items())

        # Quarantined rows always have a reason; enriched rows never do.
        spark.sql(
            f"INSERT OVERWRITE TABLE {self.staging} PARTITION (batch_id='{into}') "
            f"SELECT {staged_from(T.ENRICHED_TYPES)} FROM {self.enriched} "
            f"WHERE batch_id IN ({ids}) UNION ALL "
            f"SELECT {staged_from(T.QUARANTINE_TYPES)} FROM {self.quarantine} "
            f"WHERE batch_id IN ({ids})")
        staged = f"FROM {self.staging} WHERE batch_id = '{into}'"
        spark.sql(f"INSERT OVERWRITE TABLE {self.enriched} PARTITION (batch_id='{into}') "
                  f"SELECT {', '.join(T.ENRICHED_COLUMNS)} {staged} AND reason IS NULL")
        spark.sql(f"INSERT OVERWRITE TABLE {self.quarantine} PARTITION (batch_id='{into}') "
                  f"SELECT {', '.join(T.QUARANTINE_COLUMNS)} {staged} AND reason IS NOT NULL")
        row = spark.sql(
            f"SELECT (SELECT COUNT(*) FROM {self.enriched} WHERE batch_id = '{into}') AS e, "
            f"(SELECT COUNT(*) FROM {self.quarantine} WHERE batch_id = '{into}') AS q").first()
        return int(row.e), int(row.q)

    def drop_batches(self, spark: SparkSession, batch_ids: list[str]) -> None:
        """Drop the partitions of committed-then-merged `batch_ids` (the work tables never
        hold a committed batch's): one statement per table, as hundreds of single drops
        would take a metastore round trip each."""
        specs = ", ".join(f"PARTITION (batch_id='{_check(b)}')" for b in batch_ids)
        for table in (self.enriched, self.quarantine):
            spark.sql(f"ALTER TABLE {table} DROP IF EXISTS {specs}")

    def rebuild_trends(self, spark: SparkSession) -> None:
        """Trends are always an aggregate of the whole enriched table, rewritten in full."""
        # One scan of the enriched table; the small cube is cached for the three trends.
        self.write_trends(spark, T.trend_cube(spark.table(self.enriched)))

    def write_trends(self, spark: SparkSession, cube: DataFrame) -> None:
        """The trends from a trend cube: one write of the cube table the trend views read."""
        cube.createOrReplaceTempView("new_trend_cube")
        columns = ", ".join(T.CUBE_COLUMNS)
        spark.sql(f"INSERT OVERWRITE TABLE {self.cube} SELECT {columns} FROM new_trend_cube")


def _read_counts(rows: list) -> WrittenCounts:
    """Rows of _counts_sql (side 0: enriched, 1: quarantined)."""
    counts: dict[int, list[int]] = {}
    reasons: dict[str, int] = {}
    for row in rows:
        counts.setdefault(row.kafka_partition, [0, 0])[row.side] += row.n
        if row.side == 1:
            reasons[row.reason] = reasons.get(row.reason, 0) + row.n
    return WrittenCounts(
        {partition: (pair[0], pair[1]) for partition, pair in counts.items()}, reasons)


def _drop_partition(spark: SparkSession, table: str, batch_id: str) -> None:
    spark.sql(f"ALTER TABLE {table} DROP IF EXISTS PARTITION (batch_id='{_check(batch_id)}')")


def _check(batch_id: str) -> str:
    if not _SAFE_BATCH_ID.match(batch_id):
        raise ValueError(f"unsafe batch id {batch_id!r}")
    return batch_id
