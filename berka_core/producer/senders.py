"""The two send loops, and the tail they share when their input ends or they stop.

    send_rows    one produce() per row, paced by a schedule (and full speed on a plain stream)
    send_blocks  full speed: a produce_batch() per RowBlock, no Python call per message

Both are kept lean for full speed: no per-message poll (poll(0) every TICK_EVERY messages or
once a block), no per-message clock read unless a message is due in the future, cached keys,
everything looked up per message bound to a local first.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from berka_core.dataset.errors import RejectedRow
from berka_core.messages import trans_message
from berka_core.producer.blocks import RowBlock
from berka_core.producer.columnar import finish_bodies
from berka_core.producer.delivery import Batch, BatchRetry, Entry, EntryKind, QueueFull, Unsent
from berka_core.producer.encoding import choose_encoder, dlq_message
from berka_core.producer.reading import SKIPPED
from berka_core.producer.session import ReplaySession

GRANULARITY_S = 0.001  # a message due sooner than this is sent now: sleeps come in batches
TICK_EVERY = 1024  # messages between housekeeping (poll, stop checks) at full speed

# Module globals, not enum lookups, in the per-row loop.
_RECORD, _REJECT, _SKIP = EntryKind.RECORD, EntryKind.REJECT, EntryKind.SKIP


@contextlib.contextmanager
def cyclic_gc_paused(pause: bool) -> Iterator[None]:
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


def send_rows(
    session: ReplaySession, schedule: Iterator[tuple[float, tuple[int, Any]]], paced: bool
) -> None:
    """Produce each (due, (line, payload)) of `schedule` at its due time (seconds from t0)."""
    options = session.options
    limit = options.max_messages if options.max_messages is not None else -1
    if limit == 0:
        session.stop_reason = "max_messages"
        return
    tracker = session.tracker
    producer = session.producer
    produce = producer.produce
    poll = producer.poll
    topic = options.topic
    inflight = tracker.inflight
    inflight_append = inflight.append
    keys: dict[int, bytes] = {}
    make_key = trans_message.key
    time_ns = time.time_ns
    monotonic = time.monotonic
    t0 = session.t0
    now = t0
    encode = None
    produced = 0
    items = 0
    for due, (line, payload) in schedule:
        if paced:
            target = t0 + due
            if target - now > GRANULARITY_S:
                now = monotonic()
                if target - now > GRANULARITY_S and session.wait_until(target):
                    break
        if type(payload) is dict:
            if encode is None:
                encode, name = choose_encoder(payload)
                session.rows.encoder = name
                session.first_trans_id = payload["trans_id"]
            account_id = payload["account_id"]
            key = keys.get(account_id)
            if key is None:
                key = keys[account_id] = make_key(account_id)
            entry = Entry(tracker, line, payload["trans_id"], _RECORD)
            value = encode(payload, time_ns() // 1_000_000)
            try:
                produce(topic, value, key, on_delivery=entry.delivered)
            except BufferError:
                if not _produce_when_room(session, topic, value, key, entry):
                    break
            except Exception as error:  # noqa: BLE001 - KafkaException: fatal, stop
                tracker.fatal_error = f"produce failed: {error}"
                break
            inflight_append(entry)
            produced += 1
            if produced == limit:
                session.stop_reason = "max_messages"
                break
        elif payload is SKIPPED:
            session.skipped += 1
            if inflight:
                inflight_append(Entry(tracker, line, None, _SKIP))
            else:
                tracker.position = tracker.position.advanced(last_line=line)  # type: ignore[union-attr]
        else:
            if not _dead_letter(session, line, payload):
                break
        items += 1
        if not items % TICK_EVERY:
            session.produced = produced
            poll(0)
            if session.tick():
                break
    _end_of_input(session, produced, limit)


def send_blocks(session: ReplaySession, blocks: Iterator[RowBlock]) -> None:
    """Full speed: each block's messages in one produce_batch call (librdkafka queues them
    without a Python call per message), its dead letters one by one."""
    options = session.options
    limit = options.max_messages if options.max_messages is not None else -1
    tracker = session.tracker
    producer = session.producer
    topic = options.topic
    room = int(options.producer_overrides()["queue.buffering.max.messages"])
    produced = 0
    for block in blocks:
        if produced == limit:
            session.stop_reason = "max_messages"
            break
        if limit >= 0 and produced + len(block) >= limit:
            block = block.head(limit - produced)
        session.skipped += block.skipped
        if session.first_trans_id is None and len(block):
            session.first_trans_id = int(block.trans_ids[0])
        while len(producer) + len(block) > room:
            producer.poll(0.05)
            if session.tick():
                break
        if session.stop_reason is not None:
            break
        batch = Batch(tracker, block)
        tracker.inflight.append(batch)
        if len(block):
            suffix = f"{time.time_ns() // 1_000_000:d}}}".encode()
            if isinstance(block.bodies, list):
                values = [body + suffix for body in block.bodies]
            else:
                values = finish_bodies(block.bodies, suffix)
            messages = [{"value": value, "key": key}
                        for value, key in zip(values, block.keys, strict=True)]
            try:
                queued = producer.produce_batch(topic, messages, on_delivery=batch.delivered)
            except Exception as error:  # noqa: BLE001 - KafkaException: fatal, stop
                tracker.fatal_error = f"produce failed: {error}"
                break
            if queued < len(messages):
                tracker.unqueued(batch, topic, messages)
            produced += len(messages)
        for row in block.rejects:
            _dead_letter_of(session, batch, row)
        session.produced = produced
        producer.poll(0)
        if session.tick():
            break
    _end_of_input(session, produced, limit)


def _end_of_input(session: ReplaySession, produced: int, limit: int) -> None:
    """The shared tail of both loops: count, a last housekeeping pass, and why they ended
    (the final flush and the result follow in the caller, once the source is closed)."""
    session.produced = produced
    if session.stop_reason is None and produced == limit:
        session.stop_reason = "max_messages"
    if session.stop_reason is None:
        session.tick()
    if session.stop_reason is None:
        session.stop_reason = "date_to" if session.rows.date_to_reached else "end of source"


def _produce_when_room(
    session: ReplaySession, topic: str, value: bytes, key: bytes | None, entry: Entry
) -> bool:
    """Produce into a full local queue: serve reports until there is room, or a stop."""
    producer = session.producer
    while True:
        producer.poll(0.05)
        if session.tick():
            return False
        try:
            producer.produce(topic, value, key, on_delivery=entry.delivered)
            return True
        except BufferError:
            continue


def _count_reject(session: ReplaySession, row: RejectedRow) -> None:
    session.rejected += 1
    session.log.warning(f"malformed row sent to {session.options.dlq_topic}: {row.reason}")


def _dead_letter(session: ReplaySession, line: int, row: RejectedRow) -> bool:
    """The per-row loop's dead letter, an entry of its own; False if the run must stop."""
    _count_reject(session, row)
    dlq_topic = session.options.dlq_topic
    entry = Entry(session.tracker, line, None, _REJECT)
    value = dlq_message(row)
    try:
        session.producer.produce(dlq_topic, value, on_delivery=entry.delivered)
    except BufferError:
        if not _produce_when_room(session, dlq_topic, value, None, entry):
            return False
    session.tracker.inflight.append(entry)
    return True


def _dead_letter_of(session: ReplaySession, batch: Batch, row: RejectedRow) -> None:
    """A block's dead letter, counted in its batch; a full queue sends it the resend way."""
    _count_reject(session, row)
    dlq_topic = session.options.dlq_topic
    value = dlq_message(row)
    try:
        session.producer.produce(dlq_topic, value, on_delivery=batch.dead_letter_delivered)
    except BufferError as error:
        retry = BatchRetry(batch, row.line, None, _REJECT)
        session.tracker.delivery_failed(retry, QueueFull(str(error)),
                                        Unsent(dlq_topic, None, value))
