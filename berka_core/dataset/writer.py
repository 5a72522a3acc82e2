"""Writes records back in the exact physical format of the original Berka files.

Same header line (district's unquoted A1..A16 included), `;`, CRLF, text always double-quoted,
None text as nothing (so trans's three empties None / "" / " " come back as written), money with
two decimals, loan.amount as an integer, dates as YYMMDD, card.issued as "YYMMDD 00:00:00",
district's missing numbers as `?`. Reading a real file and writing its records gives the same
bytes. Records are the reader's dicts; `write_values` also takes sequences in file column order,
which is what the generator uses for speed.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from berka_core.dataset.schema import Column, Kind, Table, get_table

LINE_END = "\r\n"
_FLUSH_EVERY = 2048  # rows buffered before one write(): fewer, larger writes are much faster

_yymmdd_cache: dict[dt.date, str] = {}


def format_yymmdd(value: dt.date) -> str:
    """A date as YYMMDD. Only 19xx dates can be written: the format has no century."""
    text = _yymmdd_cache.get(value)
    if text is None:
        if not 1900 <= value.year <= 1999:
            raise ValueError(f"{value} cannot be written as YYMMDD: only 1900-1999 dates can")
        text = _yymmdd_cache[value] = f"{value.year - 1900:02d}{value.month:02d}{value.day:02d}"
    return text


def _decimal_formatter(scale: int) -> Callable[[Any], str]:
    spec = f".{scale}f"

    def format_decimal(value: Any) -> str:
        # str() is right and quicker whenever the value already has `scale` decimals, which is
        # the case for everything the reader and the generator produce.
        text = str(value)
        if scale and text[-scale - 1 : -scale] == "." and "E" not in text:
            return text
        return format(value, spec)

    return format_decimal


def _quote(value: str | None) -> str:
    return "" if value is None else f'"{value}"'


def _formatter(column: Column, table: Table) -> Callable[[Any], str]:
    if column.is_text:
        return _quote
    if column.kind is Kind.INT:
        base: Callable[[Any], str] = str
    elif column.kind in (Kind.MONEY, Kind.DECIMAL):
        base = _decimal_formatter(column.scale or 0)
    elif column.kind is Kind.DATE:
        base = format_yymmdd
    elif column.kind is Kind.CARD_DATETIME:

        def base(value: Any) -> str:
            return format_yymmdd(value) + " 00:00:00"

    else:
        raise AssertionError(f"no formatter for {column.kind}")
    if not column.nullable:
        return base
    marker = table.missing_marker

    def format_nullable(value: Any) -> str:
        return marker if value is None else base(value)

    return format_nullable


def _compile_line_formatter(table: Table, *, from_mapping: bool) -> Callable[[Any], str]:
    """A function from a record (or a value sequence) to its line, CRLF included.

    Generated from the schema, like the reader's row parser: one f-string with a call per field
    formats trans rows about twice as fast as a generic join over a list.
    """
    namespace: dict[str, Any] = {}
    parts = []
    for index, column in enumerate(table.file_columns):
        namespace[f"format_{index}"] = _formatter(column, table)
        key = repr(column.name) if from_mapping else str(index)
        parts.append(f"{{format_{index}(row[{key}])}}")
    body = ";".join(parts) + "\\r\\n"
    source = f'def format_line(row):\n    return f"{body}"\n'
    exec(compile(source, f"<berka {table.name} line formatter>", "exec"), namespace)
    return namespace["format_line"]


def format_record(table_name: str, record: Mapping[str, Any]) -> str:
    """One record as its file line, CRLF included (slow path: compiles the formatter)."""
    return _compile_line_formatter(get_table(table_name), from_mapping=True)(record)


class TableWriter:
    """Writes one table file: the header at once, then records.

    `dest` is a path (the file is created), a binary stream or a text stream (left open).
    Use as a context manager, or call close().
    """

    def __init__(self, dest: str | os.PathLike[str] | IO[bytes] | IO[str], table: str) -> None:
        self.table = get_table(table)
        self.rows_written = 0
        self._owns_stream = isinstance(dest, (str, os.PathLike))
        self._detach = False
        if self._owns_stream:
            # newline="" keeps "\r\n" as written; ASCII because the format is ASCII.
            self._out: IO[str] = open(dest, "w", encoding="ascii", newline="", buffering=1 << 20)
        elif isinstance(dest, io.TextIOBase):
            self._out = dest  # type: ignore[assignment]
        else:
            self._out = io.TextIOWrapper(dest, encoding="ascii", newline="")  # type: ignore[arg-type]
            self._detach = True
        self._format_mapping = _compile_line_formatter(self.table, from_mapping=True)
        self._format_values = _compile_line_formatter(self.table, from_mapping=False)
        self._pending: list[str] = []
        self._out.write(self.table.header + LINE_END)

    def write(self, record: Mapping[str, Any]) -> None:
        """Write one record (a reader dict; derived columns are ignored)."""
        self._pending.append(self._format_mapping(record))
        self.rows_written += 1
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush_pending()

    def write_values(self, values: Sequence[Any]) -> None:
        """Write one row given as values in file column order."""
        self._pending.append(self._format_values(values))
        self.rows_written += 1
        if len(self._pending) >= _FLUSH_EVERY:
            self._flush_pending()

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        for record in records:
            self.write(record)
        return self.rows_written

    def _flush_pending(self) -> None:
        self._out.write("".join(self._pending))
        self._pending.clear()

    def close(self) -> None:
        if self._out is None:
            return
        self._flush_pending()
        if self._owns_stream:
            self._out.close()
        else:
            self._out.flush()
            if self._detach:
                # Leave the caller's binary stream open: closing the wrapper would close it.
                self._out.detach()  # type: ignore[attr-defined]
        self._out = None  # type: ignore[assignment]

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def write_table(
    dest: str | os.PathLike[str] | IO[bytes] | IO[str],
    table: str,
    records: Iterable[Mapping[str, Any]],
) -> int:
    """Write a whole table file from records; returns the number of rows written."""
    with TableWriter(dest, table) as writer:
        return writer.write_many(records)
