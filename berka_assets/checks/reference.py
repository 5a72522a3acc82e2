"""Checks on the live MySQL reference tables: they catch drift after a load, too."""


import dagster as dg

from berka_assets.assets.reference import REFERENCE_TABLES, reference_key, source_row_count
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.mysql import MySQLResource
from berka_core.dataset.schema import get_table
from berka_core.reference.mysql_loader import orphan_counts


def _table_count(mysql: MySQLResource, table: str) -> int:
    with mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
        return cursor.fetchone()[0]


def reference_checks(table: str) -> list[dg.AssetChecksDefinition]:
    asset = reference_key(table)
    definition = get_table(table)
    key_columns = [definition.primary_key, *(fk.column for fk in definition.foreign_keys)]

    @dg.asset_check(asset=asset, name="row_count_matches_source",
                    description="The table has exactly as many rows as the source file.")
    def row_count_matches_source(
        berka_source: BerkaSourceResource, mysql: MySQLResource
    ) -> dg.AssetCheckResult:
        expected = source_row_count(berka_source, table)
        actual = _table_count(mysql, table)
        return dg.AssetCheckResult(
            passed=actual == expected,
            metadata={"table_rows": actual, "source_rows": expected,
                      "source": berka_source.describe()},
        )

    @dg.asset_check(asset=asset, name="foreign_keys_resolve",
                    description="Every foreign key names an existing parent row.")
    def foreign_keys_resolve(mysql: MySQLResource) -> dg.AssetCheckResult:
        with mysql.connect() as connection:
            orphans = orphan_counts(connection, table)
        return dg.AssetCheckResult(
            passed=not any(orphans.values()),
            metadata={f"orphans {fk}": count for fk, count in orphans.items()}
            or {"foreign_keys": "none"},
        )

    @dg.asset_check(asset=asset, name="no_null_keys",
                    description="Primary and foreign key columns hold no NULL.")
    def no_null_keys(mysql: MySQLResource) -> dg.AssetCheckResult:
        conditions = " OR ".join(f"`{c}` IS NULL" for c in key_columns)
        with mysql.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM `{table}` WHERE {conditions}")
            (nulls,) = cursor.fetchone()
        return dg.AssetCheckResult(passed=nulls == 0,
                                   metadata={"rows_with_null_key": nulls,
                                             "key_columns": ", ".join(key_columns)})

    return [row_count_matches_source, foreign_keys_resolve, no_null_keys]


REFERENCE_CHECKS = [check for table in REFERENCE_TABLES for check in reference_checks(table)]
