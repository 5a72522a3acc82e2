"""The replay loop's bookkeeping against an in-memory producer: no Kafka, no MySQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from berka_assets_tests.producer.fakes import (
    BytesSource,
    CheckingStore,
    FakeKafka,
    FakeProducer,
)
from berka_core.config import Settings
from berka_core.dataset.reader import TableReader
from berka_core.producer import reading
from berka_core.producer.encoding import encode_record_exact
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MemoryPositionStore, Position
from berka_core.producer.replay import (
    DeliveryFailedError,
    PositionMismatchError,
    StopRequest,
    run_replay,
)

SAMPLE = Path(Settings().data_dir) / "trans_prefix.asc"
TOPIC, DLQ = "t", "t.dlq"
ROWS = 3000


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    with SAMPLE.open("rb") as handle:
        return [line for _, line in zip(range(ROWS + 1), handle, strict=False)]


def _data(lines: list[bytes]) -> bytes:
    return b"".join(lines)


def _line_of(data: bytes) -> dict[int, int]:
    reader = TableReader(iter(data.splitlines(keepends=True)), "trans", strict=False,
                         on_reject=lambda row: None)
    return {record["trans_id"]: reader.line_number for record in reader}


def _options(**values: object) -> ReplayOptions:
    defaults: dict[str, object] = {"pacing": "full", "log_interval_s": 60}
    return ReplayOptions(topic=TOPIC, dlq_topic=DLQ, **(defaults | values))  # type: ignore[arg-type]


def _replay(data: bytes, options: ReplayOptions, producer: FakeProducer,
            store: MemoryPositionStore, stop: StopRequest | None = None):
    return run_replay(options, kafka=FakeKafka(producer), source=BytesSource(data),
                      positions=store, stop=stop)


def test_every_row_once_and_position_never_ahead_of_deliveries(lines: list[bytes]) -> None:
    data = _data(lines)
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=1)
    store = CheckingStore(producer, _line_of(data), DLQ)
    result = _replay(data, _options(), producer, store)
    assert result.ok and result.delivered == ROWS and result.stop_reason == "end of source"
    assert result.position.last_line == ROWS + 1 and result.position.sent == ROWS
    values = [m.value() for m in producer.delivered]
    expected = [encode_record_exact(r, 0) for r in TableReader(iter(lines), "trans")]
    strip = [json.loads(v) | {"sent_at_ms": 0} for v in values]
    assert sorted(strip, key=lambda m: m["trans_id"]) == sorted(
        (json.loads(v) for v in expected), key=lambda m: m["trans_id"])
    assert len(store.history) >= 2  # saved at the start and the end at least


def test_limit_then_resume_has_no_gap_and_no_repeat(lines: list[bytes]) -> None:
    data = _data(lines)
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=2)
    store = CheckingStore(producer, _line_of(data), DLQ)
    first = _replay(data, _options(max_messages=1000), producer, store)
    assert first.stop_reason == "max_messages" and first.position.last_line == 1001
    second = _replay(data, _options(max_messages=1000), producer, store)
    assert second.start_line == 1001 and second.position.last_line == 2001
    assert second.position.sent == 2000
    ids = [json.loads(m.value())["trans_id"] for m in producer.delivered]
    assert len(ids) == len(set(ids)) == 2000
    line_of = _line_of(data)
    assert sorted(line_of[i] for i in ids) == list(range(2, 2002))
    beginning = _replay(data, _options(max_messages=10, start="beginning"), producer, store)
    assert beginning.start_line == 1 and beginning.position.last_line == 11


@pytest.mark.parametrize("pacing", ["full", "rate"])
def test_a_full_local_queue_delays_and_loses_nothing(lines: list[bytes], pacing: str) -> None:
    """produce_batch queues part of a block, produce raises BufferError: what was refused is
    sent later, once each, and the position never passes an undelivered line."""
    data = _data(lines)
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=9, queue_limit=50)
    store = CheckingStore(producer, _line_of(data), DLQ)
    result = _replay(data, _options(pacing=pacing, rate=100_000.0), producer, store)
    assert producer.refused > 0, "the queue never filled: the test proves nothing"
    assert result.ok and result.delivered == ROWS and result.position.last_line == ROWS + 1
    ids = [json.loads(m.value())["trans_id"] for m in producer.delivered]
    assert len(ids) == len(set(ids)) == ROWS


@pytest.mark.parametrize("pacing", ["full", "rate"])
@pytest.mark.parametrize("raise_when_fatal", [True, False], ids=["raises", "error_cb-only"])
def test_a_fatal_producer_error_stops_the_run_and_a_resume_completes_it(
    lines: list[bytes], pacing: str, raise_when_fatal: bool
) -> None:
    data = _data(lines)
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=10, fatal_after=700,
                            raise_when_fatal=raise_when_fatal)
    store = CheckingStore(producer, _line_of(data), DLQ)  # position never ahead of deliveries
    try:
        result = _replay(data, _options(pacing=pacing, rate=100_000.0), producer, store)
    except DeliveryFailedError as error:
        result = error.result
    assert not result.ok and result.fatal_error is not None and "_FATAL" in result.fatal_error
    # Whichever librdkafka reported first: the error callback or the failed deliveries.
    assert result.stop_reason in {"fatal producer error", "delivery failures"}
    assert "fatal producer error: " in result.summary()
    stopped_at = store.load("mem://trans.asc", TOPIC).last_line
    assert stopped_at < ROWS + 1
    # A new producer (librdkafka's fatal state is for good) resumes where the position says.
    producer.fatal, producer.fatal_after = False, None
    again = _replay(data, _options(pacing=pacing, rate=100_000.0), producer, store)
    assert again.ok and again.start_line == stopped_at and again.position.last_line == ROWS + 1
    line_of = _line_of(data)
    assert {line_of[json.loads(m.value())["trans_id"]] for m in producer.delivered} == set(
        range(2, ROWS + 2))


def test_transient_failures_are_resent(lines: list[bytes]) -> None:
    data = _data(lines)

    def fail(topic: str, message: dict, attempt: int) -> str | None:
        return "_MSG_TIMED_OUT" if message["trans_id"] % 7 == 0 and attempt <= 2 else None

    producer = FakeProducer({TOPIC: 3, DLQ: 1}, fail=fail, seed=3)
    store = CheckingStore(producer, _line_of(data), DLQ)
    result = _replay(data, _options(retries=2), producer, store)
    assert result.ok and result.delivered == ROWS and result.resent > 0
    assert result.position.last_line == ROWS + 1


def test_permanent_failure_fails_loudly_and_holds_the_position(lines: list[bytes]) -> None:
    data = _data(lines)
    line_of = _line_of(data)
    victim = next(tid for tid, line in line_of.items() if line == 500)

    def fail(topic: str, message: dict, attempt: int) -> str | None:
        return "_MSG_TIMED_OUT" if message["trans_id"] == victim else None

    producer = FakeProducer({TOPIC: 3, DLQ: 1}, fail=fail, seed=4)
    store = CheckingStore(producer, line_of, DLQ)
    with pytest.raises(DeliveryFailedError) as raised:
        _replay(data, _options(retries=1), producer, store)
    result = raised.value.result
    assert result.failed == 1 and result.failures[0].line == 500
    assert result.failures[0].attempts == 2
    assert result.position.last_line == 499  # never past the failed line
    assert store.load("mem://trans.asc", TOPIC).last_line == 499
    assert "1 message(s) NOT delivered" in str(raised.value)
    assert f"trans_id {victim}" in str(raised.value)
    # A resume sends the failed line again (and what followed it), nothing before.
    producer.fail = None
    before = len(producer.delivered)
    again = _replay(data, _options(), producer, store)
    assert again.start_line == 499 and again.position.last_line == ROWS + 1
    resent = {line_of[json.loads(m.value())["trans_id"]] for m in producer.delivered[before:]}
    assert min(resent) == 500


def test_a_failure_stops_reading() -> None:
    data = SAMPLE.read_bytes()  # 49,102 rows: many housekeeping ticks

    def fail(topic: str, message: dict, attempt: int) -> str | None:
        return "_MSG_TIMED_OUT" if message["trans_id"] == 695247 else None  # line 2

    producer = FakeProducer({TOPIC: 3, DLQ: 1}, fail=fail, seed=8)
    with pytest.raises(DeliveryFailedError) as raised:
        _replay(data, _options(retries=0), producer, MemoryPositionStore())
    result = raised.value.result
    assert result.stop_reason == "delivery failures" and result.produced < 10_000
    assert result.position.last_line == 1


def test_permanent_error_is_not_resent(lines: list[bytes]) -> None:
    data = _data(lines[:20])

    def fail(topic: str, message: dict, attempt: int) -> str | None:
        return "MSG_SIZE_TOO_LARGE" if message["trans_id"] == 171812 else None

    producer = FakeProducer({TOPIC: 3, DLQ: 1}, fail=fail)
    with pytest.raises(DeliveryFailedError) as raised:
        _replay(data, _options(retries=5), producer, MemoryPositionStore())
    assert raised.value.result.failures[0].attempts == 1 and raised.value.result.resent == 0


def test_malformed_rows_go_to_the_dlq_with_absolute_lines(lines: list[bytes]) -> None:
    bad = [b'1;2;3\r\n', b'9999991;2378;931399;"PRIJEM";"VKLAD";700.00;700.00;"";;\r\n']
    data = _data(lines[:101] + bad[:1] + lines[101:201] + bad[1:] + lines[201:301])
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=5)
    store = CheckingStore(producer, _line_of(data), DLQ, done_before=50)
    # Resume from line 50 so that line numbers must add the skipped part back.
    store.positions[("mem://trans.asc", TOPIC)] = Position(
        "mem://trans.asc", TOPIC, last_line=50,
        last_trans_id=next(t for t, line in _line_of(data).items() if line == 50), sent=49)
    result = _replay(data, _options(), producer, store)
    assert result.ok and result.rejected == 2 and result.dead_lettered == 2
    assert result.delivered == 300 - 49
    dead = [json.loads(m.value()) for m in producer.delivered if m.topic() == DLQ]
    assert sorted(d["line"] for d in dead) == [102, 203]
    by_line = {d["line"]: d for d in dead}
    assert by_line[102]["raw"] == "1;2;3" and "expected 10 fields" in by_line[102]["reason"]
    assert by_line[102]["reason"].startswith("mem://trans.asc: line 102: ")
    assert "date" in by_line[203]["reason"] and by_line[203]["file"] == "mem://trans.asc"
    assert by_line[203]["reason"].startswith("mem://trans.asc: line 203: ")
    assert result.position.last_line == 303 and result.position.rejected == 2


def test_stop_request_ends_gracefully(lines: list[bytes],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Full speed stops between produce_batch calls: make them smaller than the file.
    monkeypatch.setattr(reading, "BLOCK_MESSAGES", 500)
    data = _data(lines)
    stop = StopRequest()
    producer = FakeProducer({TOPIC: 3, DLQ: 1}, seed=6,
                            on_produce=lambda n: n == 1500 and stop.set("signal SIGTERM"))
    store = CheckingStore(producer, _line_of(data), DLQ)
    result = _replay(data, _options(), producer, store, stop)
    assert result.ok and result.interrupted and result.stop_reason == "signal SIGTERM"
    # Stops after the block being produced; all produced were flushed and recorded.
    assert 1500 <= result.delivered <= 2000
    assert result.position.last_line == result.delivered + 1


def test_date_range(lines: list[bytes]) -> None:
    data = _data(lines)
    records = list(TableReader(iter(lines), "trans"))
    dates = sorted({r["date"] for r in records})
    date_from, date_to = dates[3], dates[6]
    producer = FakeProducer({TOPIC: 3, DLQ: 1})
    store = MemoryPositionStore()
    result = _replay(data, _options(date_from=date_from.isoformat(),
                                    date_to=date_to.isoformat()), producer, store)
    wanted = [r["trans_id"] for r in records if date_from <= r["date"] <= date_to]
    assert sorted(json.loads(m.value())["trans_id"] for m in producer.delivered) == sorted(wanted)
    before = sum(1 for r in records if r["date"] < date_from)
    assert result.skipped == before and result.stop_reason == "date_to"
    assert result.position.last_line == 1 + before + len(wanted)
    # Resuming without a range continues at the first row after date_to.
    producer.delivered.clear()
    _replay(data, _options(max_messages=1), producer, store)
    assert json.loads(producer.delivered[0].value())["date"] > date_to.isoformat()


def test_position_that_does_not_fit_the_file(lines: list[bytes]) -> None:
    data = _data(lines)
    store = MemoryPositionStore()
    store.positions[("mem://trans.asc", TOPIC)] = Position(
        "mem://trans.asc", TOPIC, last_line=100, last_trans_id=123456789)
    with pytest.raises(PositionMismatchError, match="does not match the file"):
        _replay(data, _options(), FakeProducer({TOPIC: 3, DLQ: 1}), store)
    store.positions[("mem://trans.asc", TOPIC)] = Position("mem://trans.asc", TOPIC,
                                                           last_line=ROWS + 50)
    with pytest.raises(PositionMismatchError, match="has only"):
        _replay(data, _options(), FakeProducer({TOPIC: 3, DLQ: 1}), store)


def test_zero_limit_sends_nothing(lines: list[bytes]) -> None:
    producer = FakeProducer({TOPIC: 3, DLQ: 1})
    result = _replay(_data(lines), _options(max_messages=0), producer, MemoryPositionStore())
    assert result.delivered == 0 and producer.produced == 0 and result.position.last_line == 1


def test_missing_topic_is_a_clear_error(lines: list[bytes]) -> None:
    from berka_core.producer.replay import TopicNotFoundError

    with pytest.raises(TopicNotFoundError, match=r"'t\.dlq' is not available"):
        _replay(_data(lines), _options(), FakeProducer({TOPIC: 3}), MemoryPositionStore())


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="date_from"):
        _options(date_from="1993-13-01").validate_options()
    with pytest.raises(ValueError, match="after"):
        _options(date_from="1994-01-01", date_to="1993-01-01").validate_options()
    with pytest.raises(ValueError, match="both"):
        ReplayOptions(topic="x", dlq_topic="x").validate_options()
    assert _options().producer_overrides()["compression.type"] == "lz4"
    assert _options(producer_config={"linger.ms": "1"}).producer_overrides()["linger.ms"] == "1"


def test_rate_pacing_follows_the_clock(lines: list[bytes]) -> None:
    producer = FakeProducer({TOPIC: 3, DLQ: 1})
    started = time.monotonic()
    result = _replay(_data(lines), _options(pacing="rate", rate=1000, jitter="none",
                                            max_messages=301), producer, MemoryPositionStore())
    elapsed = time.monotonic() - started
    assert result.delivered == 301 and 0.29 <= elapsed < 0.6  # 300 gaps of 1 ms


def test_historical_pacing_spreads_days(lines: list[bytes]) -> None:
    records = list(TableReader(iter(lines), "trans"))
    first = records[0]["date"]
    days = 4  # a day lasts 50 ms: the rows of the first 4 days take ~0.2 s
    wanted = sum(1 for r in records if (r["date"] - first).days < days)
    last_day = first + dt.timedelta(days=days - 1)
    producer = FakeProducer({TOPIC: 3, DLQ: 1})
    started = time.monotonic()
    result = _replay(_data(lines), _options(pacing="historical", speedup=86_400 / 0.05,
                                            date_to=last_day.isoformat()),
                     producer, MemoryPositionStore())
    elapsed = time.monotonic() - started
    assert result.delivered == wanted and result.stop_reason == "date_to"
    assert (days - 1) * 0.05 <= elapsed < days * 0.05 + 0.3


def test_cli_flags_map_to_the_config() -> None:
    from berka_assets.replay_cli import build_parser, parse_options

    parser = build_parser()
    options, args = parse_options(parser, [
        "--topic", "x", "--pacing", "historical", "--speedup", "1000", "--max-messages", "5",
        "--producer-config", "linger.ms=1", "--producer-config", "acks=all",
        "--source", "s3", "--bucket", "b",
    ])
    assert (options.topic, options.pacing, options.speedup, options.max_messages) == (
        "x", "historical", 1000.0, 5)
    assert options.producer_config == {"linger.ms": "1", "acks": "all"}
    assert options.rate == ReplayOptions().rate  # unset flags keep the config's defaults
    assert (args.source, args.bucket) == ("s3", "b")
    every_field = {f"--{name.replace('_', '-')}" for name in ReplayOptions.model_fields}
    assert every_field <= set(parser._option_string_actions)
    with pytest.raises(SystemExit):
        parse_options(parser, ["--date-from", "yesterday"])


def test_full_speed_loop_makes_no_reference_cycles(lines: list[bytes]) -> None:
    # The full-speed loop pauses the cyclic GC: rows must leave no cyclic garbage behind.
    import gc

    from berka_core.producer.delivery import Entry

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        _replay(_data(lines), _options(), FakeProducer({TOPIC: 3, DLQ: 1}),
                MemoryPositionStore())
        gc.collect()
        per_row = [o for o in gc.garbage if isinstance(o, Entry | dict | bytes)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert len(per_row) < 50, len(per_row)
