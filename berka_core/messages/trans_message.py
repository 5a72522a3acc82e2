"""Encoding of a transaction as a Kafka message, and its Spark schema, from one definition.

The JSON Schema beside this module is the published contract; tests validate produced messages
against it.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("trans_message.schema.json")

# (field, Spark type name) in message order. Money and dates travel as strings; the consumer
# validates and casts them, so a bad value becomes a quarantine reason, not a silent null.
FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"),
    ("trans_id", "long"),
    ("account_id", "long"),
    ("date", "string"),
    ("type", "string"),
    ("operation", "string"),
    ("amount", "string"),
    ("balance", "string"),
    ("k_symbol", "string"),
    ("bank", "string"),
    ("account", "string"),
    ("event_date", "string"),
    ("sent_at_ms", "long"),
)


def json_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def spark_schema() -> StructType:
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    types = {"int": IntegerType(), "long": LongType(), "string": StringType()}
    return StructType([StructField(name, types[kind], True) for name, kind in FIELDS])


def money_text(value: Decimal) -> str:
    return f"{value:.2f}"


def encode(
    *,
    trans_id: int,
    account_id: int,
    date: dt.date,
    type: str,
    operation: str | None,
    amount: Decimal,
    balance: Decimal,
    k_symbol: str | None,
    bank: str | None,
    account: str | None,
    sent_at_ms: int,
) -> bytes:
    """One message value, compact JSON in the field order of FIELDS."""
    iso_date = date.isoformat()
    message = {
        "schema_version": SCHEMA_VERSION,
        "trans_id": trans_id,
        "account_id": account_id,
        "date": iso_date,
        "type": type,
        "operation": operation,
        "amount": money_text(amount),
        "balance": money_text(balance),
        "k_symbol": k_symbol,
        "bank": bank,
        "account": account,
        "event_date": iso_date,
        "sent_at_ms": sent_at_ms,
    }
    return json.dumps(message, separators=(",", ":")).encode()


def key(account_id: int) -> bytes:
    """Partitioning key: one account's transactions stay ordered on one partition."""
    return str(account_id).encode()
