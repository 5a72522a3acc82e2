"""The MySQL reference tables, cached in Spark and re-read on an interval without a restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import fields

from berka_assets.transformations import ReferenceData

log = logging.getLogger("berka.streaming")


class ReferenceCache:
    def __init__(self, load: Callable[[], ReferenceData], refresh_seconds: float) -> None:
        self._load = load
        self._refresh_seconds = refresh_seconds
        self._current: ReferenceData | None = None
        self._loaded_at = 0.0

    def get(self) -> ReferenceData:
        if self._current is None or time.monotonic() - self._loaded_at >= self._refresh_seconds:
            fresh = self._load()
            frames = {f.name: getattr(fresh, f.name).cache() for f in fields(fresh)}
            counts = {name: frame.count() for name, frame in frames.items()}  # materialize now
            previous, self._current = self._current, ReferenceData(**frames)
            self._loaded_at = time.monotonic()
            if previous is not None:
                for f in fields(previous):
                    getattr(previous, f.name).unpersist()
            log.info("reference tables (re)loaded from MySQL: %s", counts)
        return self._current
