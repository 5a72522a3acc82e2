"""Compaction and clean-up of the streaming job's Delta tables, beside the stream.

Every trigger appends a small file to `enriched_transactions` and rewrites `trend_cube`: left
alone, an hour of 2-s triggers makes 1,800 files of each. A thread of the job runs Delta's
OPTIMIZE on an interval, and VACUUM at a longer one (HiveTables.maintain). It runs beside the
triggers, not in them, so no trigger waits for it; Delta lets a compaction commit beside blind
appends (the streaming job's appends read nothing of the table) and VACUUM keeps every file a
version within the retention reads. The job's per-trigger progress reports in MySQL are pruned
to the same retention at the same time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pyspark.sql import SparkSession

from berka_core.spark_jobs.hive_tables import HiveTables

log = logging.getLogger("berka.streaming")
FIRST_RUN_AFTER_SECONDS = 60.0


class DeltaMaintenance:
    """OPTIMIZE (of the files under `compact_below_mb`) every `interval_seconds`, VACUUM too
    when `vacuum_every_seconds` have passed since it last vacuumed, then `also` (the
    progress reports' retention), in a thread of its own."""

    def __init__(self, spark: SparkSession, tables: HiveTables, interval_seconds: float,
                 vacuum_every_seconds: float = 0.0,
                 also: Callable[[], object] | None = None,
                 compact_below_mb: int | None = None) -> None:
        self._spark = spark
        self._tables = tables
        self._also = also
        self._interval = interval_seconds
        self._vacuum_every = vacuum_every_seconds
        self._compact_below_mb = compact_below_mb
        self._vacuumed_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delta-maintenance", daemon=True)
        self.runs = 0

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)

    def _run(self) -> None:
        # The first one soon after a start: a job that crashed and restarted would otherwise
        # wait a whole interval again, and its table kept the files of the interval before
        # (the soak: 290 files after a kill and a MariaDB restart within 10 minutes).
        wait = min(self._interval, FIRST_RUN_AFTER_SECONDS)
        while not self._stop.wait(wait):
            wait = self._interval
            started = time.monotonic()
            vacuum = (self._vacuumed_at is None
                      or started - self._vacuumed_at >= self._vacuum_every)
            # VACUUM skips a table younger than the retention: the closing line says which ran.
            log.info("Delta maintenance starting: OPTIMIZE%s",
                     ", VACUUM where due" if vacuum else "")
            try:
                done = self._tables.maintain(self._spark, vacuum=vacuum,
                                             compact_below_mb=self._compact_below_mb)
                if self._also is not None:
                    self._also()
            except Exception as error:  # noqa: BLE001 - a conflict or outage: next interval
                log.warning("Delta maintenance failed, will retry in %.0f s: %s",
                            self._interval, str(error).splitlines()[0][:300])
                continue
            self.runs += 1
            if done.vacuumed:
                self._vacuumed_at = started
            log.info("Delta maintenance: %s, in %.1f s", done.describe(),
                     time.monotonic() - started)
