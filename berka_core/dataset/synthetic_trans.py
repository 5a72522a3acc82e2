"""The synthetic trans file: each account's income and running state, its events planned a
month at a time, and their emission as trans rows (amounts, balances, ids).

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
"""

from __future__ import annotations

import datetime as dt
import math
import random
from calendar import monthrange
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from berka_core.dataset.schema import BANK_CODES
from berka_core.dataset.synthetic_draws import _CENT, _cents, _poisson, _random_account_number
from berka_core.dataset.synthetic_shape import (
    CASH_WITHDRAWAL_ACCOUNT_0_SHARE,
    EXTRA_VKLAD_PROBABILITY,
    MAX_AMOUNT_CENTS,
    MONTHLY_INTEREST,
    MONTHLY_PENALTY,
    N_MONTHS,
    RATE_CARD_WITHDRAWAL,
    RATE_CASH_VYBER,
    RATE_CASH_WITHDRAWAL,
    RATE_STATEMENT_FEE,
    SHARE_PENSION,
    SHARE_TRANSFER_INCOME,
    STATEMENT_FEE_CENTS,
    _month_start,
    month_index,
)
from berka_core.dataset.writer import TableWriter

# --- accounts and their incomes -----------------------------------------------------------------


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


# --- planning and emitting events ---------------------------------------------------------------

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
