"""The Berka reference tables in MySQL database `berka`, loaded together from the source."""


import time

import dagster as dg

from berka_assets.assets.catalog import OWNERS, mysql_table_metadata, table_value
from berka_assets.assets.source import SOURCE_FILES_KEY
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.mysql import MySQLResource
from berka_core.config import get_settings
from berka_core.dataset.reader import TableReader, read_table
from berka_core.dataset.schema import get_table, load_order
from berka_core.reference import mysql_loader

REFERENCE_TABLES = ("district", "account", "client", "disp", "loan", "card", "order")
PREVIEW_ROWS = 5


def reference_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["mysql", table])


def _spec(table: str) -> dg.AssetSpec:
    definition = get_table(table)
    parents = {fk.ref_table for fk in definition.foreign_keys}
    return dg.AssetSpec(
        key=reference_key(table),
        description=definition.description or f"Berka {table} table in MySQL",
        group_name="reference",
        kinds={"mysql"},
        deps=[SOURCE_FILES_KEY, *(reference_key(parent) for parent in sorted(parents))],
        metadata=mysql_table_metadata(table, get_settings().mysql.database),
        owners=OWNERS,
        skippable=True,
    )


@dg.multi_asset(specs=[_spec(table) for table in REFERENCE_TABLES], can_subset=True)
def reference_tables(
    context: dg.AssetExecutionContext, berka_source: BerkaSourceResource, mysql: MySQLResource
):
    """Stage every selected table, then swap all of them in within one MySQL transaction."""
    selected = [
        table for table in load_order()
        if table in REFERENCE_TABLES and reference_key(table) in context.selected_asset_keys
    ]
    staged: dict[str, tuple[str, int]] = {}
    lines: dict[str, dict] = {}
    with mysql.connect() as connection:
        mysql_loader.ensure_tables(connection, REFERENCE_TABLES)
        for table in selected:
            started = time.monotonic()
            with berka_source.open(table) as (stream, uri):
                reader = TableReader(stream, table, name=uri.rsplit("/", 1)[-1])
                key = get_table(table).primary_key
                lines[table] = {}

                def remember_lines(reader=reader, key=key, seen=lines[table]):
                    # Primary key -> file line, so an orphan can be reported by its line.
                    for record in reader:
                        seen[record[key]] = reader.line_number
                        yield record

                rows = mysql_loader.stage_rows(
                    connection,
                    table,
                    remember_lines(),
                    progress=lambda n, t=table: context.log.debug(f"{t}: {n:,} rows staged"),
                )
            staged[table] = (uri, rows)
            context.log.info(
                f"{table}: staged {rows:,} rows from {uri} in {time.monotonic() - started:.2f} s"
            )
        loads = mysql_loader.swap_in(connection, staged, lines)
        previews = {load.table: _preview(connection, load.table) for load in loads}
    for load in loads:
        yield dg.MaterializeResult(
            asset_key=reference_key(load.table),
            metadata={
                "dagster/row_count": load.rows_after,
                "source_uri": dg.MetadataValue.url(load.source_uri)
                if load.source_uri.startswith("s3://") else dg.MetadataValue.path(load.source_uri),
                "rows_upserted": load.inserted_or_updated,
                "rows_deleted": load.deleted,
                "load_seconds": round(load.seconds, 3),
                "preview": previews[load.table],
            },
        )


def _preview(connection, table: str) -> dg.MetadataValue:
    definition = get_table(table)
    columns = definition.column_names
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{table}` "
            f"ORDER BY `{definition.primary_key}` LIMIT {PREVIEW_ROWS}"
        )
        rows = cursor.fetchall()
    return table_value(columns, rows)


def source_row_count(berka_source: BerkaSourceResource, table: str) -> int:
    with berka_source.open(table) as (stream, _):
        return sum(1 for _ in read_table(stream, table))

