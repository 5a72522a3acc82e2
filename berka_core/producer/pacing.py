"""When to send each message: pure schedule generators, no clock, no Kafka.

A schedule pairs every item with its due time in seconds after the replay's start. The replay
loop compares due times with a monotonic clock read once per batch, so errors never accumulate
(no sleep-per-message drift), and at sub-millisecond intervals it sends everything already due
in one go and then sleeps once.

Modes:
    full        everything due at 0: as fast as the producer goes.
    rate        a mean rate in messages/s; inter-arrival times are exponential (a Poisson
                process), uniform within mean x (1 +- jitter_fraction), or constant ("none").
    historical  the transactions' own dates, sped up: one simulated day lasts 86400 / speedup
                seconds and day k (counted from the run's first date) starts at k x that.
                Berka dates have no time of day, so a day's events are spread over its window:
                evenly with jitter "none", else at sorted uniform random instants (a Poisson
                process conditioned on the day's count). A day is buffered to know its count;
                the largest day of the full file has a few thousand rows.

Items without a date (`date_of` returns None: rejected rows, filtered rows) are unpaced: they
are due with the item before them and use up no slot of the rate.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

PacingMode = Literal["full", "rate", "historical"]
Jitter = Literal["exponential", "uniform", "none"]
SECONDS_PER_DAY = 86_400.0


def interarrival_times(
    rate: float, jitter: Jitter = "exponential", jitter_fraction: float = 0.5,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Endless gaps between consecutive messages whose mean is 1 / rate seconds."""
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"rate must be a positive finite number of messages/s, got {rate}")
    rng = rng or random.Random()
    mean = 1.0 / rate
    if jitter == "none" or (jitter == "uniform" and jitter_fraction == 0):
        return itertools.repeat(mean)
    if jitter == "exponential":
        expovariate = rng.expovariate
        return (expovariate(rate) for _ in itertools.count())
    if jitter == "uniform":
        if not 0 <= jitter_fraction <= 1:
            raise ValueError(f"jitter_fraction must be within [0, 1], got {jitter_fraction}")
        low, high = mean * (1 - jitter_fraction), mean * (1 + jitter_fraction)
        uniform = rng.uniform
        return (uniform(low, high) for _ in itertools.count())
    raise ValueError(f"unknown jitter {jitter!r}: expected exponential, uniform or none")


def day_offsets(
    count: int, day_seconds: float, jitter: Jitter = "exponential",
    rng: random.Random | None = None,
) -> list[float]:
    """Sorted instants within [0, day_seconds) for `count` events of one day."""
    if jitter == "none":
        return [(index + 0.5) * day_seconds / count for index in range(count)]
    rng = rng or random.Random()
    return sorted(rng.random() * day_seconds for _ in range(count))


@dataclass(frozen=True)
class Pacer:
    """A schedule policy; `schedule` applies it to a stream of items."""

    mode: PacingMode = "full"
    rate: float = 100.0
    jitter: Jitter = "exponential"
    jitter_fraction: float = 0.5
    speedup: float = SECONDS_PER_DAY
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("full", "rate", "historical"):
            raise ValueError(f"unknown pacing {self.mode!r}: expected full, rate or historical")
        if self.jitter not in ("exponential", "uniform", "none"):
            raise ValueError(f"unknown jitter {self.jitter!r}: expected exponential, uniform "
                             "or none")
        if self.mode == "rate" and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of messages/s, got {self.rate}")
        if self.mode == "historical" and not (self.speedup > 0 and math.isfinite(self.speedup)):
            raise ValueError(f"speedup must be a positive number, got {self.speedup}")
        if not 0 <= self.jitter_fraction <= 1:
            raise ValueError(f"jitter_fraction must be within [0, 1], got {self.jitter_fraction}")

    @property
    def paced(self) -> bool:
        return self.mode != "full"

    @property
    def day_seconds(self) -> float:
        return SECONDS_PER_DAY / self.speedup

    def schedule(
        self, items: Iterable[T], date_of: Callable[[T], dt.date | None]
    ) -> Iterator[tuple[float, T]]:
        """(due seconds after start, item) for every item, in input order; dues never go down."""
        rng = random.Random(self.seed)
        if self.mode == "full":
            return ((0.0, item) for item in items)
        if self.mode == "rate":
            gaps = interarrival_times(self.rate, self.jitter, self.jitter_fraction, rng)
            return _rate_schedule(items, date_of, gaps)
        return _historical_schedule(items, date_of, self.day_seconds, self.jitter, rng)


def _rate_schedule(
    items: Iterable[T], date_of: Callable[[T], dt.date | None], gaps: Iterator[float]
) -> Iterator[tuple[float, T]]:
    # The first message goes at once; each later one one gap after the previous paced item.
    due = 0.0
    first = True
    for item in items:
        if date_of(item) is not None:
            if first:
                first = False
            else:
                due += next(gaps)
        yield due, item


def _historical_schedule(
    items: Iterable[T], date_of: Callable[[T], dt.date | None], day_seconds: float,
    jitter: Jitter, rng: random.Random,
) -> Iterator[tuple[float, T]]:
    first_date: dt.date | None = None
    last_due = 0.0
    day: list[T] = []
    day_date: dt.date | None = None

    def flush_day() -> Iterator[tuple[float, T]]:
        nonlocal last_due
        assert day_date is not None and first_date is not None
        start = (day_date - first_date).days * day_seconds
        paced = sum(1 for item in day if date_of(item) is not None)
        offsets = iter(day_offsets(paced, day_seconds, jitter, rng)) if paced else iter(())
        for item in day:
            if date_of(item) is not None:
                # max(): an out-of-order (earlier) date is sent now, never in the past.
                last_due = max(last_due, start + next(offsets))
            yield last_due, item
        day.clear()

    for item in items:
        date = date_of(item)
        if date is None:
            if day_date is None:
                yield last_due, item  # before any dated item: nothing to wait for
            else:
                day.append(item)
            continue
        if first_date is None:
            first_date = date
        if day_date is not None and date != day_date:
            yield from flush_day()
        day_date = date
        day.append(item)
    if day:
        yield from flush_day()
