"""Random draws and exact splits shared by the synthetic generator's modules: whole-number
quotas in the real proportions, sparse increasing ids, amounts in cents, Poisson counts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from decimal import Decimal


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` in proportion to `weights` exactly (largest remainder), so even a tiny
    scale keeps the real proportions as closely as whole numbers allow."""
    weight_sum = float(sum(weights))
    raw = [total * w / weight_sum for w in weights]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _quota_labels(rng: random.Random, total: int, counts: Mapping[str, int]) -> list[str]:
    labels = [
        label
        for label, n in zip(counts, _allocate(total, list(counts.values())), strict=True)
        for _ in range(n)
    ]
    rng.shuffle(labels)
    return labels


def _scaled(count: int, scale: float) -> int:
    return round(count * scale)


def _increasing_ids(rng: random.Random, count: int, start: int, max_gap: int) -> list[int]:
    """Increasing ids with small random gaps, like the real files' sparse ids."""
    ids, current = [], start
    for _ in range(count):
        ids.append(current)
        current += 1 + int(rng.random() * max_gap)
    return ids


_CENT = Decimal("0.01")  # Decimal(cents) * _CENT: the exact amount in crowns


def _cents(crowns: float) -> int:
    return round(crowns * 100)


def _lognormal_cents(
    rng: random.Random, median: float, sigma: float, low: float, high: float
) -> int:
    crowns = min(max(median * math.exp(rng.gauss(0.0, sigma)), low), high)
    if rng.random() < 0.7:  # most real amounts are whole crowns; the rest have 1 decimal
        return _cents(round(crowns))
    return _cents(round(crowns, 1))


def _random_account_number(rng: random.Random) -> str:
    # Real partner accounts are mostly 8 digits with a tail of shorter ones, as a uniform draw.
    return str(rng.randrange(1, 100_000_000))


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
