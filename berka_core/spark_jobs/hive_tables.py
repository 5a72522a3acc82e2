"""The Delta tables of one pipeline database, registered in the Hive metastore.

Delta gives what readers need and Hive tables lack: every write is one atomic commit, and a
reader (PyHive, beeline, a notebook) always reads one committed version, never a half-written
or empty table. A batch appends its rows (one commit per table); a batch replayed after a crash
(ledger.py) instead replaces whatever rows of it a table holds, in one commit
(`INSERT INTO ... REPLACE WHERE batch_id = ...`), so it cannot add twice.

Why not Delta's idempotent writes (`txnAppId`/`txnVersion`): each such commit looks its app id
up in the table's whole state, a Spark job per commit; an append of 8 rows then took 2-4 s
instead of 0.3-0.6 s on the 2-core machine, and only a replay ever needs the protection.

Tables (same names and columns as the Parquet tables of earlier releases):
- `enriched_transactions`, `quarantine`: appended to, one commit per table and batch; `batch_id`
  says which batch wrote a row (the commit's user metadata too);
- `trend_cube`: rewritten whole in one commit per batch; the three trends are views over it, so
  they always agree with each other. A batch adds the enriched table's changes since the version
  the cube counts (its change data feed) to the cube, instead of aggregating the whole table.
Small files are compacted with Delta's OPTIMIZE and old ones removed with VACUUM (maintain),
which the callers run less often than OPTIMIZE (BERKA_DELTA_VACUUM_EVERY_HOURS).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from berka_core import transformations as T
from berka_core.config import get_settings

ENRICHED, QUARANTINE, CUBE = "enriched_transactions", "quarantine", "trend_cube"
# Work tables of the Parquet releases, which Delta's commits made unnecessary.
OBSOLETE_TABLES = ("batch_staging", "batch_duplicates")


# Commits between two Delta checkpoints. A checkpoint is written by the commit that reaches
# it, inside that batch or trigger: at Delta's default of 10, every tenth streaming trigger
# of each table paid for one and made the p95 latency (bench/RESULTS.md, session 17).
CHECKPOINT_INTERVAL = 100
_OPTIMIZE_MIN_FILE_SIZE = "spark.databricks.delta.optimize.minFileSize"
_COMMIT_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def table_properties(retention_hours: int, *extra: str) -> str:
    """Delta's log and deleted-file retention: how far back time travel reaches, and how long
    a file a reader's snapshot may still read survives VACUUM; the checkpoint interval."""
    interval = f"interval {int(retention_hours)} hours"
    return (f"TBLPROPERTIES ('delta.logRetentionDuration' = '{interval}', "
            f"'delta.deletedFileRetentionDuration' = '{interval}', "
            f"'delta.checkpointInterval' = '{CHECKPOINT_INTERVAL}'"
            + "".join(f", {item}" for item in extra) + ")")


# The enriched table's change data feed: the micro-batch adds the rows committed since the
# trend cube's last update to the cube instead of aggregating the whole table again.
CHANGE_FEED = "'delta.enableChangeDataFeed' = 'true'"
TABLE_EXTRA_PROPERTIES = {ENRICHED: (CHANGE_FEED,)}


def _table_ddl(columns: dict[str, str], comment: str) -> str:
    """`{table}` and `{properties}` are filled in later."""
    body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return (f"CREATE TABLE IF NOT EXISTS {{table}} ({body}) USING delta "
            f"COMMENT '{comment}' {{properties}}")


TABLE_DDL = {
    ENRICHED: _table_ddl(
        {**T.ENRICHED_TYPES, "batch_id": "STRING"},
        "Valid Berka transactions enriched from MySQL; one Delta commit per batch"),
    QUARANTINE: _table_ddl(
        {**T.QUARANTINE_TYPES, "batch_id": "STRING"},
        "Records that could not be enriched, with the raw payload and the reason"),
    # The trend cube (transformations.trend_cube): the three trends are views over it.
    CUBE: _table_ddl(dict(column.rsplit(" ", 1) for column in T.CUBE_SCHEMA.split(", ")),
                     "Counts and amounts by year, month, age band and gender"),
}
# Changes whenever a table or view definition does; HiveTables.ensure re-runs the DDL then.
DDL_FINGERPRINT = hashlib.sha1("\n".join([
    *TABLE_DDL.values(), *(trend.view_sql(CUBE) for trend in T.TRENDS.values()),
    *(item for extra in TABLE_EXTRA_PROPERTIES.values() for item in extra),
]).encode()).hexdigest()[:16]
# In the user metadata of each trend cube commit: the enriched table version the cube counts.
_CUBE_COUNTS = "berka.trend_cube.enriched_version="
# Commits of the trend cube that change no row; the cube's source version is in the last other.
_NO_DATA_CHANGE = ("VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "OPTIMIZE")
_FINGERPRINT_KEY = "berka.ddl_fingerprint"
_ALL_TABLES = {*TABLE_DDL, *T.TRENDS}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Maintained:
    compacted: dict[str, int]  # table -> files its OPTIMIZE removed (merged)
    vacuumed: tuple[str, ...]  # the tables VACUUM ran on

    def describe(self) -> str:
        files = sum(self.compacted.values())
        cleaned = (f"vacuumed {len(self.vacuumed)} tables" if self.vacuumed
                   else "nothing vacuumed")
        return f"compacted {files} files, {cleaned}"


@dataclass(frozen=True)
class WrittenCounts:
    per_partition: dict[int, tuple[int, int]]  # Kafka partition -> (enriched, quarantined)
    reasons: dict[str, int]  # quarantine reason -> rows


_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_BATCH_ID = re.compile(r"^[A-Za-z0-9_.:+-]{1,255}$")


@dataclass(frozen=True)
class HiveTables:
    database: str
    retention_hours: int = 24

    def __post_init__(self) -> None:
        if not _SAFE_NAME.match(self.database):
            raise ValueError(f"invalid Hive database name {self.database!r}")

    @property
    def ddl_fingerprint(self) -> str:
        """The DDL and the table properties (a changed retention reaches existing tables)."""
        text = f"{DDL_FINGERPRINT}\n{table_properties(self.retention_hours)}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def enriched(self) -> str:
        return self._qualified(ENRICHED)

    @property
    def quarantine(self) -> str:
        return self._qualified(QUARANTINE)

    @property
    def cube(self) -> str:
        return self._qualified(CUBE)

    def trend(self, name: str) -> str:
        return self._qualified(name)

    def _qualified(self, table: str) -> str:
        return f"`{self.database}`.`{table}`"

    def ensure(self, spark: SparkSession) -> None:
        """Create the database, Delta tables and trend views this release needs; convert the
        Parquet tables of an earlier release to Delta in place.

        Once done, the database carries a fingerprint of the DDL: later batches check it and
        the table names in two catalog calls instead of ~8 DDL statements.
        """
        if (self._fingerprint(spark) == self.ddl_fingerprint
                and self._table_names(spark) >= _ALL_TABLES):
            return
        tables = self._table_providers(spark)
        if tables is None:
            # IF NOT EXISTS alone makes the metastore log an AlreadyExists error every batch.
            spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            tables = {}
        for name, ddl in TABLE_DDL.items():
            properties = table_properties(self.retention_hours,
                                          *TABLE_EXTRA_PROPERTIES.get(name, ()))
            provider = tables.get(name)
            if provider == "parquet":
                # Written by an earlier release: Delta takes the files over as they are.
                log.warning("converting %s to a Delta table", self._qualified(name))
                spark.sql(f"CONVERT TO DELTA {self._qualified(name)}")
            spark.sql(ddl.format(table=self._qualified(name), properties=properties))
            spark.sql(f"ALTER TABLE {self._qualified(name)} SET {properties}")
        for name in OBSOLETE_TABLES:
            if name in tables:
                spark.sql(f"DROP TABLE {self._qualified(name)}")
        for name, trend in T.TRENDS.items():
            if name in tables and tables[name] != "view":
                # A trend table of an earlier release: the view replaces it.
                spark.sql(f"DROP TABLE {self.trend(name)}")
            # Replaced, so a changed definition reaches existing databases.
            spark.sql(f"CREATE OR REPLACE VIEW {self.trend(name)} AS "
                      f"{trend.view_sql(self.cube)}")
        spark.sql(f"ALTER DATABASE `{self.database}` SET DBPROPERTIES "
                  f"('{_FINGERPRINT_KEY}'='{self.ddl_fingerprint}')")

    def _table_providers(self, spark: SparkSession) -> dict[str, str] | None:
        """Table name -> "view", "delta", "parquet"...; None when the database does not exist."""
        if self.database not in {row[0] for row in spark.sql("SHOW DATABASES").collect()}:
            return None
        providers = {}
        for name in self._table_names(spark):
            if name not in _ALL_TABLES and name not in OBSOLETE_TABLES:
                continue
            rows = spark.sql(f"DESCRIBE TABLE EXTENDED {self._qualified(name)}").collect()
            details = {row[0]: (row[1] or "") for row in rows}
            providers[name] = ("view" if details.get("Type") == "VIEW"
                               else details.get("Provider", "hive").lower())
        return providers

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

    def committed_trans_ids(self, spark: SparkSession, but_batch: str) -> DataFrame:
        """The trans_ids of the enriched table, except those batch `but_batch` wrote (a batch
        replayed after a crash between its Delta commit and its ledger commit must classify
        its records as it did the first time, not as duplicates of themselves)."""
        return (spark.table(self.enriched).where(F.col("batch_id") != _check(but_batch))
                .select("trans_id"))

    def append_batch(self, spark: SparkSession, final: DataFrame, batch_id: str, *,
                     quarantine: bool = True, replace: bool = False) -> None:
        """Write the batch's records (each with its reason, null for a valid one): the
        quarantined ones first, then the enriched ones; one Delta commit each.

        `quarantine=False`: the caller knows no record has a reason (one commit only).
        `replace`: a replay; each table's rows of the batch, if any, are replaced."""
        if quarantine or replace:
            self._write(spark, self.quarantine, final.where(F.col("reason").isNotNull()),
                        T.QUARANTINE_COLUMNS, batch_id, replace)
        self._write(spark, self.enriched, final.where(F.col("reason").isNull()),
                    T.ENRICHED_COLUMNS, batch_id, replace)

    def _write(self, spark: SparkSession, table: str, records: DataFrame,
               columns: tuple[str, ...], batch_id: str, replace: bool) -> None:
        batch_id = _check(batch_id)
        records.select(*columns, F.lit(batch_id).alias("batch_id")).createOrReplaceTempView(
            "batch_rows")
        replacing = f"REPLACE WHERE batch_id = '{batch_id}' " if replace else ""
        spark.sql(f"INSERT INTO {table} {replacing}SELECT * FROM batch_rows")

    def batch_counts(self, spark: SparkSession, batch_id: str) -> WrittenCounts:
        """What the tables hold of a batch, read back in one query: per Kafka partition
        (enriched rows, quarantined rows), and quarantined rows per reason."""
        batch_id = _check(batch_id)
        rows = spark.sql(
            f"SELECT 0 AS side, kafka_partition, CAST(NULL AS STRING) AS reason, COUNT(*) AS n "
            f"FROM {self.enriched} WHERE batch_id = '{batch_id}' GROUP BY kafka_partition "
            f"UNION ALL SELECT 1 AS side, kafka_partition, reason, COUNT(*) AS n "
            f"FROM {self.quarantine} WHERE batch_id = '{batch_id}' "
            "GROUP BY kafka_partition, reason"
        ).collect()
        return read_counts(rows)

    def rebuild_trends(self, spark: SparkSession, version: int | None = None) -> None:
        """The trend cube aggregated from the whole enriched table, in one commit.

        The latest snapshot holds the rows of the version read just before it: the batches of a
        database are its only writer, one at a time (a compaction beside them changes files,
        not rows). Not `VERSION AS OF`: Delta refuses time travel past the deleted-file
        retention, which may be 0. `version`: the latest, when the caller just read it."""
        if version is None:
            version = self.version(spark, self.enriched)
        self.write_trends(spark, T.trend_cube(spark.table(self.enriched)), counts_version=version)

    def update_trends(self, spark: SparkSession) -> str:
        """The trend cube brought up to the enriched table's latest version, in one commit:
        the rows committed since the version the cube counts (Delta's change data feed;
        a replayed batch's replaced rows come out as deletes and inserts) added to the cube,
        signed, instead of a scan of the whole table. Each cube commit records the version it
        counts, so every change is added once, also after a crash between a batch's commits.
        A full rebuild when the cube does not say, or the changes are no longer readable.
        Returns how: "current", "incremental" or "rebuilt"."""
        with ThreadPoolExecutor(2, thread_name_prefix="trend-versions") as pool:
            latest_future = pool.submit(self.version, spark, self.enriched)
            counted = self.cube_counts_version(spark)
            latest = latest_future.result()
        if counted == latest:
            return "current"
        if counted is None or counted > latest:
            self.rebuild_trends(spark, latest)
            return "rebuilt"
        try:
            changes = spark.sql(f"SELECT * FROM table_changes('{self.database}.{ENRICHED}', "
                                f"{counted + 1}, {latest})")
            cube = T.add_changes_to_cube(spark.table(self.cube), changes)
            self.write_trends(spark, cube, counts_version=latest)
        # The feed is off for those versions, or past the retention. A failed write committed
        # nothing, and a full rebuild is right whatever happened, so any error gets one.
        except Exception as error:  # noqa: BLE001
            log.warning("trend cube of %s rebuilt in full: changes %s..%s unreadable: %s",
                        self.database, counted + 1, latest, str(error).splitlines()[0][:200])
            self.rebuild_trends(spark, latest)
            return "rebuilt"
        return "incremental"

    def cube_counts_version(self, spark: SparkSession) -> int | None:
        """The enriched table version the trend cube's latest rows count, from the user metadata
        of its last commit that changed rows; None if that commit does not say."""
        for row in spark.sql(f"DESCRIBE HISTORY {self.cube} LIMIT 10").collect():
            if row["operation"] in _NO_DATA_CHANGE:
                continue
            metadata = row["userMetadata"] or ""
            return int(metadata[len(_CUBE_COUNTS):]) if metadata.startswith(_CUBE_COUNTS) else None
        return None

    def write_trends(self, spark: SparkSession, cube: DataFrame, *,
                     counts_version: int | None = None) -> None:
        """The trends from a trend cube: one commit of the cube table the trend views read, so
        a reader sees the old cube or the new one, never an empty or partial one.
        `counts_version`: the enriched table version the cube counts (update_trends)."""
        cube.createOrReplaceTempView("new_trend_cube")
        columns = ", ".join(T.CUBE_COLUMNS)
        metadata = None if counts_version is None else f"{_CUBE_COUNTS}{int(counts_version)}"
        with _session_conf(spark, _COMMIT_USER_METADATA, metadata):
            spark.sql(f"INSERT OVERWRITE TABLE {self.cube} SELECT {columns} FROM new_trend_cube")

    def maintain(self, spark: SparkSession, *, vacuum: bool = True,
                 compact_below_mb: int | None = None) -> Maintained:
        """Compact the appended tables' files smaller than `compact_below_mb` (OPTIMIZE; default
        BERKA_DELTA_COMPACT_BELOW_MB) and, with `vacuum`, delete the files no version within
        the retention reads (VACUUM, which keeps what a running reader's snapshot may still
        need). Safe beside appending writers: a compaction only rewrites what it read.

        A table younger than the retention is not vacuumed: VACUUM deletes only files
        unreferenced for longer than the retention, so it could find nothing, yet it lists
        the table and reads its state (the soak's maintenance runs spent most of their time
        there, on two saturated cores)."""
        if compact_below_mb is None:
            compact_below_mb = get_settings().spark.compact_below_mb
        compacted = {}
        with _session_conf(spark, _OPTIMIZE_MIN_FILE_SIZE, str(compact_below_mb * 2**20)):
            for table in (self.enriched, self.quarantine):
                (metrics,) = spark.sql(f"OPTIMIZE {table}").select(
                    "metrics.numFilesRemoved").first()
                compacted[table] = int(metrics or 0)
        vacuumed = []
        for table in (self.enriched, self.quarantine, self.cube) if vacuum else ():
            if self._younger_than_retention(spark, table):
                continue
            spark.sql(f"VACUUM {table}").collect()
            vacuumed.append(table)
        return Maintained(compacted, tuple(vacuumed))

    def _younger_than_retention(self, spark: SparkSession, table: str) -> bool:
        # The table's own retention (the one VACUUM applies; Delta's default is a week),
        # compared in Spark, on the clock Delta's retention check uses.
        retention = ("CAST(coalesce(properties['delta.deletedFileRetentionDuration'], "
                     "'interval 1 week') AS INTERVAL)")
        (young,) = spark.sql(f"DESCRIBE DETAIL {table}").select(
            F.expr(f"createdAt > current_timestamp() - {retention}")).first()
        return bool(young)

    def version(self, spark: SparkSession, table: str) -> int:
        """The table's latest committed Delta version."""
        return int(spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()["version"])

    def versions(self, spark: SparkSession) -> dict[str, int]:
        """The latest versions of the enriched table and the trend cube (the trends' source),
        read concurrently: two round trips in the time of one."""
        with ThreadPoolExecutor(2, thread_name_prefix="delta-version") as pool:
            futures = {name: pool.submit(self.version, spark, self._qualified(name))
                       for name in (ENRICHED, CUBE)}
            return {name: future.result() for name, future in futures.items()}

    def file_count(self, spark: SparkSession, table: str) -> int:
        """Data files of the table's current version."""
        return int(spark.sql(f"DESCRIBE DETAIL {table}").first()["numFiles"])

    def trends_as_of(self, spark: SparkSession, name: str, *, version: int | None = None,
                     timestamp: str | None = None) -> DataFrame:
        """A trend as it was at an earlier version (or time) of the trend cube: time travel."""
        return spark.sql(self.trend_sql(name, version=version, timestamp=timestamp))

    def trend_sql(self, name: str, *, version: int | None = None,
                  timestamp: str | None = None) -> str:
        """The SQL of a trend view, over the trend cube as of a version or a timestamp (the
        views themselves always read the latest commit). For Spark and for HiveServer2."""
        if version is not None and timestamp is not None:
            raise ValueError("give a version or a timestamp, not both")
        as_of = ""
        if version is not None:
            as_of = f" VERSION AS OF {int(version)}"
        elif timestamp is not None:
            as_of = f" TIMESTAMP AS OF '{_check_timestamp(timestamp)}'"
        return T.TRENDS[name].view_sql(self.cube + as_of)


def read_counts(rows: list) -> WrittenCounts:
    """Rows of (side, kafka_partition, reason, n), side 0 enriched and 1 quarantined."""
    counts: dict[int, list[int]] = {}
    reasons: dict[str, int] = {}
    for row in rows:
        counts.setdefault(row.kafka_partition, [0, 0])[row.side] += row.n
        if row.side == 1:
            reasons[row.reason] = reasons.get(row.reason, 0) + row.n
    return WrittenCounts(
        {partition: (pair[0], pair[1]) for partition, pair in counts.items()}, reasons)


def _check(batch_id: str) -> str:
    if not _SAFE_BATCH_ID.match(batch_id):
        raise ValueError(f"unsafe batch id {batch_id!r}")
    return batch_id


def _check_timestamp(timestamp: str) -> str:
    if not re.fullmatch(r"[0-9: .T+-]{4,40}", timestamp):
        raise ValueError(f"not a timestamp: {timestamp!r}")
    return timestamp


@contextmanager
def _session_conf(spark: SparkSession, key: str, value: str | None) -> Iterator[None]:
    """`key` set to `value` in the session for the statements inside, unset after (None:
    left as it is). Delta reads these per statement, not per table or writer."""
    if value is None:
        yield
        return
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.unset(key)
