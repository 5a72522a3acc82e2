"""The synthetic static tables of one shard: account, client, disp, loan, order and card rows
in the real proportions, and the accounts (with their orders, cards and incomes) whose trans
rows synthetic_trans then writes.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from berka_core.dataset.districts import district_records
from berka_core.dataset.schema import BANK_CODES, get_table
from berka_core.dataset.synthetic_draws import (
    _CENT,
    _increasing_ids,
    _lognormal_cents,
    _quota_labels,
    _random_account_number,
    _scaled,
)
from berka_core.dataset.synthetic_shape import (
    BIRTH_DECADE_COUNTS,
    CARD_TYPE_COUNTS,
    CLIENTS,
    DISPONENT_ACCOUNTS,
    FREQUENCY_COUNTS,
    LAST_DATE,
    LOAN_DURATIONS,
    LOAN_STATUS_COUNTS,
    N_MONTHS,
    ORDER_ACTIVE_SHARE,
    ORDER_AMOUNTS,
    ORDER_CASH_SHARE,
    ORDER_K_SYMBOL_COUNTS,
    WOMEN,
    month_index,
)
from berka_core.dataset.synthetic_trans import _Account, _assign_incomes, _Order


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
    after shard; loans, cards and trans are merged by date (see generator._merge_runs)."""

    opened: list[dt.date]
    scale: float  # the share of the real counts this shard gets
    id_low: int
    id_high: int
    slot_base: int  # the by-id position of its first account among all accounts


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
