"""The MySQL reference tables and the account profiles, cached in Spark, re-read on an interval.

The DataFrames stay the same objects for the life of the job: the stream's plan is built on them
once, and Spark substitutes cached data each time it plans a micro-batch, so a refresh (uncache,
re-read, cache again) reaches the next batch without a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from berka_core import transformations as T

log = logging.getLogger("berka.streaming")


class ReferenceCache:
    def __init__(self, reference: T.ReferenceData, refresh_seconds: float) -> None:
        # The profiles are cached too: a batch then joins one small cached relation.
        self.data = dataclasses.replace(reference, profiles=T.account_profiles(reference))
        self._refresh_seconds = refresh_seconds
        self._loaded_at = 0.0
        self._load()

    def _frames(self) -> dict[str, object]:
        return {f.name: getattr(self.data, f.name) for f in dataclasses.fields(self.data)}

    def _load(self) -> None:
        counts = {}
        for name, frame in self._frames().items():
            counts[name] = frame.cache().count()  # read from MySQL now, not in a batch
        self._loaded_at = time.monotonic()
        log.info("reference tables (re)loaded from MySQL: %s", counts)

    def refresh_if_due(self) -> bool:
        """Re-read MySQL if the interval has passed; True if it did."""
        if time.monotonic() - self._loaded_at < self._refresh_seconds:
            return False
        for frame in self._frames().values():
            frame.unpersist(blocking=True)
        self._load()
        return True
