"""What can be wrong with a Berka file: the exceptions the data set package raises, and the
RejectedRow that lenient reading records instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass


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
