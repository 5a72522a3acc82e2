"""From a reader record to the bytes of a `trans` message (the contract in messages/), fast.

How reader values map to message fields (see the JSON Schema's descriptions):
    operation   "" (the interest rows) and an unquoted empty -> null; other values as read.
    k_symbol    None (unquoted empty) -> null; "" and " " kept as written.
    bank/account  as written: None -> null, "" and "0" kept (cash rows naming account 0).
Everything else is passed as read: ints, the date, Decimal money.

`trans_message.encode` is the reference. It costs ~5 us per message (a dict plus json.dumps),
more than reading the row, so the replay uses `encode_record`, which writes the same bytes with
one f-string and cached JSON literals for the few distinct strings and dates. Identity with
`encode` is checked over the whole sample and edge values by the tests, and again at run time
on the first record (the replay falls back to `encode` on any difference), so a change of the
contract can never make the two silently diverge.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from json.encoder import encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
from typing import Any

from berka_core.dataset.errors import RejectedRow
from berka_core.messages import trans_message

Encoder = Callable[[Mapping[str, Any], int], bytes]

# The layout encode_record writes; if the contract's fields change, it is not used.
_FAST_LAYOUT = (
    "schema_version", "trans_id", "account_id", "date", "type", "operation", "amount", "balance",
    "k_symbol", "bank", "account", "event_date", "sent_at_ms",
)
FAST_ENCODER_MATCHES_CONTRACT = (
    tuple(name for name, _ in trans_message.FIELDS) == _FAST_LAYOUT
    and trans_message.SCHEMA_VERSION == 1
)

# JSON literal of every text value met so far among the small closed sets (type, operation,
# k_symbol, bank codes); account numbers are too many to cache and go through the C encoder.
_TEXT_CACHE_LIMIT = 10_000
_text_json: dict[str | None, str] = {None: "null"}
_date_json: dict[dt.date, str] = {}


def message_kwargs(record: Mapping[str, Any], sent_at_ms: int) -> dict[str, Any]:
    """The keyword arguments of `trans_message.encode` for a reader record."""
    return {
        "trans_id": record["trans_id"],
        "account_id": record["account_id"],
        "date": record["date"],
        "type": record["type"],
        "operation": record["operation"] or None,
        "amount": record["amount"],
        "balance": record["balance"],
        "k_symbol": record["k_symbol"],
        "bank": record["bank"],
        "account": record["account"],
        "sent_at_ms": sent_at_ms,
    }


def encode_record_exact(record: Mapping[str, Any], sent_at_ms: int) -> bytes:
    """The message through the contract's own `encode` (the reference, slower)."""
    return trans_message.encode(**message_kwargs(record, sent_at_ms))


def _text(value: str | None) -> str:
    literal = _text_json.get(value)
    if literal is None:
        literal = encode_basestring_ascii(value)
        if len(_text_json) < _TEXT_CACHE_LIMIT:
            _text_json[value] = literal
    return literal


def _money(value: Decimal) -> str:
    # The reader keeps money's text exactly (2 decimals), so str() already is money_text();
    # '.' third from the end can only be plain notation with two decimals.
    text = str(value)
    if text[-3:-2] != ".":
        text = trans_message.money_text(value)
    return text


def _date(value: dt.date) -> str:
    literal = _date_json.get(value)
    if literal is None:
        literal = _date_json[value] = encode_basestring_ascii(value.isoformat())
    return literal


def encode_record(record: Mapping[str, Any], sent_at_ms: int) -> bytes:
    """Same bytes as `encode_record_exact`, about 5x faster."""
    # Inlined cache look-ups: a JSON literal is never empty, so `or` only falls back on a miss.
    text = _text_json
    date = _date_json.get(record["date"]) or _date(record["date"])
    amount = str(record["amount"])
    if amount[-3:-2] != ".":
        amount = _money(record["amount"])
    balance = str(record["balance"])
    if balance[-3:-2] != ".":
        balance = _money(record["balance"])
    account = record["account"]
    return (
        f'{{"schema_version":1,"trans_id":{record["trans_id"]:d},'
        f'"account_id":{record["account_id"]:d},"date":{date},'
        f'"type":{text.get(record["type"]) or _text(record["type"])},'
        f'"operation":{text.get(record["operation"] or None) or _text(record["operation"])},'
        f'"amount":"{amount}","balance":"{balance}",'
        f'"k_symbol":{text.get(record["k_symbol"]) or _text(record["k_symbol"])},'
        f'"bank":{text.get(record["bank"]) or _text(record["bank"])},'
        f'"account":{"null" if account is None else encode_basestring_ascii(account)},'
        f'"event_date":{date},"sent_at_ms":{sent_at_ms:d}}}'
    ).encode()


def choose_encoder(first_record: Mapping[str, Any] | None) -> tuple[Encoder, str]:
    """The fast encoder if it matches the contract on `first_record`, else the exact one."""
    if not FAST_ENCODER_MATCHES_CONTRACT:
        return encode_record_exact, "exact (the contract's fields changed)"
    if first_record is not None:
        try:
            same = encode_record(first_record, 0) == encode_record_exact(first_record, 0)
        except (TypeError, ValueError):
            same = False
        if not same:
            return encode_record_exact, "exact (fast encoder differs from the contract)"
    return encode_record, "fast"


def dlq_message(row: RejectedRow) -> bytes:
    """The dead-letter message of a malformed row: where it was, its text, and why."""
    return json.dumps(
        {"file": row.file, "line": row.line, "raw": row.raw, "reason": row.reason},
        separators=(",", ":"),
    ).encode()
