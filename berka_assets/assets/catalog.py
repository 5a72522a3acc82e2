"""Catalog metadata of the table assets (`dagster/column_schema`, `dagster/table_name`), derived
from the one definition of each table: berka/schema.py for MySQL, transformations.py for the
Hive tables and views. The UI then shows every column, its type and its constraints."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal

import dagster as dg

from berka_core import transformations as T
from berka_core.dataset.schema import get_table, mysql_type

# Who answers for the assets in the catalog.
OWNERS = ["team:data-platform"]

# "CAST(... AS decimal(25,2)) AS total_amount" -> ("decimal(25,2)", "total_amount")
_CAST_ALIAS = re.compile(r"AS ([a-z]+(?:\(\d+,\s*\d+\))?)\)\s+AS (\w+)$", re.IGNORECASE)


def streaming_spec(key: dg.AssetKey, description: str, kinds: set[str],
                   deps: Sequence[dg.AssetKey]) -> dg.AssetSpec:
    """An asset of the streaming group that Dagster observes but does not materialize itself
    (the topic, the streaming job): one owner and group for all of them."""
    return dg.AssetSpec(key=key, description=description, group_name="streaming", kinds=kinds,
                        deps=deps, owners=OWNERS)


def mysql_table_metadata(table: str, database: str) -> dict[str, object]:
    definition = get_table(table)
    columns = [
        dg.TableColumn(
            name=column.name,
            type=mysql_type(column),
            description=column.description or None,
            constraints=dg.TableColumnConstraints(
                nullable=column.nullable,
                unique=column.name == definition.primary_key,
                other=[f"one of {sorted(column.values)}"] if column.values else [],
            ),
        )
        for column in definition.columns
    ]
    keys = [f"PRIMARY KEY ({definition.primary_key})"] + [
        f"FOREIGN KEY ({fk.column}) REFERENCES {fk.ref_table} ({fk.ref_column})"
        for fk in definition.foreign_keys
    ]
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=columns, constraints=dg.TableConstraints(other=keys)),
        "dagster/table_name": f"{database}.{table}",
    }


def _hive_columns(table: str) -> dict[str, str]:
    """Column -> Spark SQL type of a Hive table or trend view."""
    if table == "enriched_transactions":
        return {**T.ENRICHED_TYPES, "batch_id": "STRING"}
    if table == "quarantine":
        return {**T.QUARANTINE_TYPES, "batch_id": "STRING"}
    trend = T.TRENDS[table]
    cube = dict(column.rsplit(" ", 1) for column in T.CUBE_SCHEMA.split(", "))
    columns = {key: cube[key] for key in trend.keys}
    for expression in trend.values:
        match = _CAST_ALIAS.search(expression)
        if match is None:
            raise ValueError(f"trend {table}: no CAST ... AS <name> in {expression!r}")
        columns[match.group(2)] = match.group(1).upper()
    return columns


def hive_table_metadata(table: str, database: str) -> dict[str, object]:
    # What identifies a row: a trend's keys, a transaction's id (the quarantine may hold a
    # trans_id more than once: a duplicate is quarantined with its reason).
    keys = set(T.TRENDS[table].keys) if table in T.TRENDS else (
        {"trans_id"} if table == "enriched_transactions" else set())
    return {
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(name=name, type=kind,
                           constraints=dg.TableColumnConstraints(unique=name in keys
                                                                 and len(keys) == 1))
            for name, kind in _hive_columns(table).items()
        ]),
        "dagster/table_name": f"{database}.{table}",
    }


def _cell(value: object) -> str | int | float | bool | None:
    # Amounts stay exact (to the cent) as text; dates as ISO text.
    if isinstance(value, Decimal | dt.date):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def table_value(columns: Sequence[str], rows: Sequence[Sequence[object]],
                limit: int | None = None) -> dg.MetadataValue:
    """Rows as a table the UI renders (sortable, with a schema), not hand-made markdown."""
    shown = rows if limit is None else rows[:limit]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: _cell(v) for c, v in zip(columns, row, strict=True)})
                 for row in shown],
        schema=dg.TableSchema(columns=[dg.TableColumn(name=c) for c in columns]),
    )
