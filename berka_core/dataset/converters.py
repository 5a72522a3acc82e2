"""Field text to Python values for the reader: one converter per column, built once per table
from the schema, and the row parser generated from them (see reader for the values produced).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from berka_core.dataset.schema import Column, Kind, Table, gender_from_birth_number

Record = dict[str, Any]


class _BadValue(ValueError):
    """A value that does not fit its column; the caller adds file, line and column."""


# --- value converters -------------------------------------------------------------------------
# One small function per column, built once per table; each turns the field's text into its
# Python value or raises _BadValue with the reason. Kept free of regexes for speed.

_date_cache: dict[str, dt.date] = {}


def _parse_yymmdd(text: str) -> dt.date:
    # Not strptime('%y'): that maps 11..68 to the 2000s; every Berka date is in the 1900s.
    if len(text) != 6 or not text.isdigit():
        raise _BadValue("expected a YYMMDD date (6 digits)")
    try:
        return dt.date(1900 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError as exc:
        raise _BadValue(f"not a valid YYMMDD date ({exc})") from None


def _date(text: str) -> dt.date:
    # Only ~2,200 distinct dates occur, so caching saves a date() call on almost every row.
    value = _date_cache.get(text)
    if value is None:
        value = _date_cache[text] = _parse_yymmdd(text)
    return value


def _card_datetime(text: str) -> dt.date:
    if len(text) != 15 or not text.endswith(" 00:00:00"):
        raise _BadValue("expected 'YYMMDD 00:00:00'")
    return _date(text[:6])


def parse_birth_number(birth_number: str) -> tuple[str, dt.date]:
    """(gender, birth date) of a YYMMDD birth number whose month is + 50 for women."""
    if len(birth_number) != 6 or not birth_number.isdigit():
        raise _BadValue("expected a 6-digit birth number")
    gender = gender_from_birth_number(birth_number)
    month = int(birth_number[2:4]) - (50 if gender == "F" else 0)
    try:
        born = dt.date(1900 + int(birth_number[:2]), month, int(birth_number[4:]))
    except ValueError as exc:
        raise _BadValue(f"not a valid birth number ({exc})") from None
    return gender, born


def _unquote(text: str) -> str | None:
    if len(text) > 1 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if '"' in inner:
            raise _BadValue("stray double quote inside a quoted value")
        return inner
    if text == "":
        return None
    raise _BadValue("expected a double-quoted string")


# The three spellings of an empty text, as (field text, value read).
_BLANKS: tuple[tuple[str, str | None], ...] = (("", None), ('""', ""), ('" "', " "))


def _text_converter(column: Column, normalize_blanks: bool) -> Callable[[str], Any]:
    canonical = {v: v for v in column.values} if column.values else None
    nullable = column.nullable
    digits = column.kind in (Kind.DIGITS, Kind.BIRTH_NUMBER)
    birth_number = column.kind is Kind.BIRTH_NUMBER

    def convert(text: str) -> Any:
        value = _unquote(text)
        if normalize_blanks and nullable and value in (None, "", " "):
            return None
        if canonical is not None and value in canonical:
            # The canonical object, so a million rows share one string per category.
            return canonical[value]
        if value is None or value in ("", " "):
            if not nullable:
                raise _BadValue("empty value in a required column")
            return None if normalize_blanks else value
        if canonical is not None:
            raise _BadValue(f"not one of {sorted(canonical)}")
        if digits and not (value.isdigit() and value.isascii()):
            raise _BadValue("expected a quoted string of digits")
        if birth_number:
            parse_birth_number(value)
        if column.length is not None and len(value) > column.length:
            raise _BadValue(f"longer than {column.length} characters")
        return value

    return convert


def _category_lookup(column: Column, normalize_blanks: bool) -> Callable[[str], Any]:
    """For a closed set of values: one dict lookup from the field as spelled to its value,
    ~6x faster than unquoting and checking. Raises KeyError for anything else; the caller then
    asks the full converter why."""
    assert column.values is not None
    table: dict[str, Any] = {f'"{v}"': v for v in column.values}
    if column.nullable:
        for spelled, value in _BLANKS:
            if normalize_blanks:
                table[spelled] = None
            else:
                table.setdefault(spelled, value)
    return table.__getitem__


def _int_converter(column: Column, missing_marker: str) -> Callable[[str], Any]:
    nullable = column.nullable

    def convert(text: str) -> Any:
        if text.isdigit():
            return int(text)
        if text == missing_marker or (text == "" and missing_marker == ""):
            if nullable:
                return None
            raise _BadValue("missing value in a required column")
        raise _BadValue("expected a non-negative integer")

    return convert


def _decimal_converter(column: Column, missing_marker: str) -> Callable[[str], Any]:
    scale = column.scale or 0
    nullable = column.nullable
    what = "money with exactly 2 decimals" if column.kind is Kind.MONEY else None
    what = what or f"a number with exactly {scale} decimal(s)"
    dot_at = -scale - 1 if scale else None

    def convert(text: str) -> Any:
        try:
            value = Decimal(text)
        except ArithmeticError:
            value = None
        # Decimal() also accepts ' 1', '+1', '1_0', '01', 'NaN' and '1e3': comparing its
        # canonical text with the field rejects all of them at the cost of one str().
        if (
            value is not None
            and str(value) == text
            and (dot_at is None or text[dot_at : dot_at + 1] == ".")
        ):
            return value
        if text == missing_marker or (text == "" and missing_marker == ""):
            if nullable:
                return None
            raise _BadValue("missing value in a required column")
        raise _BadValue(f"expected {what}")

    return convert


def _converter(column: Column, table: Table, normalize_blanks: bool) -> Callable[[str], Any]:
    """The full converter of a column: validates and explains what is wrong."""
    if column.is_text:
        return _text_converter(column, normalize_blanks)
    if column.kind is Kind.INT:
        return _int_converter(column, table.missing_marker)
    if column.kind in (Kind.MONEY, Kind.DECIMAL):
        return _decimal_converter(column, table.missing_marker)
    if column.kind is Kind.DATE:
        return _date
    if column.kind is Kind.CARD_DATETIME:
        return _card_datetime
    raise AssertionError(f"no converter for {column.kind}")


def _fast_converter(column: Column, table: Table, normalize_blanks: bool) -> Callable[[str], Any]:
    """A converter accepting exactly what `_converter` accepts, possibly with a terse error."""
    if column.values is not None and column.kind is Kind.STR:
        return _category_lookup(column, normalize_blanks)
    return _converter(column, table, normalize_blanks)


def _compile_row_parser(table: Table, normalize_blanks: bool) -> Callable[[list[str]], Record]:
    """A function from a row's fields to its record, generated from the schema.

    Generated (like namedtuple does) because a dict literal with one call per field parses
    trans about twice as fast as a generic zip/dict loop, and trans has a million rows.
    """
    namespace: dict[str, Any] = {}
    items = []
    for index, column in enumerate(table.file_columns):
        namespace[f"convert_{index}"] = _fast_converter(column, table, normalize_blanks)
        items.append(f"{column.name!r}: convert_{index}(fields[{index}])")
    source = "def parse_row(fields):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(source, f"<berka {table.name} row parser>", "exec"), namespace)
    return namespace["parse_row"]


def _derive_client(record: Record) -> None:
    record["gender"], record["birth_date"] = parse_birth_number(record["birth_number"])


# Tables with derived columns: a function that adds them to a record read from the file.
_DERIVERS: dict[str, Callable[[Record], None]] = {"client": _derive_client}
