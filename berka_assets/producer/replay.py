"""The replay loop: trans rows from a stream, paced, to Kafka, with delivery tracking and resume.

    records (reader, lenient) -> date range -> pacing schedule -> produce -> delivery reports
                                                                           -> position (MySQL)

Delivery: every message gets a small entry whose bound method is its delivery callback, so a
report finds its line whatever order reports arrive in (they may interleave across partitions,
and after a timeout even within one). Entries wait in line order in `inflight`; the position is
the line of the last entry of the done prefix, so a resume has no gap and, after a clean stop,
no repeat. A message that failed after librdkafka's own retries (delivery.timeout.ms) is resent
up to `retries` times; one that still fails stops the run, holds the position before its line
and is reported with its error (DeliveryFailedError): nothing is dropped silently. A resend
goes after messages produced meanwhile, so it may land after a later row of the same account.

The loop is kept lean for full speed: no per-message poll (poll(0) every TICK_EVERY messages),
no per-message clock read unless a message is due in the future, cached keys.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from berka_assets.berka.reader import RejectedRow, TableReader
from berka_assets.messages import trans_message
from berka_assets.producer.blocks import BlockReader, RowBlock, shift_row
from berka_assets.producer.columnar import finish_bodies
from berka_assets.producer.encoding import choose_encoder, dlq_message
from berka_assets.producer.options import ReplayConfig
from berka_assets.producer.pacing import Pacer
from berka_assets.producer.position import Position, PositionStore
from berka_assets.resources.kafka import PartitionOffsets

logger = logging.getLogger("berka_assets.producer")
librdkafka_logger = logging.getLogger("berka_assets.producer.librdkafka")

GRANULARITY_S = 0.001  # a message due sooner than this is sent now: sleeps come in batches
TICK_EVERY = 1024  # messages between housekeeping (poll, stop checks) at full speed
TICK_WHILE_WAITING_S = 0.1
PROGRESS_EVERY_S = 0.5
POSITION_EVERY_S = 1.0
REPORTED_FAILURES = 10  # failures kept with their details; all are counted
DRAIN_MARGIN_S = 10.0  # on top of the delivery timeouts for the final flush

# Errors that a resend cannot fix.
_PERMANENT_ERRORS = {
    "MSG_SIZE_TOO_LARGE", "INVALID_MSG", "INVALID_RECORD", "CORRUPT_MESSAGE",
    "TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "INVALID_REQUIRED_ACKS",
    "RECORD_LIST_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "_INVALID_ARG",
}

_RECORD, _REJECT, _SKIP, _BLOCK = 0, 1, 2, 3
BLOCK_MESSAGES = 8192  # messages per produce_batch call: the unit of position and of stops
_SKIPPED = object()  # payload of a row left out by the date range


class ReplayError(Exception):
    """A replay that could not start or did not deliver everything it read."""


class BrokerUnavailableError(ReplayError):
    pass


class TopicNotFoundError(ReplayError):
    pass


class PositionMismatchError(ReplayError):
    """The stored position does not fit the source (the file changed since)."""


class DeliveryFailedError(ReplayError):
    """Messages still undelivered after all retries; `result` says which and why."""

    def __init__(self, result: ReplayResult) -> None:
        self.result = result
        super().__init__(result.failure_text())


class LogLike(Protocol):
    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...

    def error(self, msg: str) -> Any: ...


class KafkaLike(Protocol):
    """What the replay needs of a KafkaResource."""

    bootstrap_servers: str

    def producer(self, **overrides: Any) -> Any: ...

    def partition_offsets(self, topic: str, timeout: float = 10.0) -> list[PartitionOffsets]: ...


class SourceLike(Protocol):
    """What the replay needs of a BerkaSourceResource: the trans file as bytes and its URI."""

    def open(self, table: str) -> contextlib.AbstractContextManager[tuple[Any, str]]: ...


class StopRequest:
    """A stop flag with the reason it was raised (a signal, a termination, a caller)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str = "stop requested") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


@contextlib.contextmanager
def stop_on_signals(
    stop: StopRequest, signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM ask the replay to stop gracefully; a second signal raises
    KeyboardInterrupt (stop waiting for the flush). Does nothing off the main thread, where
    Python cannot handle signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass(frozen=True)
class DeliveryFailure:
    line: int
    trans_id: int | None  # None for a dead-letter message
    topic: str
    error: str
    attempts: int

    def __str__(self) -> str:
        what = f"trans_id {self.trans_id}" if self.trans_id is not None else "dead letter"
        return (f"line {self.line} ({what}) to {self.topic}: {self.error} after "
                f"{self.attempts} attempt(s)")


@dataclass(frozen=True)
class Progress:
    produced: int
    delivered: int
    failed: int
    rejected: int
    elapsed_s: float
    rate: float  # delivered messages/s over the last few seconds
    eta_s: float | None  # when a limit is known
    position_line: int
    final: bool = False

    def text(self) -> str:
        eta = f", ETA {_duration(self.eta_s)}" if self.eta_s is not None else ""
        extra = f", {self.failed:,} FAILED" if self.failed else ""
        extra += f", {self.rejected:,} rejected" if self.rejected else ""
        return (f"sent {self.delivered:,}{extra}, {self.rate:,.0f} msg/s, "
                f"line {self.position_line:,}, {_duration(self.elapsed_s)} elapsed{eta}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class ReplayResult:
    source_uri: str
    topic: str
    dlq_topic: str
    start_line: int
    position: Position
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    resent: int = 0
    first_trans_id: int | None = None
    last_trans_id: int | None = None
    elapsed_s: float = 0.0
    stop_reason: str = ""
    encoder: str = ""
    failures: list[DeliveryFailure] = field(default_factory=list)
    fatal_error: str | None = None
    offsets: list[PartitionOffsets] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.fatal_error is None

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def interrupted(self) -> bool:
        return self.stop_reason.startswith("signal") or self.stop_reason == "stop requested"

    def summary(self) -> str:
        text = (f"{self.delivered:,} messages delivered to {self.topic} from {self.source_uri} "
                f"in {self.elapsed_s:.1f} s ({self.rate:,.0f} msg/s), lines "
                f"{self.start_line + 1:,}..{self.position.last_line:,}, {self.rejected:,} "
                f"rejected to {self.dlq_topic}, stopped by: {self.stop_reason}")
        if not self.ok:
            text += f"; {self.failure_text()}"
        return text

    def failure_text(self) -> str:
        parts = []
        if self.failed:
            parts.append(f"{self.failed:,} message(s) NOT delivered")
        if self.fatal_error:
            parts.append(f"fatal producer error: {self.fatal_error}")
        if self.failures:
            parts.append("first errors: " + "; ".join(str(f) for f in self.failures[:3]))
        parts.append(f"position kept at line {self.position.last_line:,}: a resume resends "
                     "from the first failed line")
        return ", ".join(parts)

    def metadata(self) -> dict[str, Any]:
        """Plain values for Dagster metadata and JSON reports (None values left out)."""
        values: dict[str, Any] = {
            "source": self.source_uri,
            "topic": self.topic,
            "sent": self.delivered,
            "failed": self.failed,
            "rejected": self.rejected,
            "skipped_by_date": self.skipped,
            "resent": self.resent,
            "rate_msgs_per_s": round(self.rate, 1),
            "elapsed_s": round(self.elapsed_s, 3),
            "first_trans_id": self.first_trans_id,
            "last_trans_id": self.last_trans_id,
            "start_line": self.start_line,
            "position_line": self.position.last_line,
            "stop_reason": self.stop_reason,
            "offsets": {
                str(p.partition): {"low": p.low, "high": p.high} for p in self.offsets
            },
        }
        if self.fatal_error:
            values["fatal_error"] = self.fatal_error
        if self.failures:
            values["first_failures"] = [str(f) for f in self.failures]
        return {key: value for key, value in values.items() if value is not None}


@contextlib.contextmanager
def _cyclic_gc_paused(pause: bool) -> Iterator[None]:
    """At full speed, the cyclic GC's passes over the many young objects (a record, a message,
    an entry per row) and over Dagster's heap cost ~10% of the throughput, and the loop makes
    no reference cycles (refcounting frees everything): pause it for the run."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Entry:
    """One message (or one row with no message) in line order; its method is the callback."""

    __slots__ = ("attempts", "done", "kind", "line", "replay", "trans_id")

    def __init__(self, replay: _Replay, line: int, trans_id: int | None, kind: int) -> None:
        self.replay = replay
        self.line = line
        self.trans_id = trans_id
        self.kind = kind
        self.done = kind == _SKIP
        self.attempts = 1

    def delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.done = True
            if self.kind == _RECORD:
                self.replay.delivered += 1
            else:
                self.replay.dead_lettered += 1
        else:
            self.replay.delivery_failed(self, err, msg)


class _Batch:
    """The messages of one RowBlock in flight; done when every report came back positive.
    Positions move block by block: `line` is the block's last line."""

    __slots__ = ("block", "done", "failed_lines", "kind", "last_trans_id", "line", "pending",
                 "records", "rejects", "replay")

    def __init__(self, replay: _Replay, block: RowBlock) -> None:
        self.replay = replay
        self.block = block
        self.kind = _BLOCK
        self.line = block.last_line
        self.records = len(block)
        self.rejects = len(block.rejects)
        self.last_trans_id = int(block.trans_ids[-1]) if self.records else None
        self.pending = self.records + self.rejects
        self.done = self.pending == 0
        self.failed_lines: list[int] = []  # lines whose message failed for good

    def delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.replay.delivered += 1
            self.pending -= 1
            if not self.pending:
                self.done = True
                self.block = None  # type: ignore[assignment] - its rows are no longer needed
        else:
            trans_id = json.loads(msg.value())["trans_id"]
            retry = _BatchRetry(self, self.block.line_of(trans_id), trans_id, _RECORD)
            self.replay.delivery_failed(retry, err, msg)

    def dead_letter_delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.replay.dead_lettered += 1
            self.pending -= 1
            if not self.pending:
                self.done = True
                self.block = None  # type: ignore[assignment]
        else:
            line = json.loads(msg.value())["line"]
            self.replay.delivery_failed(_BatchRetry(self, line, None, _REJECT), err, msg)


class _BatchRetry(_Entry):
    """A message of a batch that failed once: resent on its own, reported to its batch."""

    __slots__ = ("batch",)

    def __init__(self, batch: _Batch, line: int, trans_id: int | None, kind: int) -> None:
        super().__init__(batch.replay, line, trans_id, kind)
        self.batch = batch

    def delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            if self.kind == _RECORD:
                self.batch.delivered(None, msg)
            else:
                self.batch.dead_letter_delivered(None, msg)
        else:
            self.replay.delivery_failed(self, err, msg)


class _QueueFull:
    """The error of a message that found the local queue full (retried like a failure)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def name(self) -> str:
        return "_QUEUE_FULL"

    def fatal(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"local queue full: {self.text}"


class _Unsent:
    """A message produce_batch did not queue, shaped like a delivery report's message."""

    def __init__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value


def run_replay(
    options: ReplayConfig,
    *,
    kafka: KafkaLike,
    source: SourceLike,
    positions: PositionStore,
    stop: StopRequest | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    log: LogLike | None = None,
) -> ReplayResult:
    """Replay the trans file of `source` into `options.topic`; see the module docstring.

    Raises BrokerUnavailableError / TopicNotFoundError before reading anything,
    PositionMismatchError when the stored position does not fit the file, and
    DeliveryFailedError (carrying the result, after recording the position) when any message
    stayed undelivered. A stop request ends the run gracefully and returns normally.
    """
    options.validate_options()
    replay = _Replay(options, kafka, positions, stop or StopRequest(), on_progress,
                     log or logger)
    return replay.run(source)


class _Replay:
    def __init__(
        self, options: ReplayConfig, kafka: KafkaLike, positions: PositionStore,
        stop: StopRequest, on_progress: Callable[[Progress], None] | None, log: LogLike,
    ) -> None:
        self.options = options
        self.kafka = kafka
        self.positions = positions
        self.stop = stop
        self.on_progress = on_progress
        self.log = log
        self.pacer: Pacer = options.pacer()
        self.date_from, self.date_to = options.date_range()
        # Counters updated by delivery callbacks.
        self.delivered = 0
        self.dead_lettered = 0
        self.produced = 0
        self.rejected = 0
        self.skipped = 0
        self.resent = 0
        self.failed = 0
        self.failures: list[DeliveryFailure] = []
        self.fatal_error: str | None = None
        self.stop_reason: str | None = None
        self.date_to_reached = False
        self.first_trans_id: int | None = None
        self.encoder = "none (no record sent)"
        self.inflight: deque[_Entry] = deque()
        self.to_resend: list[tuple[_Entry, str, bytes | None, bytes]] = []
        self.rate_samples: deque[tuple[float, int]] = deque()
        self.producer: Any = None
        self.position: Position | None = None
        self.position_saved: Position | None = None
        self.t0 = time.monotonic()
        self.drained = False  # every produced message acknowledged, delivered or failed

    # -- setup -------------------------------------------------------------------------------

    def _create_producer(self) -> Any:
        config = {
            **self.options.producer_overrides(),
            "error_cb": self._on_error,
            "logger": librdkafka_logger,
        }
        return self.kafka.producer(**config)

    def _on_error(self, err: Any) -> None:
        # Transport errors are retried by librdkafka; only a fatal one ends the run here.
        if err.fatal():
            self.fatal_error = str(err)
        else:
            librdkafka_logger.debug("librdkafka: %s", err)

    def check_broker(self) -> int:
        """Partitions of the topic, after checking both topics exist; bounded in time."""
        from confluent_kafka import KafkaException

        timeout = self.options.connect_timeout_s
        deadline = time.monotonic() + timeout
        attempts = 0
        last_error: object = None
        while True:
            attempts += 1
            remaining = deadline - time.monotonic()
            try:
                metadata = self.producer.list_topics(timeout=max(0.5, min(5.0, remaining)))
                if metadata.brokers:
                    break
                last_error = "no broker in the metadata"
            except KafkaException as error:
                last_error = error.args[0] if error.args else error
            if time.monotonic() >= deadline:
                raise BrokerUnavailableError(
                    f"Kafka is unreachable at {self.kafka.bootstrap_servers}: no metadata "
                    f"within {timeout:g} s ({attempts} attempt(s); last error: {last_error}). "
                    "Is the broker running (`berka-stack status`) and "
                    "BERKA_KAFKA_BOOTSTRAP_SERVERS right?"
                )
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        partitions = 0
        for topic in (self.options.topic, self.options.dlq_topic):
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                why = info.error if info is not None else "does not exist"
                raise TopicNotFoundError(
                    f"Kafka topic {topic!r} is not available on "
                    f"{self.kafka.bootstrap_servers}: {why}. Topics are not auto-created; "
                    "create it (berka_assets.stack.kafka.ensure_topics) or fix the option."
                )
            if topic == self.options.topic:
                partitions = len(info.partitions)
        return partitions

    def _records(
        self, stream: Any, uri: str, start: Position
    ) -> Iterator[tuple[int, Any]]:
        """(line, record | RejectedRow | _SKIPPED) in line order, after the start position."""
        lines = iter(stream)
        header = next(lines, b"")
        skip = start.last_line - 1
        if skip > 0:
            self._skip_lines(lines, skip, start, uri)
        rejects: list[RejectedRow] = []
        reader = TableReader(itertools.chain([header], lines), "trans", strict=False,
                             on_reject=rejects.append, name=uri)
        date_from, date_to = self.date_from, self.date_to
        if date_from is None and date_to is None:
            for record in reader:
                if rejects:
                    yield from self._take(rejects, skip)
                yield reader.line_number + skip, record
        else:
            for record in reader:
                if rejects:
                    yield from self._take(rejects, skip)
                date = record["date"]
                if date_to is not None and date > date_to:
                    self.date_to_reached = True
                    return
                if date_from is not None and date < date_from:
                    yield reader.line_number + skip, _SKIPPED
                    continue
                yield reader.line_number + skip, record
        yield from self._take(rejects, skip)

    @staticmethod
    def _take(rejects: list[RejectedRow], skip: int) -> Iterator[tuple[int, RejectedRow]]:
        rows = [shift_row(row, skip) for row in rejects]
        rejects.clear()
        return ((row.line, row) for row in rows)

    @staticmethod
    def _skip_lines(lines: Iterator[bytes], skip: int, start: Position, uri: str) -> None:
        # Raw lines, not parsed: resuming near the end of a 1M-row file costs a fraction of a
        # second. The stored last_trans_id must be among them, or the file has changed.
        prefix = f"{start.last_trans_id};".encode() if start.last_trans_id else None
        found = prefix is None
        for count in range(skip):
            raw = next(lines, None)
            if raw is None:
                raise PositionMismatchError(
                    f"the stored position of {uri} on {start.topic} is line "
                    f"{start.last_line:,} but the file has only {count + 1:,} lines: it changed "
                    "since. Replay it with start=beginning (--start beginning)."
                )
            if not found and raw.startswith(prefix):  # type: ignore[arg-type]
                found = True
        if not found:
            raise PositionMismatchError(
                f"the stored position of {uri} on {start.topic} (line {start.last_line:,}, "
                f"trans_id {start.last_trans_id}) does not match the file: that trans_id is "
                "not among its first lines. Replay it with start=beginning (--start beginning)."
            )

    # -- the run -----------------------------------------------------------------------------

    def run(self, source: SourceLike) -> ReplayResult:
        options = self.options
        self.producer = self._create_producer()
        try:
            partitions = self.check_broker()
            with source.open("trans") as (stream, uri):
                stored = self.positions.load(uri, options.topic)
                if options.start == "beginning" or stored is None:
                    start = Position(uri, options.topic)
                    self.positions.save(start)
                else:
                    start = stored
                self.position = self.position_saved = start
                self.log.info(
                    f"replaying {uri} to {options.topic} ({partitions} partitions) from line "
                    f"{start.last_line + 1:,} ({'resumed' if start is stored else 'beginning'}),"
                    f" pacing {self._describe_pacing()}"
                )
                self.t0 = time.monotonic()
                self._next_tick = self._next_progress = self.t0
                self._next_log = self.t0 + options.log_interval_s
                self._next_save = self.t0 + POSITION_EVERY_S
                if not self.pacer.paced and hasattr(stream, "read"):
                    with _cyclic_gc_paused(True):
                        self._send_blocks(self._blocks(stream, uri, start))
                else:
                    schedule = self.pacer.schedule(
                        self._records(stream, uri, start),
                        lambda item: item[1]["date"] if type(item[1]) is dict else None,
                    )
                    try:
                        with _cyclic_gc_paused(not self.pacer.paced):
                            self._send_all(schedule)
                    finally:
                        close = getattr(schedule, "close", None)
                        if close is not None:
                            close()
            self._drain()
        except BaseException:
            # Interrupted hard (second signal) or broken: keep what is known to be delivered.
            if self.position is not None:
                with contextlib.suppress(Exception):
                    self._advance()
                    self.positions.save(self.position)
            if self.producer is not None:
                with contextlib.suppress(Exception):
                    self.producer.purge()
            raise
        finally:
            # The producer holds our error callback: drop it now, not at some GC pass, so
            # librdkafka's threads end with the run.
            self.producer = None
        return self._finish(uri, start)

    def _describe_pacing(self) -> str:
        pacer = self.pacer
        if pacer.mode == "rate":
            return f"rate {pacer.rate:g} msg/s ({pacer.jitter} jitter)"
        if pacer.mode == "historical":
            return f"historical x{pacer.speedup:g} (a day in {pacer.day_seconds:g} s)"
        return "full speed"

    def _send_all(self, schedule: Iterator[tuple[float, tuple[int, Any]]]) -> None:
        options = self.options
        limit = options.max_messages if options.max_messages is not None else -1
        if limit == 0:
            self.stop_reason = "max_messages"
            return
        producer = self.producer
        produce = producer.produce
        poll = producer.poll
        topic = options.topic
        inflight_append = self.inflight.append
        keys: dict[int, bytes] = {}
        make_key = trans_message.key
        time_ns = time.time_ns
        monotonic = time.monotonic
        paced = self.pacer.paced
        t0 = self.t0
        now = t0
        encode = None
        produced = 0
        items = 0
        for due, (line, payload) in schedule:
            if paced:
                target = t0 + due
                if target - now > GRANULARITY_S:
                    now = monotonic()
                    if target - now > GRANULARITY_S and self._wait_until(target):
                        break
            if type(payload) is dict:
                if encode is None:
                    encode, name = choose_encoder(payload)
                    self.encoder = name
                    self.first_trans_id = payload["trans_id"]
                account_id = payload["account_id"]
                key = keys.get(account_id)
                if key is None:
                    key = keys[account_id] = make_key(account_id)
                entry = _Entry(self, line, payload["trans_id"], _RECORD)
                value = encode(payload, time_ns() // 1_000_000)
                try:
                    produce(topic, value, key, on_delivery=entry.delivered)
                except BufferError:
                    if not self._produce_when_room(topic, value, key, entry):
                        break
                except Exception as error:  # noqa: BLE001 - KafkaException: fatal, stop
                    self.fatal_error = f"produce failed: {error}"
                    break
                inflight_append(entry)
                produced += 1
                if produced == limit:
                    self.produced = produced
                    self.stop_reason = "max_messages"
                    break
            elif payload is _SKIPPED:
                self.skipped += 1
                if self.inflight:
                    inflight_append(_Entry(self, line, None, _SKIP))
                else:
                    self.position = self.position.advanced(last_line=line)  # type: ignore[union-attr]
            else:
                if not self._dead_letter(line, payload):
                    break
            items += 1
            if not items % TICK_EVERY:
                self.produced = produced
                poll(0)
                if self._tick():
                    break
        self.produced = produced
        if self.stop_reason is None:
            self._tick()
        if self.stop_reason is None:
            self.stop_reason = "date_to" if self.date_to_reached else "end of source"

    def _blocks(self, stream: Any, uri: str, start: Position) -> Iterator[RowBlock]:
        """Blocks of lines after the start position, limited to the date range."""
        header = stream.readline()
        # The header is checked (and an empty file reported) exactly as the per-row path does.
        for _ in TableReader([header], "trans", strict=False, name=uri):
            pass
        skip = start.last_line - 1
        if skip > 0:
            self._skip_lines(iter(stream.readline, b""), skip, start, uri)
        reader = BlockReader(stream, header, max(start.last_line, 1) + 1, uri)
        for block in reader:
            self.encoder = reader.encoder_name
            block, self.date_to_reached = block.within(self.date_from, self.date_to)
            yield from block.split(BLOCK_MESSAGES)
            if self.date_to_reached:
                return

    def _send_blocks(self, blocks: Iterator[RowBlock]) -> None:
        """Full speed: each block's messages in one produce_batch call (librdkafka queues them
        without a Python call per message), its dead letters one by one."""
        options = self.options
        limit = options.max_messages if options.max_messages is not None else -1
        producer = self.producer
        topic = options.topic
        room = int(options.producer_overrides()["queue.buffering.max.messages"])
        produced = 0
        for block in blocks:
            if produced == limit:
                self.stop_reason = "max_messages"
                break
            if limit >= 0 and produced + len(block) >= limit:
                block = block.head(limit - produced)
            self.skipped += block.skipped
            if self.first_trans_id is None and len(block):
                self.first_trans_id = int(block.trans_ids[0])
            while len(producer) + len(block) > room:
                producer.poll(0.05)
                if self._tick():
                    break
            if self.stop_reason is not None:
                break
            batch = _Batch(self, block)
            self.inflight.append(batch)
            if len(block):
                suffix = f"{time.time_ns() // 1_000_000:d}}}".encode()
                if isinstance(block.bodies, list):
                    values = [body + suffix for body in block.bodies]
                else:
                    values = finish_bodies(block.bodies, suffix)
                messages = [{"value": value, "key": key}
                            for value, key in zip(values, block.keys, strict=True)]
                try:
                    queued = producer.produce_batch(topic, messages,
                                                    on_delivery=batch.delivered)
                except Exception as error:  # noqa: BLE001 - KafkaException: fatal, stop
                    self.fatal_error = f"produce failed: {error}"
                    break
                if queued < len(messages):
                    self._unqueued(batch, topic, messages)
                produced += len(messages)
            for row in block.rejects:
                self._dead_letter_of(batch, row)
            self.produced = produced
            producer.poll(0)
            if self._tick():
                break
        self.produced = produced
        if self.stop_reason is None and produced == limit:
            self.stop_reason = "max_messages"
        if self.stop_reason is None:
            self._tick()
        if self.stop_reason is None:
            self.stop_reason = "date_to" if self.date_to_reached else "end of source"

    def _unqueued(self, batch: _Batch, topic: str, messages: list[dict[str, Any]]) -> None:
        """Messages produce_batch could not queue (it marks them with '_error'): through the
        same retry path as a failed delivery."""
        for message in messages:
            error = message.get("_error")
            if error is not None:
                unsent = _Unsent(topic, message["key"], message["value"])
                trans_id = json.loads(message["value"])["trans_id"]
                retry = _BatchRetry(batch, batch.block.line_of(trans_id), trans_id, _RECORD)
                self.delivery_failed(retry, error, unsent)

    def _dead_letter_of(self, batch: _Batch, row: RejectedRow) -> None:
        self.rejected += 1
        self.log.warning(f"malformed row sent to {self.options.dlq_topic}: {row.reason}")
        value = dlq_message(row)
        try:
            self.producer.produce(self.options.dlq_topic, value,
                                  on_delivery=batch.dead_letter_delivered)
        except BufferError as error:
            retry = _BatchRetry(batch, row.line, None, _REJECT)
            self.delivery_failed(retry, _QueueFull(str(error)),
                                 _Unsent(self.options.dlq_topic, None, value))

    def _dead_letter(self, line: int, row: RejectedRow) -> bool:
        self.rejected += 1
        self.log.warning(f"malformed row sent to {self.options.dlq_topic}: {row.reason}")
        entry = _Entry(self, line, None, _REJECT)
        value = dlq_message(row)
        try:
            self.producer.produce(self.options.dlq_topic, value, on_delivery=entry.delivered)
        except BufferError:
            if not self._produce_when_room(self.options.dlq_topic, value, None, entry):
                return False
        self.inflight.append(entry)
        return True

    def _produce_when_room(
        self, topic: str, value: bytes, key: bytes | None, entry: _Entry
    ) -> bool:
        """Produce into a full local queue: serve reports until there is room, or a stop."""
        while True:
            self.producer.poll(0.05)
            if self._tick():
                return False
            try:
                self.producer.produce(topic, value, key, on_delivery=entry.delivered)
                return True
            except BufferError:
                continue

    def _wait_until(self, target: float) -> bool:
        """Serve delivery reports until `target` (monotonic); True if the run must stop."""
        poll = self.producer.poll
        monotonic = time.monotonic
        while True:
            now = monotonic()
            remaining = target - now
            if remaining <= 0:
                return False
            if now >= self._next_tick and self._tick():
                return True
            if remaining >= 0.002:
                # poll returns early on events; wake 1 ms early and finish with sleep().
                poll(min(remaining - 0.001, TICK_WHILE_WAITING_S))
            else:
                time.sleep(remaining)

    # -- housekeeping ------------------------------------------------------------------------

    def _tick(self) -> bool:
        """Resends, position, progress, stop conditions; True if the run must stop."""
        now = time.monotonic()
        self._next_tick = now + TICK_WHILE_WAITING_S
        if self.to_resend:
            self._resend()
        self._advance()
        if self.stop_reason is None:
            if self.stop.is_set():
                self.stop_reason = self.stop.reason or "stop requested"
                self.log.info(f"stopping ({self.stop_reason}): flushing and recording the "
                              "position")
            elif self.failed:
                self.stop_reason = "delivery failures"
            elif self.fatal_error:
                self.stop_reason = "fatal producer error"
            elif (self.options.max_seconds is not None
                  and now - self.t0 >= self.options.max_seconds):
                self.stop_reason = "max_seconds"
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_EVERY_S
            self._report(now)
        if now >= self._next_save:
            self._next_save = now + POSITION_EVERY_S
            self._save_position(final=False)
        return self.stop_reason is not None

    def _advance(self) -> None:
        """Move the position over the done prefix of `inflight`."""
        inflight = self.inflight
        if not inflight or not inflight[0].done:
            return
        position = self.position
        assert position is not None
        line, trans_id, sent, rejected = (position.last_line, position.last_trans_id,
                                          position.sent, position.rejected)
        while inflight and inflight[0].done:
            entry = inflight.popleft()
            line = entry.line
            if entry.kind == _BLOCK:
                if entry.records:
                    trans_id = entry.last_trans_id
                sent += entry.records
                rejected += entry.rejects
            elif entry.kind == _RECORD:
                trans_id = entry.trans_id
                sent += 1
            elif entry.kind == _REJECT:
                rejected += 1
        self.position = position.advanced(last_line=line, last_trans_id=trans_id, sent=sent,
                                          rejected=rejected)

    def _save_position(self, *, final: bool) -> None:
        position = self.position
        if position is None or position == self.position_saved:
            return
        try:
            self.positions.save(position)
            self.position_saved = position
        except Exception as error:
            if final:
                raise
            # MySQL hiccup: the next save (a second later, and at the end) catches up.
            self.log.warning(f"could not record the position yet: {error}")

    def delivery_failed(self, entry: _Entry, err: Any, msg: Any) -> None:
        """Delivery-report callback of a failed message: resend it, or give up on it."""
        code = err.name() if hasattr(err, "name") else str(err)
        retry = entry.attempts <= self.options.retries and not (
            err.fatal() or code in _PERMANENT_ERRORS
        )
        if retry:
            self.to_resend.append((entry, msg.topic(), msg.key(), msg.value()))
            return
        self.failed += 1
        if isinstance(entry, _BatchRetry):
            entry.batch.failed_lines.append(entry.line)
        if len(self.failures) < REPORTED_FAILURES:
            self.failures.append(DeliveryFailure(
                entry.line, entry.trans_id, msg.topic(), str(err), entry.attempts))

    def _resend(self) -> None:
        pending, self.to_resend = self.to_resend, []
        for entry, topic, key, value in pending:
            entry.attempts += 1
            self.resent += 1
            self.log.warning(f"resending line {entry.line:,} to {topic} (attempt "
                             f"{entry.attempts}/{self.options.retries + 1})")
            try:
                self.producer.produce(topic, value, key, on_delivery=entry.delivered)
            except BufferError:
                self.to_resend.append((entry, topic, key, value))
                entry.attempts -= 1
                self.resent -= 1
            except Exception as error:  # noqa: BLE001 - fatal: counted, reported
                self.failed += 1
                self.fatal_error = self.fatal_error or f"produce failed: {error}"

    def _progress(self, now: float, final: bool = False) -> Progress:
        elapsed = now - self.t0
        samples = self.rate_samples
        samples.append((now, self.delivered))
        while len(samples) > 2 and now - samples[0][0] > 5.0:
            samples.popleft()
        then, delivered_then = samples[0]
        if final or now - then < 0.2:
            rate = self.delivered / elapsed if elapsed > 0 else 0.0
        else:
            rate = (self.delivered - delivered_then) / (now - then)
        eta: float | None = None
        if not final:
            if self.options.max_messages is not None and rate > 0:
                eta = max(0, self.options.max_messages - self.delivered) / rate
            if self.options.max_seconds is not None:
                left = max(0.0, self.options.max_seconds - elapsed)
                eta = left if eta is None else min(eta, left)
        assert self.position is not None
        return Progress(self.produced, self.delivered, self.failed, self.rejected, elapsed,
                        rate, eta, self.position.last_line, final)

    def _report(self, now: float, final: bool = False) -> None:
        progress = self._progress(now, final)
        if self.on_progress is not None:
            self.on_progress(progress)
        if final or now >= self._next_log:
            self._next_log = now + self.options.log_interval_s
            if not final:
                self.log.info(progress.text())

    # -- the end -----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Flush everything produced, resending failures; bounded by the delivery timeouts."""
        rounds = self.options.retries + 1  # each resend gets a full delivery timeout
        deadline = time.monotonic() + rounds * self.options.delivery_timeout_s + DRAIN_MARGIN_S
        while True:
            if self.to_resend:
                self._resend()
            left = self.producer.flush(0.2)
            self._advance()
            now = time.monotonic()
            if now >= self._next_progress:
                self._next_progress = now + PROGRESS_EVERY_S
                self._report(now)
            if now >= self._next_save:
                self._next_save = now + POSITION_EVERY_S
                self._save_position(final=False)
            if left == 0 and not self.to_resend:
                self.drained = True
                return
            if now >= deadline:
                self.failed += left
                self.fatal_error = self.fatal_error or (
                    f"{left:,} message(s) still undelivered {self.options.delivery_timeout_s:g}"
                    " s after the end of the run")
                self.producer.purge()
                self.producer.flush(1.0)
                return

    def _advance_into_failed_batch(self) -> None:
        """After a complete drain every message of the first unfinished block is either
        delivered or failed for good: move the position to just before its first failed line
        (block by block alone, a resume would resend the block's delivered rows)."""
        if not self.drained or not self.inflight:
            return
        batch = self.inflight[0]
        if batch.kind != _BLOCK or not batch.failed_lines or batch.block is None:
            return
        first_failed = min(batch.failed_lines)
        block = batch.block
        records = int(np.searchsorted(block.lines, first_failed))
        rejects = sum(1 for row in block.rejects if row.line < first_failed)
        position = self.position
        assert position is not None
        self.position = position.advanced(
            last_line=first_failed - 1,
            last_trans_id=int(block.trans_ids[records - 1]) if records else position.last_trans_id,
            sent=position.sent + records, rejected=position.rejected + rejects,
        )

    def _finish(self, uri: str, start: Position) -> ReplayResult:
        self._advance()
        self._advance_into_failed_batch()
        elapsed = time.monotonic() - self.t0
        self._report(self.t0 + elapsed, final=True)
        self._save_position(final=True)
        position = self.position
        assert position is not None
        offsets: list[PartitionOffsets] = []
        try:
            offsets = self.kafka.partition_offsets(self.options.topic)
        except Exception as error:  # noqa: BLE001 - reporting only
            self.log.warning(f"could not read the end offsets of {self.options.topic}: {error}")
        result = ReplayResult(
            source_uri=uri, topic=self.options.topic, dlq_topic=self.options.dlq_topic,
            start_line=start.last_line, position=position, produced=self.produced,
            delivered=self.delivered, failed=self.failed, rejected=self.rejected,
            dead_lettered=self.dead_lettered, skipped=self.skipped, resent=self.resent,
            first_trans_id=self.first_trans_id,
            last_trans_id=position.last_trans_id if position.last_line > start.last_line
            else None,
            elapsed_s=elapsed, stop_reason=self.stop_reason or "end of source",
            encoder=self.encoder, failures=list(self.failures), fatal_error=self.fatal_error,
            offsets=offsets,
        )
        if not result.ok:
            self.log.error(result.summary())
            raise DeliveryFailedError(result)
        self.log.info(result.summary())
        return result

