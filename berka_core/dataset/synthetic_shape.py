"""The real Berka data's shape, which the synthetic generator reproduces: the period covered,
counts and mixes from FORMAT.md and the full trans.asc, the per-account-month event rates
derived from them, and the mix report that compares generated trans rows with the real mix.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

# --- the period covered -------------------------------------------------------------------------

FIRST_YEAR = 1993
LAST_DATE = dt.date(1998, 12, 31)
N_MONTHS = (LAST_DATE.year - FIRST_YEAR) * 12 + LAST_DATE.month  # 72: Jan 1993 .. Dec 1998


def month_index(day: dt.date) -> int:
    """0 for January 1993 ... 71 for December 1998."""
    return (day.year - FIRST_YEAR) * 12 + day.month - 1


def _month_start(index: int) -> dt.date:
    return dt.date(FIRST_YEAR + index // 12, index % 12 + 1, 1)


# --- the real data's shape ----------------------------------------------------------------------

REAL_ACCOUNTS = 4500
ACCOUNTS_OPENED_PER_YEAR = {1993: 1139, 1994: 439, 1995: 661, 1996: 1363, 1997: 898}
FREQUENCY_COUNTS = {"POPLATEK MESICNE": 4167, "POPLATEK TYDNE": 240, "POPLATEK PO OBRATU": 93}
STATEMENT_FEE_CENTS = {"POPLATEK MESICNE": 14_60, "POPLATEK TYDNE": 30_00,
                       "POPLATEK PO OBRATU": 100_00}  # fmt: skip
DISPONENT_ACCOUNTS = 869
WOMEN, CLIENTS = 2645, 5369
BIRTH_DECADE_COUNTS = {1910: 114, 1920: 487, 1930: 653, 1940: 992, 1950: 976, 1960: 959,
                       1970: 1022, 1980: 166}  # fmt: skip
CARD_TYPE_COUNTS = {"classic": 659, "junior": 145, "gold": 88}
LOAN_STATUS_COUNTS = {"A": 203, "B": 31, "C": 403, "D": 45}
LOAN_DURATIONS = (12, 24, 36, 48, 60)
ORDER_K_SYMBOL_COUNTS = {"SIPO": 3502, " ": 1379, "UVER": 717, "POJISTNE": 532, "LEASING": 341}
# Median and spread (log-normal sigma) of order amounts in the real order.asc, and their range.
ORDER_AMOUNTS = {"SIPO": (3190, 0.6, 1, 14882), " ": (1339, 0.9, 1, 12925),
                 "POJISTNE": (629, 0.8, 1, 12504), "LEASING": (1951, 0.5, 397, 4975),
                 "UVER": (4000, 0.6, 304, 9910)}  # fmt: skip
MAX_AMOUNT_CENTS = 87_400_00  # largest trans amount in the real file

# Counts in the full real trans.asc (1,056,320 rows). type and operation are in FORMAT.md, as are
# k_symbol's two empties; the other k_symbol counts are the published full-file figures, which
# add up to the same total. None (an unquoted empty) counts as "".
FULL_TRANS_COUNTS: dict[str, dict[str, int]] = {
    "type": {"VYDAJ": 634_571, "PRIJEM": 405_083, "VYBER": 16_666},
    "operation": {"VYBER": 434_918, "PREVOD NA UCET": 208_283, "VKLAD": 156_743,
                  "PREVOD Z UCTU": 65_226, "VYBER KARTOU": 8_036, "": 183_114},
    "k_symbol": {"": 481_881, "UROK": 183_114, "SLUZBY": 155_832, "SIPO": 118_065,
                 " ": 53_433, "DUCHOD": 30_338, "POJISTNE": 18_500, "UVER": 13_580,
                 "SANKC. UROK": 1_577},
}  # fmt: skip
FULL_TRANS_ROWS = 1_056_320
FULL_TRANS_MIX: dict[str, dict[str, float]] = {
    column: {value: count / FULL_TRANS_ROWS for value, count in counts.items()}
    for column, counts in FULL_TRANS_COUNTS.items()
}
_ACCOUNT_MONTHS = 183_114  # = UROK rows: every account books interest once a month


def _per_account_month(count: int) -> float:
    return count / _ACCOUNT_MONTHS


# Rates of the non-structural events per account and month (structural ones - interest, orders,
# incomes - follow from the tables). Opening deposits (one per account) are not VKLAD income.
RATE_CASH_WITHDRAWAL = _per_account_month(256_043)  # VYDAJ / VYBER / ""
RATE_CASH_VYBER = _per_account_month(16_666)  # type VYBER
RATE_STATEMENT_FEE = _per_account_month(155_832)  # SLUZBY: not every month
SHARE_PENSION = _per_account_month(30_338)  # accounts paid a monthly DUCHOD
SHARE_TRANSFER_INCOME = _per_account_month(34_888)  # PREVOD Z UCTU with k_symbol ""
RATE_VKLAD = _per_account_month(156_743 - REAL_ACCOUNTS)
# Cash-paid accounts book their salary as one VKLAD a month; extra deposits with this
# probability a month make up the rest of the real VKLAD rate.
EXTRA_VKLAD_PROBABILITY = RATE_VKLAD / (1 - SHARE_PENSION - SHARE_TRANSFER_INCOME) - 1
RATE_CARD_WITHDRAWAL = 1.3  # per month with a card: gives ~8,000 VYBER KARTOU rows at scale 1
# Share of the months after opening in which an order of this k_symbol is paid, so that
# orders x months lands on the real trans counts (SIPO 118,065, " " 53,433, POJISTNE 18,500,
# "" transfers 9,505 for LEASING). A loan's UVER order follows the loan's dates instead; the
# few other UVER orders (loans from other banks) run for a random loan duration.
ORDER_ACTIVE_SHARE = {"SIPO": 0.85, " ": 0.97, "POJISTNE": 0.87, "LEASING": 0.70, "UVER": 0.5}
# Share of an order's payments made in cash (VYBER, bank "", account "0"), as in the real file.
ORDER_CASH_SHARE = {"SIPO": 0.03, " ": 0.025}
CASH_WITHDRAWAL_ACCOUNT_0_SHARE = 0.035
MONTHLY_INTEREST = 0.0025
MONTHLY_PENALTY = 0.002


# --- mix report ---------------------------------------------------------------------------------


def mix_report(trans_rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Proportions of each type, operation and k_symbol value among trans records (None is
    counted as "", like the full-file statistics)."""
    counters = {column: Counter[str]() for column in FULL_TRANS_COUNTS}
    total = 0
    for row in trans_rows:
        total += 1
        for column, counter in counters.items():
            value = row[column]
            counter["" if value is None else value] += 1
    return {
        column: {value: count / total for value, count in counter.items()} if total else {}
        for column, counter in counters.items()
    }


def mix_differences(
    report: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]] = FULL_TRANS_MIX,
) -> dict[str, dict[str, float]]:
    """Percentage-point differences report - reference for every value seen in either."""
    return {
        column: {
            value: 100 * (report.get(column, {}).get(value, 0.0) - shares.get(value, 0.0))
            for value in set(shares) | set(report.get(column, {}))
        }
        for column, shares in reference.items()
    }
