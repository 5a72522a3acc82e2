"""HiveTables on the real metastore: ensure (a current database costs no DDL, anything missing
or out of date is repaired) and the duplicate check after a batch's write."""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql import functions as F

from berka_assets import transformations as T
from berka_assets.config import Settings
from berka_assets.spark_jobs import hive_tables
from berka_assets.spark_jobs.hive_tables import HiveTables
from berka_assets_tests.streaming.harness import spark_session


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
        assert tables._fingerprint(spark) == hive_tables.DDL_FINGERPRINT
    finally:
        run_sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")


def test_duplicate_trans_ids_are_found_within_a_batch_and_against_committed_ones(
    stack: Settings,
) -> None:
    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")

    def write(batch_id: str, trans_ids: list[int]) -> None:
        ids = spark.createDataFrame([(i,) for i in trans_ids], "trans_id BIGINT")
        records = ids.select(
            *(F.col("trans_id") if name == "trans_id"
              else F.lit(0).cast(kind).alias(name) if name == "kafka_partition"
              else F.lit(None).cast(kind).alias(name)
              for name, kind in T.ENRICHED_TYPES.items()),
            F.lit(None).cast("string").alias("reason"),
        )
        tables.write_enriched(spark, records, batch_id)

    def repeats(batch_id: str, rows: int) -> bool:
        """Whether the enriched table repeats a trans_id, with the batch's counts checked."""
        enriched, repeated = tables.enriched_counts_and_repeats(spark, batch_id, [0, 1])
        assert enriched == {0: rows, 1: 0}
        assert tables.batch_counts(spark, batch_id).per_partition == (
            {0: (rows, 0)} if rows else {})
        return repeated

    def drop(batch_id: str) -> None:
        spark.sql(f"ALTER TABLE {tables.enriched} DROP PARTITION (batch_id='{batch_id}')")

    try:
        tables.ensure(spark)
        assert not repeats("b0", 0)  # empty
        write("b1", [1, 2, 3, 32_768, 32_769])  # across a bitmap bucket boundary
        assert not repeats("b1", 5)
        write("b2", [6, 6])
        assert repeats("b2", 2)
        drop("b2")
        write("b3", [40_000, 3])
        assert repeats("b3", 2)
        drop("b3")
        write("b4", [32_770, 10**12])
        assert not repeats("b4", 2)
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")


def test_columns_that_never_repeat_are_written_without_a_dictionary(stack: Settings) -> None:
    import glob

    import pyarrow.parquet as pq

    spark = spark_session(stack)
    tables = HiveTables(f"t_{uuid.uuid4().hex[:10]}")
    # 10 distinct values in every column, so Parquet would pick a dictionary for each (with
    # distinct values it falls back to plain by itself, and the test would prove nothing).
    rows = spark.range(1000).select(
        *((F.col("id") % 10).cast(kind).alias(name)
          if kind in ("BIGINT", "INT") or kind.startswith("DECIMAL")
          else F.lit(None).cast(kind).alias(name)
          for name, kind in T.ENRICHED_TYPES.items()),
        F.lit(None).cast("string").alias("reason"),
    )
    try:
        tables.ensure(spark)
        tables.write_enriched(spark, rows, "b1")
        location = spark.sql(f"DESCRIBE FORMATTED {tables.enriched}").where(
            "col_name = 'Location'").collect()[0].data_type.removeprefix("file:")
        paths = glob.glob(f"{location}/batch_id=b1/*.parquet")
        assert paths
        for path in paths:
            group = pq.ParquetFile(path).metadata.row_group(0)
            encodings = {group.column(i).path_in_schema: group.column(i).encodings
                         for i in range(group.num_columns)}
            for name in ("trans_id", "kafka_offset", "amount"):
                assert not any("DICTIONARY" in e for e in encodings[name]), (name, encodings)
            assert any("DICTIONARY" in e for e in encodings["account_id"]), encodings
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")
