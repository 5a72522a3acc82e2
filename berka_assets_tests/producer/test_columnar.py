"""The full-speed path (columnar encoding, blocks, produce_batch) against the per-row path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berka_assets_tests.producer.fakes import BytesSource, FakeKafka, FakeProducer
from berka_core.config import Settings
from berka_core.dataset.generator import generate
from berka_core.dataset.reader import SeenKeys, TableReader
from berka_core.producer import blocks
from berka_core.producer.columnar import ColumnarEncoder, finish_bodies
from berka_core.producer.encoding import encode_record_exact
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MemoryPositionStore
from berka_core.producer.replay import run_replay

SAMPLE = Path(Settings().data_dir) / "trans_prefix.asc"
TOPIC, DLQ = "t", "t.dlq"
GOOD = b'695247;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;\r\n'


def _bodies_match_the_contract(path: Path) -> int:
    with path.open("rb") as handle:
        handle.readline()
        data = handle.read()
    encoded = ColumnarEncoder(SeenKeys(), crlf=True).encode(data)
    assert encoded is not None, "a clean file must take the columnar path"
    values = finish_bodies(encoded.bodies, b"1234}")
    records = list(TableReader(path, "trans"))
    assert len(values) == len(records)
    for value, record in zip(values, records, strict=True):
        assert value == encode_record_exact(record, 1234)
    assert encoded.keys == [str(r["account_id"]).encode() for r in records]
    return len(values)


def test_columnar_bodies_equal_the_contract_on_the_real_sample() -> None:
    assert _bodies_match_the_contract(SAMPLE) > 40_000


def test_columnar_bodies_equal_the_contract_on_synthetic_data(tmp_path: Path) -> None:
    # The generator writes transfers with bank and account, negative balances, every k_symbol.
    generate(tmp_path, scale=0.05, seed=3)
    assert _bodies_match_the_contract(tmp_path / "trans.asc") > 10_000


@pytest.mark.parametrize("line", [
    b'0695248;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;\r\n',  # leading zero, valid
    b'695248;2378;930101;"PRIJEM";"VKLAD";-0.00;700.00;"";;\r\n',  # "-0.00", valid
    b'695248;2378;930230;"PRIJEM";"VKLAD";700.00;700.00;"";;\r\n',  # no such date
    b'695248;2378;930101;"PRIJEM";"VKLAD";700.0;700.00;"";;\r\n',  # one decimal
    b'695248;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";"ABC";"1"\r\n',  # bank too long
    b'695248;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"\xc3\xa9";;\r\n',  # not ASCII
    b'695248;2378;930101;"PRIJEM";"VKLADX";700.00;700.00;"";;\r\n',  # not an operation
    b'695248;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";\r\n',  # 9 fields
    b'695248;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;\n',  # LF in a CRLF file
    b'695248;2378;930101;"PRIJEM";"VKLAD";700.00;700\r.00;"";;\r\n',  # a lone CR
    b"\r\n",  # blank
    GOOD,  # the same trans_id as the row before it
])
def test_anything_but_the_canonical_spelling_takes_the_exact_path(line: bytes) -> None:
    encoder = ColumnarEncoder(SeenKeys(), crlf=True)
    assert encoder.encode(GOOD) is not None
    assert encoder.encode(GOOD.replace(b"695247", b"695249") + line) is None
    # ... and a refused chunk leaves the seen trans_ids as they were.
    assert encoder.encode(GOOD.replace(b"695247", b"695250")) is not None


def test_a_truncated_last_line_takes_the_exact_path() -> None:
    assert ColumnarEncoder(SeenKeys(), crlf=True).encode(GOOD[:-2]) is None


def _run(data: bytes, **options: object) -> tuple[object, FakeProducer]:
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=9)
    config = ReplayOptions(topic=TOPIC, dlq_topic=DLQ, log_interval_s=60, **options)  # type: ignore[arg-type]
    result = run_replay(config, kafka=FakeKafka(producer), source=BytesSource(data),
                        positions=MemoryPositionStore())
    return result, producer


def _messages(producer: FakeProducer) -> tuple[list[dict], list[dict]]:
    records = sorted((json.loads(m.value()) | {"sent_at_ms": 0} for m in producer.delivered
                      if m.topic() == TOPIC), key=lambda m: m["trans_id"])
    dead = sorted((json.loads(m.value()) for m in producer.delivered if m.topic() == DLQ),
                  key=lambda m: m["line"])
    return records, dead


def test_full_speed_sends_what_the_per_row_path_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clean and dirty chunks mixed (4 KB chunks): the same messages, keys, dead letters with
    the same lines and reasons, and the same position as the paced per-row path."""
    monkeypatch.setattr(blocks, "CHUNK_BYTES", 4096)
    with SAMPLE.open("rb") as handle:
        lines = [line for _, line in zip(range(2001), handle, strict=False)]
    odd = [
        (150, b'0695248;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"";;\r\n'),
        (400, b'695249;2378;930230;"PRIJEM";"VKLAD";700.00;700.00;"";;\r\n'),
        (700, lines[5]),  # a duplicate trans_id, in another chunk than the first
        (900, b'695250;2378;930101;"PRIJEM";"VKLAD";700.00;700.00;"\xc3\xa9";;\r\n'),
        (1200, b"1;2;3\r\n"),
        (1500, b'695251;2378;930101;"PRIJEM";" ";-0.00;0.00;" ";"AB";"0"\r\n'),
    ]
    for index, line in sorted(odd, reverse=True):
        lines.insert(index, line)
    data = b"".join(lines) + b'695252;2378;930101;"PRIJEM"'  # truncated last line

    fast, fast_producer = _run(data, pacing="full")
    slow, slow_producer = _run(data, pacing="rate", rate=1e9)
    assert _messages(fast_producer) == _messages(slow_producer)
    records, dead = _messages(fast_producer)
    rejected = []
    valid = list(TableReader(iter(data.splitlines(True)), "trans", strict=False,
                             on_reject=rejected.append))
    assert len(records) == len(valid) > 2000 - 5
    assert [d["line"] for d in dead] == [r.line for r in rejected]
    assert len(dead) >= 5 and dead[-1]["line"] == len(lines) + 1
    assert "date" in dead[0]["reason"] and "truncated" in dead[-1]["reason"]
    fast_keys = sorted((m.key(), m.value()[:60]) for m in fast_producer.delivered
                       if m.topic() == TOPIC)
    slow_keys = sorted((m.key(), m.value()[:60]) for m in slow_producer.delivered
                       if m.topic() == TOPIC)
    assert fast_keys == slow_keys
    assert (fast.position.last_line, fast.position.sent, fast.position.rejected) == (
        slow.position.last_line, slow.position.sent, slow.position.rejected)
    assert fast.position.last_line == len(lines) + 1
    assert fast.first_trans_id == slow.first_trans_id


def test_full_speed_limits_and_date_range_match_the_per_row_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blocks, "CHUNK_BYTES", 8192)
    with SAMPLE.open("rb") as handle:
        data = b"".join(line for _, line in zip(range(3001), handle, strict=False))
    dates = sorted({r["date"] for r in TableReader(iter(data.splitlines(True)), "trans")})
    for options in (
        {"max_messages": 1234},
        {"date_from": dates[2].isoformat(), "date_to": dates[5].isoformat()},
        {"date_from": dates[4].isoformat(), "max_messages": 77},
    ):
        fast, fast_producer = _run(data, pacing="full", **options)
        slow, slow_producer = _run(data, pacing="rate", rate=1e9, **options)
        assert _messages(fast_producer) == _messages(slow_producer), options
        assert (fast.position.last_line, fast.position.sent, fast.skipped, fast.stop_reason) == (
            slow.position.last_line, slow.position.sent, slow.skipped, slow.stop_reason), options
