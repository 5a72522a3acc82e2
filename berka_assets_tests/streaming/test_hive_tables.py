"""HiveTables on the real metastore: ensure (a current database costs no DDL, anything missing
or out of date is repaired, Parquet tables of an earlier release become Delta tables), and
replays (a batch written again replaces its rows, never adds them), and the trend cube's
incremental update."""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql import functions as F

from berka_assets_tests.streaming.harness import spark_session
from berka_core import transformations as T
from berka_core.config import Settings
from berka_core.spark_jobs import hive_tables
from berka_core.spark_jobs.hive_tables import HiveTables

pytestmark = pytest.mark.integration


def test_ensure_skips_a_current_database_and_repairs_the_rest(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")

    def kinds() -> dict[str, str]:
        return {t.name: t.tableType for t in spark.catalog.listTables(tables.database)}

    statements: list[str] = []
    run_sql = spark.sql

    def recording_sql(query: str, *args, **kwargs):
        statements.append(query.split(None, 1)[0].upper())
        return run_sql(query, *args, **kwargs)

    try:
        tables.ensure(spark)
        assert set(kinds()) == hive_tables._ALL_TABLES
        assert {kinds()[name] for name in ("monthly_trend", "yearly_trend")} == {"VIEW"}
        for table in (tables.enriched, tables.quarantine, tables.cube):
            assert spark.sql(f"DESCRIBE DETAIL {table}").first()["format"] == "delta"

        monkeypatch.setattr(spark, "sql", recording_sql)
        tables.ensure(spark)
        assert not {"CREATE", "ALTER", "DROP"} & set(statements), statements

        run_sql(f"DROP VIEW {tables.trend('yearly_trend')}")
        tables.ensure(spark)
        assert kinds()["yearly_trend"] == "VIEW"

        # An earlier release: a trend TABLE and no fingerprint. The view replaces the table.
        run_sql(f"DROP VIEW {tables.trend('monthly_trend')}")
        run_sql(f"CREATE TABLE {tables.trend('monthly_trend')} (year INT) USING parquet")
        run_sql(f"ALTER DATABASE `{tables.database}` SET DBPROPERTIES "
                f"('{hive_tables._FINGERPRINT_KEY}'='0')")
        statements.clear()
        tables.ensure(spark)
        assert kinds()["monthly_trend"] == "VIEW" and "CREATE" in statements
        assert tables._fingerprint(spark) == tables.ddl_fingerprint
    finally:
        run_sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")


def test_parquet_tables_of_an_earlier_release_become_delta_tables_with_their_rows(
    stack: Settings,
) -> None:
    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")
    columns = ", ".join(f"{name} {kind}" for name, kind in T.ENRICHED_TYPES.items())
    try:
        spark.sql(f"CREATE DATABASE `{tables.database}`")
        # The layout of the Parquet releases: a partition per batch, and a work table.
        spark.sql(f"CREATE TABLE {tables.enriched} ({columns}, batch_id STRING) USING parquet "
                  "PARTITIONED BY (batch_id)")
        spark.sql(f"INSERT INTO {tables.enriched} SELECT "
                  + ", ".join(f"CAST({1 if name == 'trans_id' else 'NULL'} AS {kind})"
                              for name, kind in T.ENRICHED_TYPES.items()) + ", 'b1'")
        spark.sql(f"CREATE TABLE `{tables.database}`.batch_staging (x INT) USING parquet")
        tables.ensure(spark)
        assert spark.sql(f"DESCRIBE DETAIL {tables.enriched}").first()["format"] == "delta"
        assert [row.trans_id for row in spark.table(tables.enriched).collect()] == [1]
        assert "batch_staging" not in tables._table_names(spark)
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")


def test_a_replayed_batch_replaces_its_rows_in_one_commit(stack: Settings) -> None:
    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")

    def batch(trans_ids: list[int], reasons: dict[int, str]):
        ids = spark.createDataFrame([(i, reasons.get(i)) for i in trans_ids],
                                    "trans_id BIGINT, reason STRING")
        return ids.select(
            *(F.col("trans_id").cast(kind).alias(name) if name == "kafka_offset"
              else F.lit(0).cast(kind).alias(name) if name == "kafka_partition"
              else F.lit(None).cast(kind).alias(name)
              for name, kind in T.ENRICHED_TYPES.items() if name != "trans_id"),
            "trans_id", "reason", F.lit("{}").alias("raw_value"))

    def enriched_ids() -> list[int]:
        return sorted(r.trans_id for r in spark.table(tables.enriched).collect())

    try:
        tables.ensure(spark)
        first = batch([1, 2, 3], {3: T.REASON_UNKNOWN_ACCOUNT})
        tables.append_batch(spark, first, "b1")
        tables.append_batch(spark, batch([4], {}), "b2")
        assert tables.batch_counts(spark, "b1").per_partition == {0: (2, 1)}
        before = tables.version(spark, tables.enriched)
        for _ in range(2):  # a replay, and another: the rows of b1 are replaced, not added
            tables.append_batch(spark, first, "b1", replace=True)
        assert tables.batch_counts(spark, "b1").per_partition == {0: (2, 1)}
        assert enriched_ids() == [1, 2, 4]
        assert tables.version(spark, tables.enriched) == before + 2  # one commit per replay
        # A replay of a batch whose first attempt committed nothing (the crash came first).
        tables.append_batch(spark, batch([5], {}), "b3", replace=True)
        assert enriched_ids() == [1, 2, 4, 5]
        assert tables.committed_trans_ids(spark, but_batch="b2").count() == 3
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")


def test_the_trend_cube_counts_each_commit_of_the_enriched_table_once(stack: Settings) -> None:
    """update_trends adds the changes since the version the cube counts (a replay's replaced
    rows come out as deletes and inserts), catches up after a cube commit a crash skipped, and
    rebuilds in full when the change feed cannot say."""
    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")
    cells = {"year": "1995 + trans_id % 2", "month": "1 + trans_id % 3",
             "age_band": "IF(trans_id % 2 = 0, '18-30', '31-45')", "gender": "'F'",
             "amount": "CAST(trans_id * 10.25 AS DECIMAL(15,2))"}

    def batch(trans_ids: list[int]):
        ids = spark.createDataFrame([(i,) for i in trans_ids], "trans_id BIGINT")
        return ids.select(*(
            F.col("trans_id") if name == "trans_id"
            else F.expr(cells[name]).cast(kind).alias(name) if name in cells
            else F.lit(0).cast(kind).alias(name) if name in ("kafka_partition", "kafka_offset")
            else F.lit(None).cast(kind).alias(name)
            for name, kind in T.ENRICHED_TYPES.items()),
            F.lit(None).cast("string").alias("reason"), F.lit("{}").alias("raw_value"))

    def cube() -> list[tuple]:
        return sorted(tuple(row) for row in spark.table(tables.cube).collect())

    def aggregated() -> list[tuple]:
        return sorted(tuple(row) for row in T.trend_cube(spark.table(tables.enriched)).collect())

    try:
        tables.ensure(spark)
        tables.append_batch(spark, batch([1, 2, 3]), "b1", quarantine=False)
        assert tables.update_trends(spark) == "rebuilt"  # a new cube does not say what it counts
        assert cube() == aggregated() and len(cube()) == 3
        assert tables.update_trends(spark) == "current"
        then = (tables.version(spark, tables.cube), tables.cube_counts_version(spark))

        tables.append_batch(spark, batch([4, 5, 6, 7]), "b2", quarantine=False)
        tables.append_batch(spark, batch([1, 2, 3]), "b1", replace=True)  # a replay
        assert tables.update_trends(spark) == "incremental"
        assert cube() == aggregated()
        # A replay that finds none of its rows any more: cells left empty leave the cube.
        tables.append_batch(spark, batch([5]), "b2", replace=True)
        assert tables.update_trends(spark) == "incremental"
        assert cube() == aggregated() and len(cube()) < 6

        # A crash between a batch's ledger commit and its cube commit: the cube is behind.
        tables.write_trends(spark, spark.sql(f"SELECT * FROM {tables.cube} VERSION AS OF "
                                             f"{then[0]}"), counts_version=then[1])
        tables.append_batch(spark, batch([8, 9]), "b3", quarantine=False)
        assert tables.update_trends(spark) == "incremental"
        assert cube() == aggregated()
        assert tables.cube_counts_version(spark) == tables.version(spark, tables.enriched)

        # Versions the change feed did not record: rebuilt from the whole table instead.
        spark.sql(f"ALTER TABLE {tables.enriched} SET TBLPROPERTIES "
                  "('delta.enableChangeDataFeed' = 'false')")
        tables.append_batch(spark, batch([10]), "b4", quarantine=False)
        assert tables.update_trends(spark) == "rebuilt"
        assert cube() == aggregated()
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")


def test_maintenance_compacts_only_the_files_under_the_threshold(stack: Settings) -> None:
    """A compacted file that reached BERKA_DELTA_COMPACT_BELOW_MB stays as it is: with Delta's
    own threshold (1 GB) every maintenance rewrote the whole table, and grew with it."""
    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")

    def batch(first: int, count: int):
        ids = spark.range(first, first + count).withColumnRenamed("id", "trans_id")
        return ids.select(*(
            F.col("trans_id") if name == "trans_id"
            # Hashes do not compress: the first batch makes a file of a few MiB.
            else F.sha2(F.col("trans_id").cast("string"), 256).alias(name) if kind == "STRING"
            else F.lit(None).cast(kind).alias(name)
            for name, kind in T.ENRICHED_TYPES.items()),
            F.lit(None).cast("string").alias("reason"), F.lit("{}").alias("raw_value"))

    def files() -> dict[str, int]:
        rows = spark.table(tables.enriched).select("_metadata.file_path", "_metadata.file_size")
        return dict(rows.distinct().collect())

    try:
        tables.ensure(spark)
        tables.append_batch(spark, batch(0, 40_000).coalesce(1), "big", quarantine=False)
        (big, size), = files().items()
        assert size > 2**20, size
        for number in range(3):
            tables.append_batch(spark, batch(100_000 + 10 * number, 10), f"small{number}",
                                quarantine=False)
        small = len(files()) - 1
        assert small >= 3
        done = tables.maintain(spark, vacuum=False, compact_below_mb=1)
        assert done.compacted[tables.enriched] == small
        assert big in files() and len(files()) == 2
        # Delta's own threshold: both files, the big one included, rewritten into one.
        done = tables.maintain(spark, vacuum=False, compact_below_mb=1024)
        assert done.compacted[tables.enriched] == 2
        assert big not in files() and len(files()) == 1
        assert spark.table(tables.enriched).count() == 40_030
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")
