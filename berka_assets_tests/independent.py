"""An independent computation of the trend tables: plain Python over the original CSV files.

Deliberately shares no code with the pipeline (no reader, no schema, no transformations), so a
bug there cannot hide by being repeated here.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path


def _rows(path: Path):
    with path.open(newline="", encoding="ascii") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader)
        yield from reader


def first_trans_ids(path: Path, count: int) -> set[int]:
    """The trans_ids of the file's first `count` records: what a replay of that many sent."""
    with path.open() as handle:
        next(handle)
        return {int(line.split(";", 1)[0])
                for line, _ in zip(handle, range(count), strict=False)}


def _file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.asc", f"{stem}.csv", f"{stem}_prefix.asc"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{stem} in {folder}")


def _yymmdd(text: str) -> dt.date:
    return dt.date(1900 + int(text[:2]), int(text[2:4]), int(text[4:6]))


def owners(folder: Path) -> dict[int, tuple[str, dt.date]]:
    """account_id -> (gender, birth date) of its OWNER client."""
    clients = {}
    for client_id, birth_number, _district in _rows(_file(folder, "client")):
        year, month, day = int(birth_number[:2]), int(birth_number[2:4]), int(birth_number[4:6])
        gender = "F" if month > 50 else "M"
        clients[int(client_id)] = (gender, dt.date(1900 + year, month - 50 * (gender == "F"), day))
    result = {}
    for _disp_id, client_id, account_id, kind in _rows(_file(folder, "disp")):
        if kind == "OWNER":
            result[int(account_id)] = clients[int(client_id)]
    return result


def age_band(age: int) -> str:
    if age < 20:
        return "<20"
    if age >= 70:
        return "70+"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def trends(folder: Path, trans_file: Path | None = None, trans_ids: set[int] | None = None):
    """monthly, yearly and by-age-gender aggregates, with Decimal money, as sorted tuples."""
    account_owner = owners(folder)
    monthly: dict = defaultdict(lambda: [0, Decimal("0.00")])
    yearly: dict = defaultdict(lambda: [0, Decimal("0.00")])
    by_age: dict = defaultdict(lambda: [0, Decimal("0.00")])
    for row in _rows(trans_file or _file(folder, "trans")):
        trans_id, account_id, date, amount = int(row[0]), int(row[1]), _yymmdd(row[2]), row[5]
        if trans_ids is not None and trans_id not in trans_ids:
            continue
        gender, born = account_owner[account_id]
        age = date.year - born.year - ((date.month, date.day) < (born.month, born.day))
        value = Decimal(amount)
        for table, key in ((monthly, (date.year, date.month)), (yearly, (date.year,)),
                           (by_age, (age_band(age), gender))):
            table[key][0] += 1
            table[key][1] += value
    cents = Decimal("0.01")
    return {
        "monthly_trend": sorted((*k, n, a) for k, (n, a) in monthly.items()),
        "yearly_trend": sorted((*k, n, a) for k, (n, a) in yearly.items()),
        "trans_by_age_gender": sorted(
            (*k, n, a, (a / n).quantize(cents, rounding=ROUND_HALF_UP))
            for k, (n, a) in by_age.items()
        ),
    }
