"""One replay run's state and housekeeping, shared by both senders.

Housekeeping runs between messages (every TICK_EVERY at full speed, about every 0.1 s while a
paced loop waits): resends, the position, progress, the stop conditions. The end is the same
for both senders too: the final flush with resends, the last position, the result.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from berka_core.clients.kafka import PartitionOffsets
from berka_core.producer.delivery import DeliveryTracker
from berka_core.producer.interfaces import KafkaLike, LogLike
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import Position, PositionStore
from berka_core.producer.reading import SourceRows
from berka_core.producer.results import (
    DeliveryFailedError,
    Progress,
    ReplayResult,
)
from berka_core.producer.stopping import StopRequest

TICK_WHILE_WAITING_S = 0.1
PROGRESS_EVERY_S = 0.5
POSITION_EVERY_S = 1.0
DRAIN_MARGIN_S = 10.0  # on top of the delivery timeouts for the final flush


class ReplaySession:
    """The run beside its deliveries (those are `tracker`'s): counters, the stop reason,
    clocks; and what is done between messages and at the end."""

    def __init__(
        self, options: ReplayOptions, positions: PositionStore, stop: StopRequest,
        on_progress: Callable[[Progress], None] | None, log: LogLike,
    ) -> None:
        self.options = options
        self.positions = positions
        self.stop = stop
        self.on_progress = on_progress
        self.log = log
        self.tracker = DeliveryTracker(options.retries)
        self.rows = SourceRows(*options.date_range())
        self.producer: Any = None
        self.produced = 0
        self.rejected = 0
        self.skipped = 0
        self.first_trans_id: int | None = None
        self.stop_reason: str | None = None
        self.rate_samples: deque[tuple[float, int]] = deque()
        self.position_saved: Position | None = None
        self.drained = False  # every produced message acknowledged, delivered or failed
        self.start_clocks()

    def start_clocks(self) -> None:
        """The run's time starts now (after connecting and opening the source)."""
        self.t0 = time.monotonic()
        self._next_tick = self._next_progress = self.t0
        self._next_log = self.t0 + self.options.log_interval_s
        self._next_save = self.t0 + POSITION_EVERY_S

    # -- between messages ----------------------------------------------------------------------

    def tick(self) -> bool:
        """Resends, position, progress, stop conditions; True if the run must stop."""
        now = time.monotonic()
        self._next_tick = now + TICK_WHILE_WAITING_S
        tracker = self.tracker
        if tracker.to_resend:
            tracker.resend(self.producer, self.log)
        tracker.advance()
        if self.stop_reason is None:
            if self.stop.is_set():
                self.stop_reason = self.stop.reason or "stop requested"
                self.log.info(f"stopping ({self.stop_reason}): flushing and recording the "
                              "position")
            elif tracker.failed:
                self.stop_reason = "delivery failures"
            elif tracker.fatal_error:
                self.stop_reason = "fatal producer error"
            elif (self.options.max_seconds is not None
                  and now - self.t0 >= self.options.max_seconds):
                self.stop_reason = "max_seconds"
        self._report_and_save(now)
        return self.stop_reason is not None

    def wait_until(self, target: float) -> bool:
        """Serve delivery reports until `target` (monotonic); True if the run must stop."""
        poll = self.producer.poll
        monotonic = time.monotonic
        while True:
            now = monotonic()
            remaining = target - now
            if remaining <= 0:
                return False
            if now >= self._next_tick and self.tick():
                return True
            if remaining >= 0.002:
                # poll returns early on events; wake 1 ms early and finish with sleep().
                poll(min(remaining - 0.001, TICK_WHILE_WAITING_S))
            else:
                time.sleep(remaining)

    def _report_and_save(self, now: float) -> None:
        # Each on its own period: progress often, the position (a MySQL write) less so.
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_EVERY_S
            self._report(now)
        if now >= self._next_save:
            self._next_save = now + POSITION_EVERY_S
            self.save_position(final=False)

    def save_position(self, *, final: bool) -> None:
        position = self.tracker.position
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

    def _progress(self, now: float, final: bool = False) -> Progress:
        elapsed = now - self.t0
        delivered = self.tracker.delivered
        samples = self.rate_samples
        samples.append((now, delivered))
        while len(samples) > 2 and now - samples[0][0] > 5.0:
            samples.popleft()
        then, delivered_then = samples[0]
        if final or now - then < 0.2:
            rate = delivered / elapsed if elapsed > 0 else 0.0
        else:
            rate = (delivered - delivered_then) / (now - then)
        eta: float | None = None
        if not final:
            if self.options.max_messages is not None and rate > 0:
                eta = max(0, self.options.max_messages - delivered) / rate
            if self.options.max_seconds is not None:
                left = max(0.0, self.options.max_seconds - elapsed)
                eta = left if eta is None else min(eta, left)
        position = self.tracker.position
        assert position is not None
        return Progress(self.produced, delivered, self.tracker.failed, self.rejected, elapsed,
                        rate, eta, position.last_line, final)

    def _report(self, now: float, final: bool = False) -> None:
        progress = self._progress(now, final)
        if self.on_progress is not None:
            self.on_progress(progress)
        if final or now >= self._next_log:
            self._next_log = now + self.options.log_interval_s
            if not final:
                self.log.info(progress.text())

    # -- the end -------------------------------------------------------------------------------

    def drain(self) -> None:
        """Flush everything produced, resending failures; bounded by the delivery timeouts."""
        options, tracker, producer = self.options, self.tracker, self.producer
        rounds = options.retries + 1  # each resend gets a full delivery timeout
        deadline = time.monotonic() + rounds * options.delivery_timeout_s + DRAIN_MARGIN_S
        while True:
            if tracker.to_resend:
                tracker.resend(producer, self.log)
            left = producer.flush(0.2)
            tracker.advance()
            now = time.monotonic()
            self._report_and_save(now)
            if left == 0 and not tracker.to_resend:
                self.drained = True
                return
            if now >= deadline:
                tracker.failed += left
                tracker.fatal_error = tracker.fatal_error or (
                    f"{left:,} message(s) still undelivered {options.delivery_timeout_s:g}"
                    " s after the end of the run")
                producer.purge()
                producer.flush(1.0)
                return

    def finish(self, uri: str, start: Position, kafka: KafkaLike) -> ReplayResult:
        """The last position recorded and the result; raises DeliveryFailedError (carrying
        the result) when anything stayed undelivered."""
        tracker = self.tracker
        tracker.advance()
        if self.drained:
            tracker.advance_into_failed_batch()
        elapsed = time.monotonic() - self.t0
        self._report(self.t0 + elapsed, final=True)
        self.save_position(final=True)
        position = tracker.position
        assert position is not None
        offsets: list[PartitionOffsets] = []
        try:
            offsets = kafka.partition_offsets(self.options.topic)
        except Exception as error:  # noqa: BLE001 - reporting only
            self.log.warning(f"could not read the end offsets of {self.options.topic}: {error}")
        result = ReplayResult(
            source_uri=uri, topic=self.options.topic, dlq_topic=self.options.dlq_topic,
            start_line=start.last_line, position=position, produced=self.produced,
            delivered=tracker.delivered, failed=tracker.failed, rejected=self.rejected,
            dead_lettered=tracker.dead_lettered, skipped=self.skipped, resent=tracker.resent,
            first_trans_id=self.first_trans_id,
            last_trans_id=position.last_trans_id if position.last_line > start.last_line
            else None,
            elapsed_s=elapsed, stop_reason=self.stop_reason or "end of source",
            encoder=self.rows.encoder, failures=list(tracker.failures),
            fatal_error=tracker.fatal_error, offsets=offsets,
        )
        if not result.ok:
            self.log.error(result.summary())
            raise DeliveryFailedError(result)
        self.log.info(result.summary())
        return result
