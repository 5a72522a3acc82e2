"""Streaming reader of the original Berka files into typed records.

A record is a plain `dict` keyed by the clean column names of `schema.TABLES` (district's
A1..A16 become district_id, district_name, ...), in schema column order, derived columns last
(client's gender and birth_date). Values: int, str, Decimal (money and district's ratios),
datetime.date (YYMMDD dates and card's "YYMMDD 00:00:00"), None.

Empty text is kept exactly as spelled so that `writer` reproduces the file byte for byte:
    unquoted nothing -> None      ""  -> ""      " " -> " "
trans.operation is "" on interest rows; trans.k_symbol "" and " " both mean unspecified;
trans.bank/account are None on non-transfer rows and "" / "0" on the cash rows that name
account 0. Pass `normalize_blanks=True` (or use `normalize_blank`) to get None for all three
in nullable text columns. district.asc's `?` (missing number) is read as None.

Files are read line by line (never whole), so a 1M-row trans file costs the same memory as the
77-row district file, apart from the one-bit-per-id primary key check.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Union

from berka_core.dataset.schema import (
    FILE_EXTENSIONS,
    TABLES,
    Column,
    Kind,
    Table,
    gender_from_birth_number,
    get_table,
    load_order,
)

Record = dict[str, Any]
Source = Union[str, "os.PathLike[str]", IO[bytes], IO[str], Iterable[bytes], Iterable[str]]


class BerkaError(Exception):
    """Base of every error this package raises about Berka files."""


class BerkaFileNotFoundError(BerkaError, FileNotFoundError):
    """No file for a table in a folder; the message lists every name that was tried."""


class BerkaFormatError(BerkaError, ValueError):
    """A file that does not follow the Berka format, located as precisely as possible."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.column = column
        self.value = value
        where = [file or "<stream>"]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        if value is not None:
            where.append(f"value {value!r}")
        super().__init__(f"{': '.join(where)}: {reason}")


class DuplicateKeyError(BerkaFormatError):
    """The same primary key on two lines of one file."""

    def __init__(
        self, *, file: str, line: int, column: str, value: str, first_line: int | None
    ) -> None:
        self.first_line = first_line
        first = f"line {first_line}" if first_line is not None else "an earlier line"
        super().__init__(
            f"duplicate primary key {column}={value}, already on {first}",
            file=file,
            line=line,
            column=column,
            value=value,
        )


@dataclass(frozen=True)
class RejectedRow:
    """A row that lenient mode skipped: where it was, its text, and why."""

    file: str
    line: int
    raw: str
    reason: str


@dataclass(frozen=True)
class ForeignKeyViolation:
    table: str
    line: int
    column: str
    value: Any
    ref_table: str


class _BadValue(ValueError):
    """A value that does not fit its column; the caller adds file, line and column."""


# --- finding files ----------------------------------------------------------------------------


def candidate_file_names(table_name: str) -> list[str]:
    """Every file name accepted for a table, in order of preference."""
    table = get_table(table_name)
    return [stem + ext for stem in table.file_stems for ext in FILE_EXTENSIONS]


def find_table_file(folder: str | os.PathLike[str], table_name: str) -> Path:
    """The file holding `table_name` in `folder`: `<stem>.asc` or `<stem>.csv`, where trans's
    stems are trans and trans_prefix (the shipped sample). Names match case-insensitively."""
    folder = Path(folder)
    names = candidate_file_names(table_name)
    if not folder.is_dir():
        raise BerkaFileNotFoundError(
            f"Berka data folder {str(folder)!r} does not exist (looking for table "
            f"{table_name!r}: {' or '.join(names)})"
        )
    by_lower_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    for name in names:
        if name in by_lower_name:
            return by_lower_name[name]
    raise BerkaFileNotFoundError(
        f"no file for Berka table {table_name!r} in {str(folder)!r}: expected one of "
        f"{', '.join(str(folder / n) for n in names)}"
    )


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


# --- primary keys -----------------------------------------------------------------------------


class SeenKeys:
    """Non-negative integer keys seen so far, one bit each: a million trans ids (up to ~3.7M)
    cost ~0.5 MB instead of ~100 MB for a dict. Absurdly large keys fall back to a set."""

    _BITMAP_LIMIT = 1 << 32

    def __init__(self) -> None:
        self._bits = bytearray(1 << 13)
        self._large: set[int] = set()

    def __contains__(self, key: int) -> bool:
        if key >= self._BITMAP_LIMIT:
            return key in self._large
        index = key >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (key & 7)))

    def add(self, key: int) -> bool:
        """Record `key`; True if it had been seen before."""
        if key >= self._BITMAP_LIMIT:
            if key in self._large:
                return True
            self._large.add(key)
            return False
        index = key >> 3
        bits = self._bits
        if index >= len(bits):
            bits.extend(bytes(max(index + 1, 2 * len(bits)) - len(bits)))
        mask = 1 << (key & 7)
        if bits[index] & mask:
            return True
        bits[index] |= mask
        return False


# --- the reader -------------------------------------------------------------------------------


def _delimiter_hint(header: str, table: Table) -> str | None:
    names = [c.source or "" for c in table.file_columns]
    for delimiter, label in ((",", "comma"), ("\t", "tab"), ("|", "pipe")):
        if ";" not in header and delimiter in header:
            found = [part.strip('"') for part in header.split(delimiter)]
            if found == names:
                return (
                    f"the file is {label}-delimited ({delimiter!r}); Berka files use ';' "
                    f"- re-export it with ';' as the delimiter"
                )
            return f"no ';' in the header but {label}s ({delimiter!r}): wrong delimiter?"
    return None


class TableReader:
    """Iterate the records of one Berka file.

    strict (default): the first malformed row raises BerkaFormatError (file, line, column,
    value, reason). Lenient (`strict=False`): malformed rows are skipped and each becomes a
    RejectedRow, passed to `on_reject` if given, else appended to `self.rejected`. Problems
    that make the whole file unreadable (missing file, empty file, wrong header or delimiter)
    raise in both modes.
    """

    def __init__(
        self,
        source: Source,
        table: str,
        *,
        strict: bool = True,
        on_reject: Callable[[RejectedRow], None] | None = None,
        normalize_blanks: bool = False,
        check_primary_key: bool = True,
        seen_keys: SeenKeys | None = None,
        name: str | None = None,
    ) -> None:
        self.table: Table = get_table(table)
        self.source = source
        self.strict = strict
        self.on_reject = on_reject
        self.normalize_blanks = normalize_blanks
        self.check_primary_key = check_primary_key
        # Readers of parts of one file share one set; by default each pass has its own.
        self.seen_keys = seen_keys
        self.rejected: list[RejectedRow] = []
        self.rows_read = 0  # records yielded
        self.line_number = 0  # line of the last record yielded (header is line 1)
        if isinstance(source, (str, os.PathLike)):
            self.path: Path | None = Path(source)
            self.name = name or str(source)
        else:
            self.path = None
            self.name = name or str(getattr(source, "name", None) or f"<{table} stream>")

    # Public API ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        if self.path is not None:
            if not self.path.is_file():
                raise BerkaFileNotFoundError(
                    f"Berka {self.table.name} file not found: {str(self.path)!r} (accepted "
                    f"names: {', '.join(candidate_file_names(self.table.name))})"
                )
            with open(self.path, "rb") as handle:
                yield from self._records(handle)
        else:
            yield from self._records(self.source)  # type: ignore[arg-type]

    # Internals -------------------------------------------------------------------------------

    def _error(
        self, reason: str, line: int, column: str | None = None, value: str | None = None
    ) -> BerkaFormatError:
        return BerkaFormatError(reason, file=self.name, line=line, column=column, value=value)

    def _reject(self, exc: BerkaFormatError, raw: str) -> None:
        if self.strict:
            raise exc
        row = RejectedRow(self.name, exc.line or 0, raw, str(exc))
        if self.on_reject is not None:
            self.on_reject(row)
        else:
            self.rejected.append(row)

    def _read_header(self, lines: Iterator[str]) -> str:
        """Check the header line and return the line terminator the file uses."""
        header_raw = next(lines, None)
        if header_raw is None or header_raw == "":
            raise self._error(f"the file is empty; expected the header line {self.table.header}", 1)
        if header_raw.endswith("\r\n"):
            terminator = "\r\n"
        elif header_raw.endswith("\n"):
            terminator = "\n"  # a copy whose line endings were converted; still readable
        else:
            terminator = ""
        header = header_raw[: len(header_raw) - len(terminator)]
        if header == self.table.header and terminator:
            return terminator
        if header == self.table.header or (not terminator and self.table.header.startswith(header)):
            raise self._error(
                "the file ends inside the header line: it looks truncated", 1, value=header[:120]
            )
        reason = _delimiter_hint(header, self.table)
        if reason is None:
            others = [t.name for t in TABLES.values() if t.header == header]
            if others:
                reason = f"this is the header of the {others[0]} table, not {self.table.name}"
            else:
                reason = f"unexpected header; expected {self.table.header}"
        raise self._error(reason, 1, value=header[:200])

    def _decoded_lines(self, source: Any) -> Iterator[str]:
        iterator = iter(source)
        first = next(iterator, None)
        if first is None:
            return
        if isinstance(first, str):
            yield first
            yield from iterator
            return
        # Bytes: decode line by line so a bad byte is reported on its own line number.
        line_number = 1
        for raw in _chain_first(first, iterator):
            try:
                yield raw.decode("ascii")
            except UnicodeDecodeError as exc:
                self._reject(
                    self._error(f"not ASCII text (byte {exc.start + 1} of the line)", line_number),
                    raw.decode("latin-1"),
                )
                yield _SKIP
            line_number += 1

    def _records(self, source: Any) -> Iterator[Record]:
        table = self.table
        lines = self._decoded_lines(source)
        terminator = self._read_header(lines)
        term_len = len(terminator)
        n_fields = len(table.file_columns)
        parse_row = _compile_row_parser(table, self.normalize_blanks)
        derive = _DERIVERS.get(table.name)
        primary_key = table.primary_key
        seen = None
        if self.check_primary_key:
            seen = self.seen_keys if self.seen_keys is not None else SeenKeys()
        line_number = 1
        for line in lines:
            line_number += 1
            if line is _SKIP:
                continue
            fields = line[:-term_len].split(";") if line.endswith(terminator) else None
            try:
                if fields is None or len(fields) != n_fields:
                    raise self._shape_error(line, line_number, terminator, n_fields)
                record = parse_row(fields)
                if derive is not None:
                    derive(record)
                if seen is not None and seen.add(record[primary_key]):
                    raise self._duplicate(fields, line_number)
            except BerkaFormatError as exc:
                self._reject(exc, line.rstrip("\r\n"))
                continue
            except (ValueError, LookupError, ArithmeticError):
                # The fast parser only says that something failed; find what and where.
                self._reject(self._locate(fields or [], line_number), line.rstrip("\r\n"))
                continue
            self.rows_read += 1
            self.line_number = line_number
            yield record

    def _shape_error(
        self, line: str, line_number: int, terminator: str, n_fields: int
    ) -> BerkaFormatError:
        if not line.endswith("\n"):
            return self._error(
                "the file ends in the middle of this row (no line terminator): it looks truncated",
                line_number,
                value=line[:200],
            )
        if not line.endswith(terminator):
            return self._error("line ending differs from the header's (CRLF expected)", line_number)
        body = line[: -len(terminator)]
        if body == "":
            return self._error("blank line", line_number)
        found = body.count(";") + 1
        reason = f"expected {n_fields} fields separated by ';', found {found}"
        if found == 1 and "," in body:
            reason += " (the row looks comma-delimited; Berka files use ';')"
        return self._error(reason, line_number, value=body[:200])

    def _locate(self, fields: list[str], line_number: int) -> BerkaFormatError:
        """Re-run the row's full conversions one by one to name the failing column and why."""
        table = self.table
        record: Record = {}
        for column, text in zip(table.file_columns, fields, strict=True):
            try:
                record[column.name] = _converter(column, table, self.normalize_blanks)(text)
            except (ValueError, ArithmeticError) as exc:
                return self._error(str(exc), line_number, column=column.name, value=text)
        derive = _DERIVERS.get(table.name)
        try:
            if derive is not None:
                derive(record)
        except ValueError as exc:
            derived = ", ".join(c.name for c in table.derived_columns)
            reason = f"cannot derive {derived}: {exc}"
            return self._error(reason, line_number, value=";".join(fields))
        return self._error("malformed row", line_number, value=";".join(fields))

    def _duplicate(self, fields: list[str], line_number: int) -> DuplicateKeyError:
        table = self.table
        pk_index = table.file_column_names.index(table.primary_key)
        key_text = fields[pk_index]
        return DuplicateKeyError(
            file=self.name,
            line=line_number,
            column=table.primary_key,
            value=key_text,
            first_line=self._first_line_of(key_text, pk_index, line_number),
        )

    def _first_line_of(self, key_text: str, pk_index: int, before: int) -> int | None:
        """Line where a duplicated key first appeared: a second pass over the file, which only
        happens on this rare error and keeps the normal pass free of a key->line map."""
        if self.path is None:
            return None
        with open(self.path, "rb") as handle:
            key = key_text.encode("ascii")
            for number, raw in enumerate(handle, start=1):
                if number >= before:
                    break
                if number > 1 and raw.split(b";", pk_index + 1)[pk_index] == key:
                    return number
        return None


_SKIP = "\x00skip"  # marks an undecodable line already reported by _decoded_lines


def _chain_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def read_table(
    source: Source,
    table: str,
    *,
    strict: bool = True,
    on_reject: Callable[[RejectedRow], None] | None = None,
    normalize_blanks: bool = False,
) -> Iterator[Record]:
    """Records of one Berka file (path, open file, or iterable of lines); see TableReader."""
    return iter(
        TableReader(
            source, table, strict=strict, on_reject=on_reject, normalize_blanks=normalize_blanks
        )
    )


def open_table(folder: str | os.PathLike[str], table: str, **options: Any) -> TableReader:
    """A TableReader over `table`'s file in `folder` (see find_table_file)."""
    return TableReader(find_table_file(folder, table), table, **options)


def normalize_blank(value: Any) -> Any:
    """None for the three spellings of an empty text (None, "", " "); other values unchanged."""
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


def foreign_key_violations(
    folder: str | os.PathLike[str], *, limit: int = 100
) -> list[ForeignKeyViolation]:
    """Foreign keys of the files in `folder` that name no existing row (at most `limit`).

    Streams each file once in load order, keeping only the key sets of referenced tables.
    """
    referenced = {fk.ref_table for t in TABLES.values() for fk in t.foreign_keys}
    keys: dict[str, set[Any]] = {}
    violations: list[ForeignKeyViolation] = []
    for name in load_order():
        table = TABLES[name]
        reader = open_table(folder, name)
        own_keys: set[Any] | None = set() if name in referenced else None
        checks = [(fk, keys[fk.ref_table]) for fk in table.foreign_keys]
        for record in reader:
            if own_keys is not None:
                own_keys.add(record[table.primary_key])
            for fk, parent_keys in checks:
                value = record[fk.column]
                if value not in parent_keys and len(violations) < limit:
                    violations.append(
                        ForeignKeyViolation(
                            name, reader.line_number, fk.column, value, fk.ref_table
                        )
                    )
        if own_keys is not None:
            keys[name] = own_keys
    return violations
