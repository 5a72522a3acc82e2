"""The streaming job's trend writes, off the batch's critical path.

A batch ends at its ledger commit; the trend tables are then written from the committed cube by
one background thread while the next batch already reads and writes its records. Only the
newest cube is written (a cube waiting behind a write is replaced by a newer one, which includes
it), and exactly the batches a written cube includes are marked visible. A failed write is
raised by the next batch (`raise_if_failed`), which fails the query: the restart rewrites the
trends from the committed tables, so a lost write never loses data, only delays visibility.
"""

from __future__ import annotations

import logging
import threading
import time

from pyspark.sql import SparkSession

from berka_assets.spark_jobs.hive_tables import HiveTables
from berka_assets.spark_jobs.ledger import BatchLedger
from berka_assets.spark_jobs.microbatch import MicrobatchError
from berka_assets.transformations import CUBE_SCHEMA

log = logging.getLogger("berka.streaming")

class TrendPublisher:
    def __init__(self, tables: HiveTables, ledger: BatchLedger) -> None:
        self.tables = tables
        self.ledger = ledger
        self._condition = threading.Condition()
        self._pending: tuple[SparkSession, list[tuple], list[str]] | None = None
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self.writes = 0
        self._thread = threading.Thread(target=self._run, name="trend-publisher", daemon=True)
        self._thread.start()

    def publish(self, spark: SparkSession, cube: list[tuple], batch_id: str) -> None:
        """Ask for the trends of `cube`, which includes `batch_id` (just committed)."""
        with self._condition:
            batch_ids = self._pending[2] if self._pending is not None else []
            self._pending = (spark, cube, [*batch_ids, batch_id])
            self._condition.notify_all()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise MicrobatchError(
                f"writing the trend tables failed: {self._error}; the committed batches stay "
                "invisible until the job restarts and rewrites them"
            ) from self._error

    def flush(self, timeout: float = 120.0) -> bool:
        """Wait until every published cube is written (or failed); True if so."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while (self._pending is not None or self._busy) and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
        return True

    def close(self, timeout: float = 120.0) -> None:
        self.flush(timeout)
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._pending is None:
                    return
                spark, cube, batch_ids = self._pending
                self._pending = None
                self._busy = True
            try:
                started = time.monotonic()
                self.tables.write_trends(spark, spark.createDataFrame(cube, CUBE_SCHEMA))
                self.ledger.mark_visible(batch_ids)
                self.writes += 1
                log.info("trends written for %d batch(es) in %.2f s", len(batch_ids),
                         time.monotonic() - started)
            except BaseException as error:  # noqa: BLE001 - reported by the next batch
                log.error("writing the trend tables failed: %s", error)
                with self._condition:
                    self._error = error
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()
            if self._error is not None:
                return
