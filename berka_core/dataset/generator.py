"""Synthetic Berka data in the exact physical format of the real files, at any scale.

Scale 1 gives about the real volume: 4,500 accounts and ~1.06M transactions over 1993-1998.
The shape follows the real data (counts from FORMAT.md and the full trans.asc): accounts opened
per year, statement frequencies, one OWNER per account and a DISPONENT on ~1 account in 5,
gender and birth decades, card types (OWNER dispositions only), loan statuses consistent with
their dates (A/B finished, C/D running), permanent orders by k_symbol, and the transaction mix
by type, operation and k_symbol.

How trans is built, per account and month: the opening VKLAD on the opening date, a monthly
income (cash VKLAD, a transfer PREVOD Z UCTU, or a DUCHOD pension), one debit per active
permanent order (k_symbol from the order; LEASING orders book as ""), random cash withdrawals,
card withdrawals after the card's issue, and at month end the interest (UROK, empty operation)
or a penalty (SANKC. UROK) when the balance is negative, and the statement fee (SLUZBY: 14.60
monthly, 30.00 weekly, 100.00 per-transaction statements). Balances are running totals in file
order, which is date order. Per-account-month rates are the real counts divided by the real
number of account-months (one UROK row each: 183,114), so the mix lands on the real one.

Streaming: trans is produced a month at a time. Each month, every open account plans its events
into per-day buckets; the buckets are then emitted day by day, which sorts the file by date
without holding more than one month of events (O(accounts), independent of the years covered).
trans_id = (account's row number) x (number of accounts) + (account's slot) + 1: unique without
a global counter, increasing per account in date order, not sorted within a date.

Deterministic: one random.Random(seed) drives everything, in a fixed order.
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import itertools
import math
import os
import random
import time
from array import array
from calendar import monthrange
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from berka_core.dataset.districts import district_records
from berka_core.dataset.schema import BANK_CODES, get_table, load_order
from berka_core.dataset.writer import TableWriter

FIRST_YEAR = 1993
LAST_DATE = dt.date(1998, 12, 31)
N_MONTHS = (LAST_DATE.year - FIRST_YEAR) * 12 + LAST_DATE.month  # 72: Jan 1993 .. Dec 1998

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


# --- helpers ------------------------------------------------------------------------------------


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` in proportion to `weights` exactly (largest remainder), so even a tiny
    scale keeps the real proportions as closely as whole numbers allow."""
    weight_sum = float(sum(weights))
    raw = [total * w / weight_sum for w in weights]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _quota_labels(rng: random.Random, total: int, counts: Mapping[str, int]) -> list[str]:
    labels = [
        label
        for label, n in zip(counts, _allocate(total, list(counts.values())), strict=True)
        for _ in range(n)
    ]
    rng.shuffle(labels)
    return labels


def _scaled(count: int, scale: float) -> int:
    return round(count * scale)


def month_index(day: dt.date) -> int:
    """0 for January 1993 ... 71 for December 1998."""
    return (day.year - FIRST_YEAR) * 12 + day.month - 1


def _month_start(index: int) -> dt.date:
    return dt.date(FIRST_YEAR + index // 12, index % 12 + 1, 1)


def _increasing_ids(rng: random.Random, count: int, start: int, max_gap: int) -> list[int]:
    """Increasing ids with small random gaps, like the real files' sparse ids."""
    ids, current = [], start
    for _ in range(count):
        ids.append(current)
        current += 1 + int(rng.random() * max_gap)
    return ids


def _cents(crowns: float) -> int:
    return round(crowns * 100)


def _lognormal_cents(
    rng: random.Random, median: float, sigma: float, low: float, high: float
) -> int:
    crowns = min(max(median * math.exp(rng.gauss(0.0, sigma)), low), high)
    if rng.random() < 0.7:  # most real amounts are whole crowns; the rest have 1 decimal
        return _cents(round(crowns))
    return _cents(round(crowns, 1))


def _random_account_number(rng: random.Random) -> str:
    # Real partner accounts are mostly 8 digits with a tail of shorter ones, as a uniform draw.
    return str(rng.randrange(1, 100_000_000))


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


# --- static tables ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Order:
    k_symbol: str  # as booked in trans ("" for LEASING)
    amount_cents: int
    bank_to: str
    account_to: str
    start_month: int
    end_month: int
    day: int
    cash_share: float


@dataclass(slots=True)
class _Account:
    """Everything trans generation needs to know about one account, and its running state."""

    account_id: int
    slot: int
    opened: dt.date
    open_month: int
    frequency: str
    district_id: int
    orders: list[_Order] = field(default_factory=list)
    card_issued: dt.date | None = None
    income_kind: str = "cash"  # cash VKLAD, transfer PREVOD Z UCTU, or pension DUCHOD
    income_cents: int = 0
    pay_day: int = 1
    payer_bank: str = ""
    payer_account: str = ""
    spend_unit_cents: int = 10_000
    target_balance_cents: int = 1_000_000
    balance: int = 0
    rows: int = 0


@dataclass
class _StaticTables:
    accounts: list[_Account]
    # Rows as value tuples in file column order (tuples take half the memory of dicts).
    tables: dict[str, list[tuple[Any, ...]]]


@dataclass
class _NextIds:
    """Where each sparse id sequence continues in the next shard (ids follow account ids)."""

    client: int = 1
    disp: int = 1
    loan: int = 4959
    order: int = 29401
    card: int = 1


@dataclass(frozen=True)
class _Shard:
    """A slice of the accounts in opening order, generated on its own.

    Its account ids come from [id_low, id_high), above every id of the shards before it, so the
    files ordered by id (client, disp, order) and by opening date (account) are written shard
    after shard; loans, cards and trans are merged by date (see _merge_runs)."""

    opened: list[dt.date]
    scale: float  # the share of the real counts this shard gets
    id_low: int
    id_high: int
    slot_base: int  # the by-id position of its first account among all accounts


def _opening_dates(rng: random.Random, n_accounts: int) -> array[int]:
    """Every account's opening date as an ordinal (4 bytes each), in the real yearly counts,
    sorted like account.asc."""
    opened = array("i")
    per_year = _allocate(n_accounts, list(ACCOUNTS_OPENED_PER_YEAR.values()))
    for year, count in zip(ACCOUNTS_OPENED_PER_YEAR, per_year, strict=True):
        days_in_year = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
        first = dt.date(year, 1, 1).toordinal()
        # Sorted by counting per day: no list of all dates, whatever the scale.
        per_day = array("i", bytes(4 * days_in_year))
        for _ in range(count):
            per_day[rng.randrange(days_in_year)] += 1
        for day, accounts_that_day in enumerate(per_day):
            opened.extend(itertools.repeat(first + day, accounts_that_day))
    opened[0] = dt.date(FIRST_YEAR, 1, 1).toordinal()  # the real file starts on 930101
    return opened


def _shard_count(n_accounts: int, shard_accounts: int) -> int:
    return max(1, math.ceil(n_accounts / shard_accounts))


def _shards(opened: Sequence[int], scale: float, shard_accounts: int) -> Iterator[_Shard]:
    """The shards one after the other (each holds its accounts' dates only while in use)."""
    n_accounts = len(opened)
    n_shards = _shard_count(n_accounts, shard_accounts)
    bounds = [n_accounts * i // n_shards for i in range(n_shards + 1)]
    id_low = 1
    for low, high in itertools.pairwise(bounds):
        size = high - low
        id_high = id_low + int(size * 2.53) + 1  # real account ids are this sparse
        yield _Shard(
            opened=[dt.date.fromordinal(day) for day in opened[low:high]],
            scale=scale * size / n_accounts,
            id_low=id_low,
            id_high=id_high,
            slot_base=low,
        )
        id_low = id_high


def _build_static(rng: random.Random, shard: _Shard, next_ids: _NextIds) -> _StaticTables:
    districts = district_records()
    district_ids = [d["district_id"] for d in districts]
    inhabitants = [d["inhabitants"] for d in districts]
    scale = shard.scale
    opened = shard.opened
    n_accounts = len(opened)
    account_ids = rng.sample(range(shard.id_low, shard.id_high), n_accounts)
    slots = {aid: shard.slot_base + rank for rank, aid in enumerate(sorted(account_ids))}
    frequencies = _quota_labels(rng, n_accounts, FREQUENCY_COUNTS)
    account_districts = rng.choices(district_ids, weights=inhabitants, k=n_accounts)
    accounts = [
        _Account(
            account_id=aid,
            slot=slots[aid],
            opened=day,
            open_month=month_index(day),
            frequency=frequency,
            district_id=district,
        )
        for aid, day, frequency, district in zip(
            account_ids, opened, frequencies, account_districts, strict=True
        )
    ]
    by_id = sorted(accounts, key=lambda a: a.account_id)

    # client + disp: one OWNER per account, a DISPONENT on ~1 in 5; each client one disp.
    with_disponent = set(
        rng.sample(range(n_accounts), min(n_accounts, _scaled(DISPONENT_ACCOUNTS, scale)))
    )
    n_clients = n_accounts + len(with_disponent)
    genders = _quota_labels(rng, n_clients, {"F": WOMEN, "M": CLIENTS - WOMEN})
    decades = _quota_labels(rng, n_clients, {str(k): v for k, v in BIRTH_DECADE_COUNTS.items()})
    client_ids = _increasing_ids(rng, n_clients, next_ids.client, 4)
    disp_ids = _increasing_ids(rng, n_clients, next_ids.disp, 4)
    clients: list[tuple[Any, ...]] = []  # client_id, birth_number, district_id
    disps: list[tuple[Any, ...]] = []  # disp_id, client_id, account_id, type
    owner_disp: dict[int, int] = {}  # account_id -> its OWNER disp_id
    for index, account in enumerate(by_id):
        roles = ["OWNER", "DISPONENT"] if index in with_disponent else ["OWNER"]
        home = account.district_id
        if rng.random() > 0.91:  # 91% of real owners live in their account's district
            home = rng.choices(district_ids, weights=inhabitants)[0]
        for role in roles:
            k = len(clients)
            birth_number = _birth_number(rng, int(decades[k]), genders[k])
            clients.append((client_ids[k], birth_number, home))
            disps.append((disp_ids[k], client_ids[k], account.account_id, role))
            if role == "OWNER":
                owner_disp[account.account_id] = disp_ids[k]

    loans = _build_loans(rng, scale, accounts, next_ids)
    orders = _build_orders(rng, scale, accounts, loans, next_ids)
    cards = _build_cards(rng, scale, accounts, owner_disp, next_ids)
    _assign_incomes(rng, accounts)
    if clients:
        next_ids.client = clients[-1][0] + 1
        next_ids.disp = disps[-1][0] + 1

    account_rows = [(a.account_id, a.district_id, a.frequency, a.opened) for a in accounts]
    return _StaticTables(
        accounts=accounts,
        tables={
            "account": account_rows,
            "client": clients,
            "disp": disps,
            "card": _as_values("card", cards),
            "loan": _as_values("loan", loans),
            "order": orders,
        },
    )


def _as_values(table: str, records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    names = get_table(table).file_column_names
    return [tuple(record[name] for name in names) for record in records]


def _birth_number(rng: random.Random, decade: int, gender: str) -> str:
    # Birth years 1911-1987 as in the real file; the decade is drawn with the real weights.
    low, high = max(decade, 1911), min(decade + 9, 1987)
    year = rng.randint(low, high)
    born = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
    month = born.month + (50 if gender == "F" else 0)
    return f"{year % 100:02d}{month:02d}{born.day:02d}"


def _build_loans(
    rng: random.Random, scale: float, accounts: list[_Account], next_ids: _NextIds
) -> list[dict[str, Any]]:
    """At most one loan per account, granted 102-697 days after opening (the real range);
    status A/B only when its last payment is due by Dec 1998, C/D otherwise."""
    n_loans = _scaled(sum(LOAN_STATUS_COUNTS.values()), scale)
    last_grant = dt.date(1998, 12, 8)
    taken: set[int] = set()
    drafts: list[tuple[_Account, dt.date, int, int, str]] = []
    for status in _quota_labels(rng, n_loans, LOAN_STATUS_COUNTS):
        finished = status in ("A", "B")
        for _attempt in range(200):
            account = accounts[rng.randrange(len(accounts))]
            earliest = account.opened + dt.timedelta(days=102)
            latest = min(account.opened + dt.timedelta(days=697), last_grant)
            if account.account_id in taken or earliest > latest:
                continue
            granted = earliest + dt.timedelta(days=rng.randrange((latest - earliest).days + 1))
            start = month_index(granted)
            durations = [d for d in LOAN_DURATIONS if (start + d <= N_MONTHS - 1) == finished]
            if durations:
                taken.add(account.account_id)
                payments = rng.randint(304, 9910)
                drafts.append((account, granted, rng.choice(durations), payments, status))
                break
        # A tiny scale may have no account that fits this status; it then simply has one loan
        # fewer, rather than a loan whose status contradicts its dates.
    drafts.sort(key=lambda d: d[0].account_id)  # real loan ids follow account ids
    loan_ids = _increasing_ids(rng, len(drafts), next_ids.loan, 4)
    if loan_ids:
        next_ids.loan = loan_ids[-1] + 1
    loans = [
        {
            "loan_id": loan_id,
            "account_id": account.account_id,
            "date": granted,
            "amount": duration * payments,
            "duration": duration,
            "payments": Decimal(payments).quantize(Decimal("0.01")),
            "status": status,
        }
        for loan_id, (account, granted, duration, payments, status) in zip(
            loan_ids, drafts, strict=True
        )
    ]
    loans.sort(key=lambda loan: loan["date"])  # loan.asc is in date order
    return loans


def _build_orders(
    rng: random.Random,
    scale: float,
    accounts: list[_Account],
    loans: list[dict[str, Any]],
    next_ids: _NextIds,
) -> list[tuple[Any, ...]]:
    """Permanent orders by k_symbol with the real counts; every loan has its UVER order."""
    by_id = {a.account_id: a for a in accounts}
    drafts: list[tuple[_Account, str, int, int, int]] = []  # account, k, cents, start, end
    for k_symbol, count in ORDER_K_SYMBOL_COUNTS.items():
        wanted = _scaled(count, scale)
        if k_symbol == "UVER":
            for loan in loans:
                account = by_id[loan["account_id"]]
                start = month_index(loan["date"]) + 1
                end = min(N_MONTHS - 1, start + loan["duration"] - 1)
                drafts.append((account, k_symbol, int(loan["payments"] * 100), start, end))
            wanted -= len(loans)  # the rest: loans from other banks
        if wanted <= 0:
            continue
        median, sigma, low, high = ORDER_AMOUNTS[k_symbol]
        for index in rng.sample(range(len(accounts)), min(wanted, len(accounts))):
            account = accounts[index]
            after_opening = N_MONTHS - 1 - account.open_month
            # Orders start later in the account's life so that on average they are paid in
            # ORDER_ACTIVE_SHARE of its months (uniform delay with mean (1 - share) x life).
            share = ORDER_ACTIVE_SHARE[k_symbol]
            delay = int(rng.random() * 2 * (1 - share) * after_opening)
            start = account.open_month + 1 + delay
            end = N_MONTHS - 1
            if k_symbol == "UVER":
                end = min(end, start + rng.choice(LOAN_DURATIONS) - 1)
            cents = _lognormal_cents(rng, median, sigma, low, high)
            drafts.append((account, k_symbol, cents, start, end))

    drafts.sort(key=lambda d: d[0].account_id)  # order.asc: ids follow account ids
    order_ids = _increasing_ids(rng, len(drafts), next_ids.order, 4)
    if order_ids:
        next_ids.order = order_ids[-1] + 1
    rows: list[tuple[Any, ...]] = []  # in order.asc column order
    for order_id, (account, k_symbol, cents, start, end) in zip(order_ids, drafts, strict=True):
        bank_to = rng.choice(BANK_CODES)
        account_to = _random_account_number(rng)
        amount = Decimal(cents) * _CENT
        rows.append((order_id, account.account_id, bank_to, account_to, amount, k_symbol))
        account.orders.append(
            _Order(
                k_symbol="" if k_symbol == "LEASING" else k_symbol,
                amount_cents=cents,
                bank_to=bank_to,
                account_to=account_to,
                start_month=start,
                end_month=end,
                day=rng.randint(1, 28),
                cash_share=ORDER_CASH_SHARE.get(k_symbol, 0.0),
            )
        )
    return rows


def _build_cards(
    rng: random.Random,
    scale: float,
    accounts: list[_Account],
    owner_disp: dict[int, int],
    next_ids: _NextIds,
) -> list[dict[str, Any]]:
    """Cards on OWNER dispositions only, issued at least 203 days after opening (the real
    minimum) and more often late, as in the real file (half of all cards date from 1998)."""
    types = _quota_labels(rng, _scaled(sum(CARD_TYPE_COUNTS.values()), scale), CARD_TYPE_COUNTS)
    chosen = rng.sample(accounts, min(len(types), len(accounts)))
    drafts = []
    for account, card_type in zip(chosen, types, strict=False):
        earliest = account.opened + dt.timedelta(days=203)
        span = (LAST_DATE - dt.timedelta(days=2) - earliest).days
        issued = earliest + dt.timedelta(days=int(span * rng.random() ** (1 / 3)))
        account.card_issued = issued
        drafts.append((owner_disp[account.account_id], card_type, issued))
    drafts.sort(key=lambda d: d[0])
    card_ids = _increasing_ids(rng, len(drafts), next_ids.card, 2)
    if card_ids:
        next_ids.card = card_ids[-1] + 1
    cards = [
        {"card_id": card_id, "disp_id": disp_id, "type": card_type, "issued": issued}
        for card_id, (disp_id, card_type, issued) in zip(card_ids, drafts, strict=True)
    ]
    cards.sort(key=lambda c: c["issued"])  # card.asc is in issue order
    return cards


def _assign_incomes(rng: random.Random, accounts: list[_Account]) -> None:
    """Who is paid how: pensions go to accounts whose orders a pension can carry."""
    n = len(accounts)
    order_sum = {a.account_id: sum(o.amount_cents for o in a.orders) for a in accounts}
    eligible = [a for a in accounts if order_sum[a.account_id] <= 2200_00]
    pensioners = rng.sample(eligible, min(len(eligible), round(SHARE_PENSION * n)))
    pension_ids = {a.account_id for a in pensioners}
    others = [a for a in accounts if a.account_id not in pension_ids]
    transfer_ids = {
        a.account_id for a in rng.sample(others, min(len(others), round(SHARE_TRANSFER_INCOME * n)))
    }
    for account in accounts:
        orders = order_sum[account.account_id]
        if account.account_id in pension_ids:
            account.income_kind = "pension"
            account.income_cents = rng.randint(4000, 7000) * 100
        else:
            account.income_kind = "transfer" if account.account_id in transfer_ids else "cash"
            salary = min(max(13000 * math.exp(rng.gauss(0.0, 0.45)), 4000), 40000)
            account.income_cents = min(max(_cents(round(salary)), orders * 13 // 10 + 2000_00),
                                       79000_00)  # fmt: skip
        account.pay_day = rng.randint(1, 28)
        account.payer_bank = rng.choice(BANK_CODES)
        account.payer_account = _random_account_number(rng)
        disposable = max(account.income_cents - orders, 1000_00)
        # Expected monthly spending ~85% of what is left after orders: withdrawals (1.4 a
        # month, mean 1 unit) plus the rarer large VYBER (mean 2.75 units).
        account.spend_unit_cents = int(0.85 * disposable / 1.65)
        # The balance that spending pulls back to (see _TransEmitter._debit_cents).
        account.target_balance_cents = min(account.income_cents * 2, 80_000_00)


# --- trans --------------------------------------------------------------------------------------

_CENT = Decimal("0.01")

# Event kinds planned into the day buckets.
_OPEN, _VKLAD, _INCOME, _ORDER, _WITHDRAWAL, _VYBER, _CARD, _MONTH_END = range(8)


def _plan_month(
    rng: random.Random, account: _Account, month: int, n_days: int, buckets: list[list[Any]]
) -> None:
    """Append this account's events of `month` to the per-day buckets, in booking order."""
    random_ = rng.random
    if month == account.open_month:
        open_day = account.opened.day
        buckets[open_day].append((account, _OPEN, 100 * rng.randint(2, 12) * 100))
        first_day = open_day + 1  # everything else after the opening deposit's day
    else:
        first_day = 1
    span = n_days - first_day + 1
    if span > 0:
        share = span / n_days  # a partial first month gets proportionally fewer events
        if account.pay_day >= first_day:
            buckets[account.pay_day].append((account, _INCOME, None))
        if account.income_kind == "cash" and random_() < EXTRA_VKLAD_PROBABILITY * share:
            buckets[first_day + int(random_() * span)].append((account, _VKLAD, None))
        for order in account.orders:
            if order.start_month <= month <= order.end_month and order.day >= first_day:
                buckets[order.day].append((account, _ORDER, order))
        for _ in range(_poisson(rng, RATE_CASH_WITHDRAWAL * share)):
            buckets[first_day + int(random_() * span)].append((account, _WITHDRAWAL, None))
        if random_() < RATE_CASH_VYBER * share:
            buckets[first_day + int(random_() * span)].append((account, _VYBER, None))
        issued = account.card_issued
        if issued is not None and month >= month_index(issued):
            card_first = first_day
            if month == month_index(issued):
                card_first = max(first_day, issued.day + 1)
            card_span = n_days - card_first + 1
            if card_span > 0:
                for _ in range(_poisson(rng, RATE_CARD_WITHDRAWAL * card_span / n_days)):
                    day = card_first + int(random_() * card_span)
                    buckets[day].append((account, _CARD, None))
    buckets[n_days].append((account, _MONTH_END, None))


def _round_hundred(cents: int) -> int:
    return max(100_00, min(MAX_AMOUNT_CENTS, (cents + 50_00) // 100_00 * 100_00))


class _TransEmitter:
    """Turns planned events into trans rows: computes amounts, balances and ids, writes."""

    def __init__(self, rng: random.Random, writer: TableWriter, n_accounts: int) -> None:
        self.rng = rng
        self.write = writer.write_values
        self.n_accounts = n_accounts
        self.rows = 0

    def _book(
        self,
        account: _Account,
        day: dt.date,
        credit: bool,
        cents: int,
        trans_type: str,
        operation: str,
        k_symbol: str,
        bank: str | None = None,
        partner: str | None = None,
    ) -> None:
        balance = account.balance + cents if credit else account.balance - cents
        account.balance = balance
        trans_id = account.rows * self.n_accounts + account.slot + 1
        account.rows += 1
        self.rows += 1
        self.write(
            (
                trans_id,
                account.account_id,
                day,
                trans_type,
                operation,
                Decimal(cents) * _CENT,
                Decimal(balance) * _CENT,
                k_symbol,
                bank,
                partner,
            )
        )

    def _debit_cents(self, account: _Account, wanted: int, *, follow_savings: bool = True) -> int:
        """A cash amount in whole hundreds, no more than ~the balance (a small overdraft stays
        possible: the real file has negative balances). With `follow_savings`, more when the
        balance is above the account's usual level and less below, which keeps balances in
        the real range (max ~210,000) instead of growing for six years."""
        if follow_savings:
            wanted = int(wanted * max(account.balance / account.target_balance_cents, 0.7) ** 2)
        affordable = int(account.balance * 0.95)
        return _round_hundred(min(wanted, affordable) if affordable > 0 else 100_00)

    def emit(self, event: tuple[Any, int, Any], day: dt.date) -> None:
        account, kind, param = event
        random_ = self.rng.random
        book = self._book
        if kind == _WITHDRAWAL:
            wanted = int(account.spend_unit_cents * (0.3 + 1.4 * random_()))
            cents = self._debit_cents(account, wanted)
            if random_() < CASH_WITHDRAWAL_ACCOUNT_0_SHARE:
                book(account, day, False, cents, "VYDAJ", "VYBER", "", "", "0")
            else:
                book(account, day, False, cents, "VYDAJ", "VYBER", "")
        elif kind == _ORDER:
            order: _Order = param
            if order.cash_share and random_() < order.cash_share:
                book(account, day, False, order.amount_cents, "VYDAJ", "VYBER", order.k_symbol,
                     "", "0")  # fmt: skip
            else:
                book(account, day, False, order.amount_cents, "VYDAJ", "PREVOD NA UCET",
                     order.k_symbol, order.bank_to, order.account_to)  # fmt: skip
        elif kind == _MONTH_END:
            balance = account.balance
            if balance > 0:
                interest = max(10, round(balance * MONTHLY_INTEREST / 10) * 10)
                book(account, day, True, interest, "PRIJEM", "", "UROK")
            elif balance < 0:
                penalty = max(10, round(-balance * MONTHLY_PENALTY / 10) * 10)
                book(account, day, False, penalty, "VYDAJ", "VYBER", "SANKC. UROK")
            if random_() < RATE_STATEMENT_FEE:
                fee = STATEMENT_FEE_CENTS[account.frequency]
                book(account, day, False, fee, "VYDAJ", "VYBER", "SLUZBY")
        elif kind == _INCOME:
            cents = _cents(round(account.income_cents / 100 * (0.9 + 0.2 * random_())))
            if account.income_kind == "cash":
                book(account, day, True, cents, "PRIJEM", "VKLAD", "")
            elif account.income_kind == "pension":
                book(account, day, True, account.income_cents, "PRIJEM", "PREVOD Z UCTU",
                     "DUCHOD", account.payer_bank, account.payer_account)  # fmt: skip
            else:
                book(account, day, True, cents, "PRIJEM", "PREVOD Z UCTU", "",
                     account.payer_bank, account.payer_account)  # fmt: skip
        elif kind == _VKLAD:
            cents = _cents(round(account.income_cents / 100 * (0.1 + 0.5 * random_())))
            book(account, day, True, cents, "PRIJEM", "VKLAD", "")
        elif kind == _VYBER:
            wanted = int(account.spend_unit_cents * (1.5 + 2.5 * random_()))
            # Real VYBER amounts are whole crowns, not hundreds.
            cents = self._debit_cents(account, wanted) + int(random_() * 100) * 100
            cents = min(MAX_AMOUNT_CENTS, cents)
            book(account, day, False, cents, "VYBER", "VYBER", "")
        elif kind == _CARD:
            wanted = int(400_00 + 3600_00 * random_())
            cents = self._debit_cents(account, wanted, follow_savings=False)
            book(account, day, False, cents, "VYDAJ", "VYBER KARTOU", "", "", "0")
        elif kind == _OPEN:
            book(account, day, True, param, "PRIJEM", "VKLAD", "")
        else:
            raise AssertionError(f"unknown event kind {kind}")


def _write_trans(
    rng: random.Random, accounts: list[_Account], writer: TableWriter, n_accounts_total: int
) -> int:
    emitter = _TransEmitter(rng, writer, n_accounts_total)
    by_opening = sorted(accounts, key=lambda a: a.opened)
    open_accounts: list[_Account] = []
    next_to_open = 0
    for month in range(N_MONTHS):
        first = _month_start(month)
        n_days = monthrange(first.year, first.month)[1]
        while next_to_open < len(by_opening) and by_opening[next_to_open].open_month == month:
            open_accounts.append(by_opening[next_to_open])
            next_to_open += 1
        buckets: list[list[Any]] = [[] for _ in range(n_days + 1)]  # index = day of month
        for account in open_accounts:
            _plan_month(rng, account, month, n_days, buckets)
        for day_of_month in range(1, n_days + 1):
            day = first.replace(day=day_of_month)
            for event in buckets[day_of_month]:
                emitter.emit(event, day)
    return emitter.rows


# --- entry point --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    rows: dict[str, int]  # table -> data rows written
    seconds: float

    @property
    def trans_rows_per_second(self) -> float:
        return self.rows["trans"] / self.seconds if self.seconds else 0.0


# Accounts simulated at a time: a larger scale makes more shards, not more memory.
SHARD_ACCOUNTS = REAL_ACCOUNTS
# Files in date order, and the column their runs are merged on.
_DATE_ORDERED = {"loan": "date", "card": "issued", "trans": "date"}


def generate(
    out: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    seed: int = 0,
    shard_accounts: int = SHARD_ACCOUNTS,
    progress: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Write all eight tables as `<table>.asc` into the folder `out` (created if needed).

    Accounts are generated `shard_accounts` at a time, so peak memory is that of one shard
    whatever the scale; the date-ordered files are then merged from the shards' sorted runs.
    Each file is written under a temporary name and renamed when complete, so a watcher never
    sees half a file. `progress`, if given, gets a line of text after each shard and before the
    merge (a large scale takes minutes).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if shard_accounts < 1:
        raise ValueError(f"shard_accounts must be >= 1, got {shard_accounts}")
    started = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # Nothing here makes reference cycles, and with millions of live objects the cyclic
    # collector's full passes would dominate the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        rows = _generate_into(folder, rng, seed, scale, shard_accounts, progress or _quiet)
    finally:
        if gc_was_enabled:
            gc.enable()
    return GenerationResult(folder, rows, time.perf_counter() - started)


def _quiet(_: str) -> None:
    pass


def _generate_into(
    folder: Path,
    rng: random.Random,
    seed: int,
    scale: float,
    shard_accounts: int,
    progress: Callable[[str], None],
) -> dict[str, int]:
    opened = _opening_dates(rng, max(1, _scaled(REAL_ACCOUNTS, scale)))
    n_accounts = len(opened)
    partial = {table: folder / f".{table}.asc.partial" for table in load_order()}
    runs_dir = folder / ".runs"
    n_shards = _shard_count(n_accounts, shard_accounts)
    merged = n_shards > 1
    if merged:
        runs_dir.mkdir(exist_ok=True)
    writers = {
        table: TableWriter(path, table)
        for table, path in partial.items()
        if not (merged and table in _DATE_ORDERED)
    }
    runs: dict[str, list[Path]] = {table: [] for table in _DATE_ORDERED}
    rows: dict[str, int] = {}
    try:
        writers["district"].write_many(district_records())
        next_ids = _NextIds()
        for index, shard in enumerate(_shards(opened, scale, shard_accounts)):
            # One shard reuses the seed's generator: scale <= 1 gives the same bytes as ever.
            shard_rng = rng if not merged else random.Random(f"berka-{seed}-shard-{index}")
            static = _build_static(shard_rng, shard, next_ids)
            shard_writers = dict(writers)
            if merged:
                for table in _DATE_ORDERED:
                    run = runs_dir / f"{table}.{index:05d}.asc"
                    runs[table].append(run)
                    shard_writers[table] = TableWriter(run, table)
            try:
                for table, values in static.tables.items():
                    for row in values:
                        shard_writers[table].write_values(row)
                static.tables.clear()
                trans_rows = _write_trans(
                    shard_rng, static.accounts, shard_writers["trans"], n_accounts
                )
                progress(f"shard {index + 1}/{n_shards}: {len(shard.opened):,} accounts, "
                         f"{trans_rows:,} trans rows")
                del static, shard  # before the next shard is built, not after
            finally:
                if merged:
                    for table in _DATE_ORDERED:
                        shard_writers[table].close()
        for table, writer in writers.items():
            writer.close()
            rows[table] = writer.rows_written
        if merged:
            progress(f"merging the {n_shards} shards' {', '.join(_DATE_ORDERED)} files by date")
        for table, column in _DATE_ORDERED.items():
            if merged:
                rows[table] = _merge_runs(runs[table], partial[table], table, column)
        for table, path in partial.items():
            os.replace(path, folder / f"{table}.asc")
    finally:
        for writer in writers.values():
            writer.close()
        if merged:
            for run in runs_dir.glob("*.asc"):
                run.unlink()
            runs_dir.rmdir()
    return rows


def _merge_runs(runs: list[Path], dest: Path, table: str, column: str) -> int:
    """Merge date-sorted run files into one (earlier shard first on equal dates)."""
    field = get_table(table).file_column_names.index(column)
    files = [open(run, "rb") for run in runs]  # closed below, all together
    try:
        for stream in files:
            header = stream.readline()
        # The date is YYMMDD of 1993-1999 (one century): its text sorts as the date does.
        merged = heapq.merge(*files, key=lambda line: line.split(b";", field + 1)[field])
        count = 0
        with open(dest, "wb") as out:
            out.write(header)
            for line in merged:
                out.write(line)
                count += 1
        return count
    finally:
        for stream in files:
            stream.close()
