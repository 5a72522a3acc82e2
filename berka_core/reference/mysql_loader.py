"""Load Berka reference tables into MySQL: bulk, idempotent, and atomic.

Rows are bulk-inserted into a temporary staging table first, outside any lock. Then one
transaction makes the live tables equal to the staged ones: upserts parents-first, deletions
children-first. Readers see the old tables or the new ones, never a mix; a failure (bad row,
duplicate key, orphan foreign key) rolls back and leaves the previous good tables in place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berka_core.dataset.schema import get_table, load_order, mysql_create_table

log = logging.getLogger(__name__)

INSERT_BATCH_ROWS = 5_000


class ReferenceLoadError(RuntimeError):
    """A load was refused; the live tables are unchanged."""


@dataclass(frozen=True)
class TableLoad:
    table: str
    source_uri: str
    source_rows: int
    inserted_or_updated: int
    deleted: int
    rows_after: int
    seconds: float


def ensure_tables(connection, tables: Iterable[str] | None = None) -> None:
    """Create missing tables in FK order (idempotent)."""
    with connection.cursor() as cursor:
        for name in load_order():
            if tables is None or name in tables:
                cursor.execute(mysql_create_table(name))


def _staging(name: str) -> str:
    return f"`stage_{name}`"


def stage_rows(
    connection,
    table: str,
    records: Iterable[Mapping[str, Any]],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Bulk-insert records into a temporary copy of `table` (no FKs), return the row count."""
    definition = get_table(table)
    columns = definition.column_names
    placeholders = ", ".join(["%s"] * len(columns))
    column_list = ", ".join(f"`{c}`" for c in columns)
    staged = 0
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {_staging(table)}")
        # LIKE copies columns and the primary key (so duplicates fail here) but no foreign keys.
        cursor.execute(f"CREATE TEMPORARY TABLE {_staging(table)} LIKE `{table}`")
        sql = f"INSERT INTO {_staging(table)} ({column_list}) VALUES ({placeholders})"
        batch: list[tuple[Any, ...]] = []
        for record in records:
            batch.append(tuple(record[c] for c in columns))
            if len(batch) >= INSERT_BATCH_ROWS:
                cursor.executemany(sql, batch)
                staged += len(batch)
                batch.clear()
                if progress:
                    progress(staged)
        if batch:
            cursor.executemany(sql, batch)
            staged += len(batch)
            if progress:
                progress(staged)
    return staged


def orphan_counts(connection, table: str, source: str | None = None) -> dict[str, int]:
    """Rows of `table` (or of its staging copy) whose foreign key names no parent row."""
    definition = get_table(table)
    relation = source or f"`{table}`"
    counts = {}
    with connection.cursor() as cursor:
        for fk in definition.foreign_keys:
            cursor.execute(
                f"SELECT COUNT(*) FROM {relation} c LEFT JOIN `{fk.ref_table}` p "
                f"ON c.`{fk.column}` = p.`{fk.ref_column}` "
                f"WHERE c.`{fk.column}` IS NOT NULL AND p.`{fk.ref_column}` IS NULL"
            )
            counts[f"{fk.column} -> {fk.ref_table}.{fk.ref_column}"] = cursor.fetchone()[0]
    return counts


def staged_orphans(
    connection, staged: Mapping[str, tuple[str, int]], limit: int = 5
) -> list[tuple[str, str, Any, Any]]:
    """Staged rows whose foreign key names no parent, in the staged parent or the live one.

    Returns (table, "column -> parent.column", primary key, foreign key value) tuples.
    """
    found = []
    with connection.cursor() as cursor:
        for name in staged:
            definition = get_table(name)
            for fk in definition.foreign_keys:
                parent = _staging(fk.ref_table) if fk.ref_table in staged else f"`{fk.ref_table}`"
                cursor.execute(
                    f"SELECT c.`{definition.primary_key}`, c.`{fk.column}` FROM {_staging(name)} c "
                    f"LEFT JOIN {parent} p ON c.`{fk.column}` = p.`{fk.ref_column}` "
                    f"WHERE p.`{fk.ref_column}` IS NULL LIMIT {limit}"
                )
                found += [(name, f"{fk.column} -> {fk.ref_table}.{fk.ref_column}", key, value)
                          for key, value in cursor.fetchall()]
    return found


def swap_in(
    connection,
    staged: Mapping[str, tuple[str, int]],
    lines: Mapping[str, Mapping[Any, int]] | None = None,
) -> list[TableLoad]:
    """Make the live tables equal to their staging copies in ONE transaction.

    `staged` maps table -> (source URI, staged rows); `lines` optionally maps table -> primary
    key -> line in the source file, for error messages. Commits on success, rolls back on error.
    """
    orphans = staged_orphans(connection, staged)
    if orphans:
        described = "; ".join(
            f"{staged[table][0]} line {(lines or {}).get(table, {}).get(key, '?')}: "
            f"{table} {key} has {fk.split(' -> ')[0]} = {value}, not found in "
            f"{fk.split(' -> ')[1]}"
            for table, fk, key, value in orphans
        )
        raise ReferenceLoadError(
            f"orphan foreign key(s), nothing was loaded and the previous tables are unchanged: "
            f"{described}"
        )
    order = [name for name in load_order() if name in staged]
    started = time.monotonic()
    changed: dict[str, tuple[int, int]] = {}
    try:
        with connection.cursor() as cursor:
            connection.begin()
            for name in order:  # parents first, so children's new keys find their parents
                definition = get_table(name)
                columns = ", ".join(f"`{c}`" for c in definition.column_names)
                updates = ", ".join(
                    f"`{c}` = VALUES(`{c}`)"
                    for c in definition.column_names
                    if c != definition.primary_key
                )
                upserted = cursor.execute(
                    f"INSERT INTO `{name}` ({columns}) SELECT {columns} FROM {_staging(name)} "
                    f"ON DUPLICATE KEY UPDATE {updates}"
                )
                changed[name] = (upserted, 0)
            for name in reversed(order):  # children first, so no parent loses a referenced row
                key = get_table(name).primary_key
                deleted = cursor.execute(
                    f"DELETE FROM `{name}` WHERE `{key}` NOT IN "
                    f"(SELECT `{key}` FROM {_staging(name)})"
                )
                changed[name] = (changed[name][0], deleted)
            results = []
            for name in order:
                cursor.execute(f"SELECT COUNT(*) FROM `{name}`")
                (rows_after,) = cursor.fetchone()
                uri, source_rows = staged[name]
                if rows_after != source_rows:
                    raise ReferenceLoadError(
                        f"{name}: {rows_after} rows after the load but {source_rows} in "
                        f"{uri}; rolled back"
                    )
                results.append(
                    TableLoad(name, uri, source_rows, changed[name][0], changed[name][1],
                              rows_after, time.monotonic() - started)
                )
        connection.commit()
        return results
    except Exception as error:
        connection.rollback()
        if isinstance(error, ReferenceLoadError):
            raise
        raise ReferenceLoadError(
            f"loading {', '.join(order)} failed and was rolled back; the previous tables are "
            f"unchanged: {_describe(error)}"
        ) from error


def _describe(error: Exception) -> str:
    args = getattr(error, "args", ())
    if len(args) == 2 and isinstance(args[0], int):
        code, message = args
        if code in (1451, 1452):
            return f"a foreign key would be broken ({message})"
        if code == 1062:
            return f"duplicate primary key ({message})"
        return f"MySQL error {code}: {message}"
    return str(error)
