"""The pacing schedules, pure: no clock, no Kafka."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import statistics

import pytest

from berka_core.producer.pacing import Pacer, day_offsets, interarrival_times


def _dated(dates: list[dt.date]) -> list[tuple[int, dt.date | None]]:
    return list(enumerate(dates))


def _date_of(item: tuple[int, dt.date | None]) -> dt.date | None:
    return item[1]


@pytest.mark.parametrize("jitter", ["exponential", "uniform", "none"])
def test_interarrival_mean_is_one_over_rate(jitter: str) -> None:
    gaps = list(itertools.islice(interarrival_times(200.0, jitter, 0.5, random.Random(1)), 50_000))
    assert statistics.fmean(gaps) == pytest.approx(1 / 200, rel=0.02)
    assert min(gaps) >= 0


def test_interarrival_shapes() -> None:
    rng = random.Random(2)
    uniform = list(itertools.islice(interarrival_times(100.0, "uniform", 0.2, rng), 10_000))
    assert 0.008 <= min(uniform) and max(uniform) <= 0.012
    constant = list(itertools.islice(interarrival_times(100.0, "none"), 10))
    assert constant == [0.01] * 10
    exponential = list(itertools.islice(interarrival_times(100.0, "exponential", rng=rng), 20_000))
    # Exponential: standard deviation equals the mean (coefficient of variation 1).
    variation = statistics.pstdev(exponential) / statistics.fmean(exponential)
    assert variation == pytest.approx(1, abs=0.05)


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_bad_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        next(interarrival_times(rate))
    with pytest.raises(ValueError, match="rate"):
        Pacer(mode="rate", rate=rate)


def test_rate_schedule_is_absolute_and_skips_undated_items() -> None:
    day = dt.date(1993, 1, 1)
    items = _dated([day, None, day, day, None, day])
    schedule = list(Pacer(mode="rate", rate=10, jitter="none").schedule(items, _date_of))
    assert [item for _, item in schedule] == items
    # Dated items at 0, 0.1, 0.2, 0.3 s; undated ones go with the item before, using no slot.
    assert [round(due, 9) for due, _ in schedule] == [0.0, 0.0, 0.1, 0.2, 0.2, 0.3]


def test_rate_schedule_long_run_has_no_drift() -> None:
    items = _dated([dt.date(1993, 1, 1)] * 100_001)
    pacer = Pacer(mode="rate", rate=1000.0, jitter="exponential", seed=7)
    last_due = list(pacer.schedule(items, _date_of))[-1][0]
    # 100,000 gaps of mean 1 ms: the total is within 1% of 100 s (sd of the sum ~0.3%).
    assert last_due == pytest.approx(100.0, rel=0.01)


def test_seeded_schedules_repeat() -> None:
    items = _dated([dt.date(1993, 1, 1)] * 100)
    pacer = Pacer(mode="rate", rate=50, seed=3)
    assert list(pacer.schedule(items, _date_of)) == list(pacer.schedule(items, _date_of))


def test_full_speed_is_all_due_now() -> None:
    items = _dated([dt.date(1993, 1, 1), None])
    assert [due for due, _ in Pacer(mode="full").schedule(items, _date_of)] == [0.0, 0.0]


def test_historical_days_map_to_windows() -> None:
    d0 = dt.date(1993, 1, 1)
    dates = [d0] * 4 + [None] + [d0 + dt.timedelta(days=1)] * 2 + [d0 + dt.timedelta(days=5)]
    pacer = Pacer(mode="historical", speedup=86_400 / 10, jitter="none")  # a day = 10 s
    assert pacer.day_seconds == 10
    schedule = list(pacer.schedule(_dated(dates), _date_of))
    assert [item for _, item in schedule] == _dated(dates)
    dues = [due for due, _ in schedule]
    # Day 0: 4 events evenly in [0, 10); the undated item goes with the one before it.
    assert dues[:5] == pytest.approx([1.25, 3.75, 6.25, 8.75, 8.75])
    assert dues[5:7] == pytest.approx([12.5, 17.5])  # day 1: [10, 20)
    assert dues[7] == pytest.approx(55.0)  # day 5 alone: the middle of [50, 60)


def test_historical_random_spread_stays_in_each_day_and_never_goes_back() -> None:
    d0 = dt.date(1994, 3, 1)
    rng = random.Random(5)
    dates: list[dt.date | None] = sorted(
        d0 + dt.timedelta(days=rng.randrange(30)) for _ in range(3000)
    )
    dates.insert(1500, d0)  # an out-of-order (earlier) date: sent at once, not in the past
    pacer = Pacer(mode="historical", speedup=86_400, jitter="exponential", seed=1)
    schedule = list(pacer.schedule(_dated(dates), _date_of))
    dues = [due for due, _ in schedule]
    assert dues == sorted(dues)
    for due, (index, date) in schedule:
        if index != 1500:
            start = float((date - d0).days)  # a day lasts 1 s
            assert start <= due < start + 1.0


def test_day_offsets() -> None:
    assert day_offsets(2, 10.0, "none") == [2.5, 7.5]
    offsets = day_offsets(1000, 2.0, "uniform", random.Random(0))
    assert offsets == sorted(offsets) and 0 <= offsets[0] and offsets[-1] < 2.0


def test_pacer_validates() -> None:
    with pytest.raises(ValueError, match="speedup"):
        Pacer(mode="historical", speedup=0)
    with pytest.raises(ValueError, match="jitter_fraction"):
        Pacer(mode="rate", jitter="uniform", jitter_fraction=1.5)
    with pytest.raises(ValueError, match="pacing"):
        Pacer(mode="bogus")  # type: ignore[arg-type]
