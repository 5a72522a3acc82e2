"""HiveTables.ensure on the real metastore: a current database costs no DDL, anything missing
or out of date is repaired."""

from __future__ import annotations

import uuid

import pytest

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
