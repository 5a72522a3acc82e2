"""The replay: trans rows from a stream, paced, to Kafka, with delivery tracking and resume.

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

The work is split by job; this module runs them in order and is where callers import from:

    reading.py     the rows after the start position, per row or in blocks
    senders.py     the paced per-row loop and the full-speed produce_batch loop, one tail
    delivery.py    entries in flight, delivery callbacks, failures and resends, the position
    session.py     housekeeping between messages, the final flush, the result
    broker.py      the broker and topics checked before reading
    results.py     ReplayResult, Progress, DeliveryFailure and the errors
    stopping.py    StopRequest and stop_on_signals
    interfaces.py  what the replay needs of Kafka, the source and a log
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from berka_core.producer.broker import check_broker
from berka_core.producer.delivery import DeliveryFailure, librdkafka_logger
from berka_core.producer.interfaces import KafkaLike, LogLike, SourceLike
from berka_core.producer.options import ReplayOptions
from berka_core.producer.pacing import Pacer
from berka_core.producer.position import Position, PositionStore
from berka_core.producer.results import (
    BrokerUnavailableError,
    DeliveryFailedError,
    PositionMismatchError,
    Progress,
    ReplayError,
    ReplayResult,
    TopicNotFoundError,
)
from berka_core.producer.senders import cyclic_gc_paused, send_blocks, send_rows
from berka_core.producer.session import ReplaySession
from berka_core.producer.stopping import StopRequest, stop_on_signals

__all__ = [
    "BrokerUnavailableError",
    "DeliveryFailedError",
    "DeliveryFailure",
    "KafkaLike",
    "LogLike",
    "PositionMismatchError",
    "Progress",
    "ReplayError",
    "ReplayResult",
    "SourceLike",
    "StopRequest",
    "TopicNotFoundError",
    "run_replay",
    "stop_on_signals",
]

logger = logging.getLogger("berka_core.producer")


def run_replay(
    options: ReplayOptions,
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
    """One run from start to result: connect, open the source, pick a sender, flush, report."""

    def __init__(
        self, options: ReplayOptions, kafka: KafkaLike, positions: PositionStore,
        stop: StopRequest, on_progress: Callable[[Progress], None] | None, log: LogLike,
    ) -> None:
        self.options = options
        self.kafka = kafka
        self.log = log
        self.pacer: Pacer = options.pacer()
        self.session = ReplaySession(options, positions, stop, on_progress, log)

    def _create_producer(self) -> Any:
        config = {
            **self.options.producer_overrides(),
            "error_cb": self.session.tracker.on_error,
            "logger": librdkafka_logger,
        }
        return self.kafka.producer(**config)

    def run(self, source: SourceLike) -> ReplayResult:
        session = self.session
        tracker = session.tracker
        session.producer = self._create_producer()
        try:
            partitions = check_broker(session.producer, self.kafka, self.options)
            with source.open("trans") as (stream, uri):
                start = self._start_position(uri, partitions)
                session.start_clocks()
                self._send(stream, uri, start)
            session.drain()
        except BaseException:
            # Interrupted hard (second signal) or broken: keep what is known to be delivered.
            if tracker.position is not None:
                with contextlib.suppress(Exception):
                    tracker.advance()
                    session.positions.save(tracker.position)
            if session.producer is not None:
                with contextlib.suppress(Exception):
                    session.producer.purge()
            raise
        finally:
            # The producer holds our error callback: drop it now, not at some GC pass, so
            # librdkafka's threads end with the run.
            session.producer = None
        return session.finish(uri, start, self.kafka)

    def _start_position(self, uri: str, partitions: int) -> Position:
        """The stored position to resume from, or the beginning (recorded at once)."""
        options, session = self.options, self.session
        stored = session.positions.load(uri, options.topic)
        if options.start == "beginning" or stored is None:
            start = Position(uri, options.topic)
            session.positions.save(start)
        else:
            start = stored
        session.tracker.position = session.position_saved = start
        self.log.info(
            f"replaying {uri} to {options.topic} ({partitions} partitions) from line "
            f"{start.last_line + 1:,} ({'resumed' if start is stored else 'beginning'}),"
            f" pacing {self._describe_pacing()}"
        )
        return start

    def _send(self, stream: Any, uri: str, start: Position) -> None:
        """Full speed from a readable stream goes block by block; anything else row by row."""
        session, pacer, rows = self.session, self.pacer, self.session.rows
        if not pacer.paced and hasattr(stream, "read"):
            with cyclic_gc_paused(True):
                send_blocks(session, rows.blocks(stream, uri, start))
            return
        schedule = pacer.schedule(
            rows.records(stream, uri, start),
            lambda item: item[1]["date"] if type(item[1]) is dict else None,
        )
        try:
            with cyclic_gc_paused(not pacer.paced):
                send_rows(session, schedule, pacer.paced)
        finally:
            close = getattr(schedule, "close", None)
            if close is not None:
                close()

    def _describe_pacing(self) -> str:
        pacer = self.pacer
        if pacer.mode == "rate":
            return f"rate {pacer.rate:g} msg/s ({pacer.jitter} jitter)"
        if pacer.mode == "historical":
            return f"historical x{pacer.speedup:g} (a day in {pacer.day_seconds:g} s)"
        return "full speed"
