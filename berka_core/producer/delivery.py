"""Delivery tracking: what is in flight, what came back, what is resent, where the position is.

Every message gets a small entry whose bound method is its delivery callback, so a report finds
its line whatever order reports arrive in (they may interleave across partitions, and after a
timeout even within one). Entries wait in line order in `inflight`; the position is the line
of the last entry of the done prefix, so a resume has no gap and, after a clean stop, no
repeat. A message that failed after librdkafka's own retries is queued for a resend up to
`retries` times; one that still fails is counted and reported with its error.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from enum import IntEnum
from typing import Any

import numpy as np

from berka_core.producer.blocks import RowBlock
from berka_core.producer.interfaces import LogLike
from berka_core.producer.position import Position
from berka_core.producer.results import DeliveryFailure

librdkafka_logger = logging.getLogger("berka_core.producer.librdkafka")

REPORTED_FAILURES = 10  # failures kept with their details; all are counted

# Errors that a resend cannot fix.
_PERMANENT_ERRORS = {
    "MSG_SIZE_TOO_LARGE", "INVALID_MSG", "INVALID_RECORD", "CORRUPT_MESSAGE",
    "TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "INVALID_REQUIRED_ACKS",
    "RECORD_LIST_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "_INVALID_ARG",
}


class EntryKind(IntEnum):
    """What an entry of `inflight` stands for, hence how it moves the position."""

    RECORD = 0  # one trans message
    REJECT = 1  # one dead letter (a malformed row)
    SKIP = 2  # a row left out by the date range: a line, no message
    BLOCK = 3  # the messages of one RowBlock (full speed)


# Module globals: the callbacks compare kinds once per message, without an enum class lookup.
_RECORD, _REJECT, _SKIP, _BLOCK = (EntryKind.RECORD, EntryKind.REJECT, EntryKind.SKIP,
                                   EntryKind.BLOCK)


class Entry:
    """One message (or one row with no message) in line order; its method is the callback."""

    __slots__ = ("attempts", "done", "kind", "line", "tracker", "trans_id")

    def __init__(self, tracker: DeliveryTracker, line: int, trans_id: int | None,
                 kind: EntryKind) -> None:
        self.tracker = tracker
        self.line = line
        self.trans_id = trans_id
        self.kind = kind
        self.done = kind == _SKIP
        self.attempts = 1

    def delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.done = True
            if self.kind == _RECORD:
                self.tracker.delivered += 1
            else:
                self.tracker.dead_lettered += 1
        else:
            self.tracker.delivery_failed(self, err, msg)


class Batch:
    """The messages of one RowBlock in flight; done when every report came back positive.
    Positions move block by block: `line` is the block's last line."""

    __slots__ = ("block", "done", "failed_lines", "kind", "last_trans_id", "line", "pending",
                 "records", "rejects", "tracker")

    def __init__(self, tracker: DeliveryTracker, block: RowBlock) -> None:
        self.tracker = tracker
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
            self.tracker.delivered += 1
            self.pending -= 1
            if not self.pending:
                self.done = True
                self.block = None  # type: ignore[assignment] - its rows are no longer needed
        else:
            trans_id = json.loads(msg.value())["trans_id"]
            retry = BatchRetry(self, self.block.line_of(trans_id), trans_id, _RECORD)
            self.tracker.delivery_failed(retry, err, msg)

    def dead_letter_delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.tracker.dead_lettered += 1
            self.pending -= 1
            if not self.pending:
                self.done = True
                self.block = None  # type: ignore[assignment]
        else:
            line = json.loads(msg.value())["line"]
            self.tracker.delivery_failed(BatchRetry(self, line, None, _REJECT), err, msg)


class BatchRetry(Entry):
    """A message of a batch that failed once: resent on its own, reported to its batch."""

    __slots__ = ("batch",)

    def __init__(self, batch: Batch, line: int, trans_id: int | None, kind: EntryKind) -> None:
        super().__init__(batch.tracker, line, trans_id, kind)
        self.batch = batch

    def delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            if self.kind == _RECORD:
                self.batch.delivered(None, msg)
            else:
                self.batch.dead_letter_delivered(None, msg)
        else:
            self.tracker.delivery_failed(self, err, msg)


class QueueFull:
    """The error of a message that found the local queue full (retried like a failure)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def name(self) -> str:
        return "_QUEUE_FULL"

    def fatal(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"local queue full: {self.text}"


class Unsent:
    """A message produce_batch did not queue, shaped like a delivery report's message."""

    def __init__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value


class DeliveryTracker:
    """The entries in flight in line order, the outcome of their delivery reports (counts,
    failures, resends) and the position their done prefix reaches: the one that may be
    recorded. Written to by delivery callbacks, which run inside producer.poll/flush."""

    def __init__(self, retries: int) -> None:
        self.retries = retries
        self.delivered = 0
        self.dead_lettered = 0
        self.failed = 0
        self.resent = 0
        self.failures: list[DeliveryFailure] = []
        self.fatal_error: str | None = None
        self.inflight: deque[Any] = deque()  # Entry and Batch, in line order
        self.to_resend: list[tuple[Entry, str, bytes | None, bytes]] = []
        self.position: Position | None = None

    def on_error(self, err: Any) -> None:
        """The producer's error_cb."""
        # Transport errors are retried by librdkafka; only a fatal one ends the run here.
        if err.fatal():
            self.fatal_error = str(err)
        else:
            librdkafka_logger.debug("librdkafka: %s", err)

    def delivery_failed(self, entry: Entry, err: Any, msg: Any) -> None:
        """Delivery-report callback of a failed message: resend it, or give up on it."""
        code = err.name() if hasattr(err, "name") else str(err)
        retry = entry.attempts <= self.retries and not (
            err.fatal() or code in _PERMANENT_ERRORS
        )
        if retry:
            self.to_resend.append((entry, msg.topic(), msg.key(), msg.value()))
            return
        self.failed += 1
        if isinstance(entry, BatchRetry):
            entry.batch.failed_lines.append(entry.line)
        if len(self.failures) < REPORTED_FAILURES:
            self.failures.append(DeliveryFailure(
                entry.line, entry.trans_id, msg.topic(), str(err), entry.attempts))

    def unqueued(self, batch: Batch, topic: str, messages: list[dict[str, Any]]) -> None:
        """Messages produce_batch could not queue (it marks them with '_error'): through the
        same retry path as a failed delivery."""
        for message in messages:
            error = message.get("_error")
            if error is not None:
                unsent = Unsent(topic, message["key"], message["value"])
                trans_id = json.loads(message["value"])["trans_id"]
                retry = BatchRetry(batch, batch.block.line_of(trans_id), trans_id, _RECORD)
                self.delivery_failed(retry, error, unsent)

    def resend(self, producer: Any, log: LogLike) -> None:
        """Produce the failed messages again; one that finds the queue full waits its turn."""
        pending, self.to_resend = self.to_resend, []
        for entry, topic, key, value in pending:
            entry.attempts += 1
            self.resent += 1
            log.warning(f"resending line {entry.line:,} to {topic} (attempt "
                        f"{entry.attempts}/{self.retries + 1})")
            try:
                producer.produce(topic, value, key, on_delivery=entry.delivered)
            except BufferError:
                self.to_resend.append((entry, topic, key, value))
                entry.attempts -= 1
                self.resent -= 1
            except Exception as error:  # noqa: BLE001 - fatal: counted, reported
                self.failed += 1
                self.fatal_error = self.fatal_error or f"produce failed: {error}"

    def advance(self) -> None:
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

    def advance_into_failed_batch(self) -> None:
        """Once every message was acknowledged (a complete drain), each message of the first
        unfinished block is either delivered or failed for good: move the position to just
        before its first failed line (block by block alone, a resume would resend the block's
        delivered rows)."""
        if not self.inflight:
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
