"""The one typed definition of the eight Berka tables.

The reader, the writer, the generator, the Spark schemas and the MySQL DDL are all derived from
`TABLES` below, so a column is described exactly once. Physical quirks of the files (quoting,
district's `?`, YYMMDD dates) are described in /work/shared/berka/FORMAT.md; here each column says
which quirk applies to it through its `Kind`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

# Names a table's file may have besides `<stem>.asc`: mirrors ship the same bytes as `.csv`.
FILE_EXTENSIONS: tuple[str, ...] = (".asc", ".csv")

MONEY_PRECISION = 15
MONEY_SCALE = 2


class Kind(enum.StrEnum):
    """How a value is spelled in the file and what Python type the reader gives for it."""

    INT = "int"  # unquoted non-negative integer -> int
    STR = "str"  # double-quoted text -> str
    DIGITS = "digits"  # double-quoted digit string that stays text ("87144583") -> str
    MONEY = "money"  # unquoted, exactly two decimals, may be negative -> Decimal
    DECIMAL = "decimal"  # unquoted, exactly `scale` decimals -> Decimal
    DATE = "date"  # unquoted YYMMDD, always 19YY -> datetime.date
    CARD_DATETIME = "card_datetime"  # unquoted "YYMMDD 00:00:00" -> datetime.date
    BIRTH_NUMBER = "birth_number"  # quoted YYMMDD, women's month + 50 -> str


@dataclass(frozen=True)
class Column:
    """One column. `source` is its name in the file header; derived columns have none."""

    name: str
    kind: Kind
    source: str | None = None
    nullable: bool = False
    length: int | None = None  # maximum text length, for VARCHAR
    precision: int | None = None  # DECIMAL columns
    scale: int | None = None
    values: frozenset[str] | None = None  # the closed set of allowed values, if any
    description: str = ""

    @property
    def derived(self) -> bool:
        return self.source is None

    @property
    def is_text(self) -> bool:
        return self.kind in (Kind.STR, Kind.DIGITS, Kind.BIRTH_NUMBER)


@dataclass(frozen=True)
class ForeignKey:
    """`column` of a table refers to `ref_column` of `ref_table` (a MySQL FOREIGN KEY)."""

    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    name: str
    file_stems: tuple[str, ...]
    columns: tuple[Column, ...]
    primary_key: str
    foreign_keys: tuple[ForeignKey, ...] = ()
    quoted_header: bool = True
    # How a missing number is spelled: district.asc writes `?`, other files never miss one.
    missing_marker: str = ""
    description: str = ""

    @property
    def file_columns(self) -> tuple[Column, ...]:
        """The columns physically in the file, in file order."""
        return tuple(c for c in self.columns if not c.derived)

    @property
    def derived_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.derived)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def file_column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.file_columns)

    @property
    def header(self) -> str:
        """The header line exactly as in the original file, without its line terminator."""
        names = [c.source for c in self.file_columns]
        if self.quoted_header:
            return ";".join(f'"{n}"' for n in names)
        return ";".join(n for n in names if n is not None)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


def _money(name: str, description: str = "", nullable: bool = False) -> Column:
    return Column(
        name,
        Kind.MONEY,
        source=name,
        nullable=nullable,
        precision=MONEY_PRECISION,
        scale=MONEY_SCALE,
        description=description,
    )


def _int(name: str, description: str = "", source: str | None = None) -> Column:
    return Column(name, Kind.INT, source=source or name, description=description)


def _category(
    name: str, values: tuple[str, ...], description: str = "", nullable: bool = False
) -> Column:
    return Column(
        name,
        Kind.STR,
        source=name,
        nullable=nullable,
        length=max(len(v) for v in values),
        values=frozenset(values),
        description=description,
    )


BANK_CODES: tuple[str, ...] = (
    "AB", "CD", "EF", "GH", "IJ", "KL", "MN", "OP", "QR", "ST", "UV", "WX", "YZ",
)  # fmt: skip

FREQUENCIES: tuple[str, ...] = ("POPLATEK MESICNE", "POPLATEK TYDNE", "POPLATEK PO OBRATU")
DISP_TYPES: tuple[str, ...] = ("OWNER", "DISPONENT")
CARD_TYPES: tuple[str, ...] = ("classic", "junior", "gold")
LOAN_STATUSES: tuple[str, ...] = ("A", "B", "C", "D")
ORDER_K_SYMBOLS: tuple[str, ...] = ("SIPO", "UVER", "POJISTNE", "LEASING", " ")
TRANS_TYPES: tuple[str, ...] = ("PRIJEM", "VYDAJ", "VYBER")
# "" is the interest rows' operation; it is a value of its own, not a missing one.
TRANS_OPERATIONS: tuple[str, ...] = (
    "VYBER", "PREVOD NA UCET", "VKLAD", "PREVOD Z UCTU", "VYBER KARTOU", "",
)  # fmt: skip
# "" and " " both mean unspecified; they are kept apart so files round-trip byte for byte.
TRANS_K_SYMBOLS: tuple[str, ...] = (
    "", " ", "POJISTNE", "SLUZBY", "UROK", "SANKC. UROK", "SIPO", "DUCHOD", "UVER",
)  # fmt: skip


_DISTRICT_COLUMNS = (
    ("district_id", "A1", Kind.INT, "district code"),
    ("district_name", "A2", Kind.STR, "district name"),
    ("region", "A3", Kind.STR, "region"),
    ("inhabitants", "A4", Kind.INT, "no. of inhabitants"),
    ("municipalities_lt_500", "A5", Kind.INT, "no. of municipalities with < 500 inhabitants"),
    ("municipalities_500_1999", "A6", Kind.INT, "no. of municipalities with 500-1999 inhabitants"),
    (
        "municipalities_2000_9999",
        "A7",
        Kind.INT,
        "no. of municipalities with 2000-9999 inhabitants",
    ),
    ("municipalities_ge_10000", "A8", Kind.INT, "no. of municipalities with >= 10000 inhabitants"),
    ("cities", "A9", Kind.INT, "no. of cities"),
    ("urban_ratio", "A10", Kind.DECIMAL, "ratio of urban inhabitants, %"),
    ("average_salary", "A11", Kind.INT, "average salary"),
    ("unemployment_95", "A12", Kind.DECIMAL, "unemployment rate '95, %"),
    ("unemployment_96", "A13", Kind.DECIMAL, "unemployment rate '96, %"),
    ("entrepreneurs_per_1000", "A14", Kind.INT, "no. of entrepreneurs per 1000 inhabitants"),
    ("crimes_95", "A15", Kind.INT, "no. of committed crimes '95"),
    ("crimes_96", "A16", Kind.INT, "no. of committed crimes '96"),
)
# District 69 misses exactly these two values in the real file.
_DISTRICT_NULLABLE = frozenset({"unemployment_95", "crimes_95"})
_DISTRICT_DECIMALS = {"urban_ratio": (4, 1), "unemployment_95": (4, 2), "unemployment_96": (4, 2)}


def _district_column(name: str, source: str, kind: Kind, description: str) -> Column:
    precision, scale = _DISTRICT_DECIMALS.get(name, (None, None))
    return Column(
        name,
        kind,
        source=source,
        nullable=name in _DISTRICT_NULLABLE,
        length=32 if kind is Kind.STR else None,
        precision=precision,
        scale=scale,
        description=description,
    )


_TABLE_LIST: tuple[Table, ...] = (
    Table(
        name="district",
        file_stems=("district",),
        columns=tuple(_district_column(*spec) for spec in _DISTRICT_COLUMNS),
        primary_key="district_id",
        quoted_header=False,
        missing_marker="?",
        description="demographic data of the 77 districts",
    ),
    Table(
        name="account",
        file_stems=("account",),
        columns=(
            _int("account_id"),
            _int("district_id", "branch location"),
            _category("frequency", FREQUENCIES, "statement frequency"),
            Column("date", Kind.DATE, source="date", description="opening date"),
        ),
        primary_key="account_id",
        foreign_keys=(ForeignKey("district_id", "district", "district_id"),),
    ),
    Table(
        name="client",
        file_stems=("client",),
        columns=(
            _int("client_id"),
            Column(
                "birth_number",
                Kind.BIRTH_NUMBER,
                source="birth_number",
                length=6,
                description="YYMMDD; women have month + 50",
            ),
            _int("district_id", "address"),
            Column(
                "gender",
                Kind.STR,
                length=1,
                values=frozenset({"F", "M"}),
                description="derived: F when the birth number's month is > 50",
            ),
            Column("birth_date", Kind.DATE, description="derived from birth_number"),
        ),
        primary_key="client_id",
        foreign_keys=(ForeignKey("district_id", "district", "district_id"),),
    ),
    Table(
        name="disp",
        file_stems=("disp",),
        columns=(
            _int("disp_id"),
            _int("client_id"),
            _int("account_id"),
            _category("type", DISP_TYPES, "OWNER may issue orders and ask for a loan"),
        ),
        primary_key="disp_id",
        foreign_keys=(
            ForeignKey("client_id", "client", "client_id"),
            ForeignKey("account_id", "account", "account_id"),
        ),
    ),
    Table(
        name="card",
        file_stems=("card",),
        columns=(
            _int("card_id"),
            _int("disp_id"),
            _category("type", CARD_TYPES),
            Column(
                "issued",
                Kind.CARD_DATETIME,
                source="issued",
                description="issue date; the file spells it 'YYMMDD 00:00:00'",
            ),
        ),
        primary_key="card_id",
        foreign_keys=(ForeignKey("disp_id", "disp", "disp_id"),),
    ),
    Table(
        name="loan",
        file_stems=("loan",),
        columns=(
            _int("loan_id"),
            _int("account_id"),
            Column("date", Kind.DATE, source="date", description="date the loan was granted"),
            _int("amount", "whole crowns; = duration x payments"),
            _int("duration", "months"),
            _money("payments", "monthly payment"),
            _category("status", LOAN_STATUSES, "A/B finished (OK/unpaid), C/D running (OK/debt)"),
        ),
        primary_key="loan_id",
        foreign_keys=(ForeignKey("account_id", "account", "account_id"),),
    ),
    Table(
        name="order",
        file_stems=("order",),
        columns=(
            _int("order_id"),
            _int("account_id"),
            Column("bank_to", Kind.STR, source="bank_to", length=2, description="recipient bank"),
            Column(
                "account_to", Kind.DIGITS, source="account_to", length=10, description="recipient"
            ),
            _money("amount", "debited each month"),
            _category("k_symbol", ORDER_K_SYMBOLS, "purpose; ' ' = unspecified"),
        ),
        primary_key="order_id",
        foreign_keys=(ForeignKey("account_id", "account", "account_id"),),
    ),
    Table(
        name="trans",
        file_stems=("trans", "trans_prefix"),
        columns=(
            _int("trans_id"),
            _int("account_id"),
            Column("date", Kind.DATE, source="date"),
            _category("type", TRANS_TYPES, "PRIJEM credit, VYDAJ debit, VYBER cash debit"),
            # Nullable: an unquoted empty is read as None and written back as such.
            _category("operation", TRANS_OPERATIONS, "'' exactly on interest rows", nullable=True),
            _money("amount"),
            _money("balance", "running balance after this row"),
            _category(
                "k_symbol", TRANS_K_SYMBOLS, "purpose; '' and ' ' = unspecified", nullable=True
            ),
            Column(
                "bank",
                Kind.STR,
                source="bank",
                nullable=True,
                length=2,
                description="partner bank; None (unquoted empty) or '' with account '0'",
            ),
            Column(
                "account",
                Kind.DIGITS,
                source="account",
                nullable=True,
                length=10,
                description="partner account; None (unquoted empty) or '0' when not a transfer",
            ),
        ),
        primary_key="trans_id",
        foreign_keys=(ForeignKey("account_id", "account", "account_id"),),
    ),
)

TABLES: Mapping[str, Table] = MappingProxyType({t.name: t for t in _TABLE_LIST})


def get_table(table_name: str) -> Table:
    """The table definition, with an error that lists the valid names."""
    try:
        return TABLES[table_name]
    except KeyError:
        raise KeyError(
            f"unknown Berka table {table_name!r}; expected one of {', '.join(TABLES)}"
        ) from None


def load_order() -> list[str]:
    """Table names ordered so that every table comes after the tables its foreign keys name."""
    ordered: list[str] = []
    pending = list(TABLES)
    while pending:
        # One at a time, first in declaration order, so the result is stable and readable.
        ready = next(
            (n for n in pending if all(fk.ref_table in ordered for fk in TABLES[n].foreign_keys)),
            None,
        )
        if ready is None:
            raise RuntimeError(f"foreign keys form a cycle among {pending}")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def gender_from_birth_number(birth_number: str) -> str:
    """'F' when the month part is above 50 (the bank adds 50 for women), else 'M'."""
    return "F" if int(birth_number[2:4]) > 50 else "M"


# --- Spark ------------------------------------------------------------------------------------


def spark_schema(table_name: str, *, include_derived: bool = True) -> StructType:
    """The Spark schema of the reader's records for one table (derived columns last)."""
    # Imported here so the data layer works where pyspark is not installed.
    from pyspark.sql import types as T

    def spark_type(column: Column) -> T.DataType:
        if column.kind is Kind.INT:
            return T.IntegerType()
        if column.kind in (Kind.MONEY, Kind.DECIMAL):
            return T.DecimalType(column.precision or MONEY_PRECISION, column.scale or 0)
        if column.kind in (Kind.DATE, Kind.CARD_DATETIME):
            return T.DateType()
        return T.StringType()

    table = get_table(table_name)
    columns = table.columns if include_derived else table.file_columns
    return T.StructType([T.StructField(c.name, spark_type(c), c.nullable) for c in columns])


# --- MySQL / MariaDB --------------------------------------------------------------------------


def mysql_type(column: Column) -> str:
    """The column's MySQL/MariaDB type."""
    if column.kind is Kind.INT:
        return "INT"
    if column.kind in (Kind.MONEY, Kind.DECIMAL):
        return f"DECIMAL({column.precision},{column.scale})"
    if column.kind in (Kind.DATE, Kind.CARD_DATETIME):
        return "DATE"
    if column.kind is Kind.BIRTH_NUMBER or (column.length == 1 and column.values):
        return f"CHAR({column.length})"
    return f"VARCHAR({column.length or 255})"


def mysql_create_table(table_name: str, *, if_not_exists: bool = True) -> str:
    """CREATE TABLE DDL for MySQL/MariaDB; identifiers are backquoted (`order` is reserved)."""
    table = get_table(table_name)
    lines = [
        f"  `{c.name}` {mysql_type(c)}{'' if c.nullable else ' NOT NULL'}" for c in table.columns
    ]
    lines.append(f"  PRIMARY KEY (`{table.primary_key}`)")
    for fk in table.foreign_keys:
        lines.append(
            f"  CONSTRAINT `fk_{table.name}_{fk.column}` FOREIGN KEY (`{fk.column}`) "
            f"REFERENCES `{fk.ref_table}` (`{fk.ref_column}`)"
        )
    exists = "IF NOT EXISTS " if if_not_exists else ""
    body = ",\n".join(lines)
    return f"CREATE TABLE {exists}`{table.name}` (\n{body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
