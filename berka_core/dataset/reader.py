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

The per-column conversions are in `converters`, the exceptions and RejectedRow in `errors`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

from berka_core.dataset.converters import (
    _DERIVERS,
    Record,
    _compile_row_parser,
    _converter,
)
from berka_core.dataset.errors import (
    BerkaFileNotFoundError,
    BerkaFormatError,
    DuplicateKeyError,
    RejectedRow,
)
from berka_core.dataset.schema import FILE_EXTENSIONS, TABLES, Table, get_table, load_order

Source = Union[str, "os.PathLike[str]", IO[bytes], IO[str], Iterable[bytes], Iterable[str]]


@dataclass(frozen=True)
class ForeignKeyViolation:
    table: str
    line: int
    column: str
    value: Any
    ref_table: str


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

    def add_all(self, keys: np.ndarray) -> None:
        """Record many keys at once, with numpy: a million in milliseconds, where add() one by
        one from Python takes seconds."""
        keys = np.asarray(keys, np.int64)
        large = keys >= self._BITMAP_LIMIT
        self._large.update(int(key) for key in keys[large])
        small = keys[~large]
        if len(small):
            bitmap = self.bitmap(int(small.max()))
            np.bitwise_or.at(bitmap, small >> 3, (1 << (small & 7)).astype(np.uint8))

    def bitmap(self, top: int) -> np.ndarray:
        """The bitmap as a writable numpy view, grown to hold keys up to `top` (below
        _BITMAP_LIMIT). Drop the view before the bitmap grows again."""
        bits = self._bits
        needed = (top >> 3) + 1
        if needed > len(bits):
            bits.extend(bytes(max(needed, 2 * len(bits)) - len(bits)))
        return np.frombuffer(bits, np.uint8)


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
