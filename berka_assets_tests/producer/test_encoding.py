"""Record -> message bytes: the fast encoder writes exactly what the contract's encode writes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from berka_core.config import Settings
from berka_core.dataset.errors import RejectedRow
from berka_core.dataset.reader import TableReader
from berka_core.messages import trans_message
from berka_core.producer import encoding
from berka_core.producer.encoding import (
    choose_encoder,
    dlq_message,
    encode_record,
    encode_record_exact,
)

SAMPLE = Path(Settings().data_dir) / "trans_prefix.asc"


def _record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "trans_id": 695247, "account_id": 2378, "date": dt.date(1993, 1, 1), "type": "PRIJEM",
        "operation": "VKLAD", "amount": Decimal("700.00"), "balance": Decimal("700.00"),
        "k_symbol": "", "bank": None, "account": None,
    }
    record.update(changes)
    return record


def test_fast_encoder_is_byte_identical_on_the_whole_sample() -> None:
    assert encoding.FAST_ENCODER_MATCHES_CONTRACT
    rows = 0
    for record in TableReader(SAMPLE, "trans"):
        sent_at = 1_700_000_000_000 + rows
        assert encode_record(record, sent_at) == encode_record_exact(record, sent_at), record
        rows += 1
    assert rows == 49_102


@pytest.mark.parametrize(
    "changes",
    [
        {"operation": ""}, {"operation": None}, {"k_symbol": None}, {"k_symbol": " "},
        {"k_symbol": "SANKC. UROK"}, {"bank": "", "account": "0"},
        {"bank": "YZ", "account": "62457513"}, {"balance": Decimal("-41126.00")},
        {"amount": Decimal("0.00")}, {"amount": Decimal("87400.00")},
        {"amount": Decimal("12.6")}, {"amount": Decimal("5")}, {"amount": Decimal("1E+3")},
        {"amount": Decimal("0.001")}, {"balance": Decimal("-0.00")},
        {"account": 'quote " and \\ and \u00e9'}, {"date": dt.date(1998, 12, 31)},
        {"trans_id": 3_682_987, "account_id": 11_382},
    ],
)
def test_fast_encoder_matches_on_edge_values(changes: dict[str, object]) -> None:
    record = _record(**changes)
    assert encode_record(record, 0) == encode_record_exact(record, 0)


def test_value_mapping_follows_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(trans_message.json_schema())
    interest = json.loads(encode_record(_record(operation="", k_symbol="UROK"), 5))
    assert interest["operation"] is None  # "" in the file: null in the message
    kept = json.loads(encode_record(_record(k_symbol=" ", bank="", account="0"), 5))
    assert (kept["k_symbol"], kept["bank"], kept["account"]) == (" ", "", "0")
    unquoted = json.loads(encode_record(_record(k_symbol=None), 5))
    assert unquoted["k_symbol"] is None
    for message in (interest, kept, unquoted):
        validator.validate(message)
        assert message["amount"] == "700.00" and message["event_date"] == "1993-01-01"
        assert message["sent_at_ms"] == 5
    assert trans_message.key(2378) == b"2378"


def test_choose_encoder_falls_back_to_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_encoder(_record())[0] is encode_record
    monkeypatch.setattr(encoding, "encode_record", lambda record, sent_at: b"{}")
    encoder, why = choose_encoder(_record())
    assert encoder is encode_record_exact and "differs" in why
    monkeypatch.setattr(encoding, "FAST_ENCODER_MATCHES_CONTRACT", False)
    assert choose_encoder(_record())[0] is encode_record_exact


def test_dlq_message() -> None:
    row = RejectedRow("file:///x/trans.asc", 1007, '1;2;"x"', "expected 10 fields")
    assert json.loads(dlq_message(row)) == {
        "file": "file:///x/trans.asc", "line": 1007, "raw": '1;2;"x"',
        "reason": "expected 10 fields",
    }
