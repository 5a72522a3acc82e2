"""Per-batch health of the streaming job, kept in MySQL: written by spark_streaming/, read by
the Dagster sensor that turns it into asset observations."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from berka_core.spark_jobs.ledger import add_missing_indexes

METRICS_DDL = """
CREATE TABLE IF NOT EXISTS streaming_progress (
  id                        BIGINT AUTO_INCREMENT PRIMARY KEY,
  hive_database             VARCHAR(128) NOT NULL,
  batch_epoch               BIGINT       NOT NULL,
  reported_at               DATETIME(3)  NOT NULL,
  input_rows                BIGINT       NOT NULL,
  input_rows_per_second     DOUBLE       NULL,
  processed_rows_per_second DOUBLE       NULL,
  offsets_behind_latest     BIGINT       NULL,
  batch_duration_ms         BIGINT       NULL,
  end_offsets               TEXT         NULL,
  KEY by_database (hive_database, id)
) ENGINE=InnoDB
"""


# The retention's DELETE (prune) must not scan every report.
PROGRESS_INDEXES = {"by_time": "(hive_database, reported_at)"}


class StreamMetrics:
    def __init__(self, connect: Callable[[], AbstractContextManager[Any]], hive_database: str):
        self._connect = connect
        self.hive_database = hive_database

    def ensure_table(self) -> None:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(METRICS_DDL)
            # Added here only, for new and earlier tables alike (one definition).
            add_missing_indexes(cursor, "streaming_progress", PROGRESS_INDEXES)

    def prune(self, older_than: dt.timedelta) -> int:
        """Delete the reports older than `older_than` (a row per trigger: a job running for
        days must not grow the table forever); returns how many."""
        cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - older_than
        with self._connect() as connection, connection.cursor() as cursor:
            return cursor.execute(
                "DELETE FROM streaming_progress WHERE hive_database = %s AND reported_at < %s",
                (self.hive_database, cutoff))

    def record(self, progress: dict[str, Any]) -> None:
        source = (progress.get("sources") or [{}])[0]
        source_metrics = source.get("metrics") or {}
        behind = source_metrics.get("maxOffsetsBehindLatest")
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO streaming_progress (hive_database, batch_epoch, reported_at, "
                "input_rows, input_rows_per_second, processed_rows_per_second, "
                "offsets_behind_latest, batch_duration_ms, end_offsets) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    self.hive_database,
                    progress.get("batchId", -1),
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    progress.get("numInputRows", 0),
                    _finite(progress.get("inputRowsPerSecond")),
                    _finite(progress.get("processedRowsPerSecond")),
                    int(float(behind)) if behind not in (None, "") else None,
                    (progress.get("durationMs") or {}).get("triggerExecution"),
                    json.dumps(source.get("endOffset")) if source.get("endOffset") else None,
                ),
            )

    def since(self, last_id: int, limit: int = 500) -> list[dict[str, Any]]:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, batch_epoch, reported_at, input_rows, input_rows_per_second, "
                "processed_rows_per_second, offsets_behind_latest, batch_duration_ms "
                "FROM streaming_progress WHERE hive_database = %s AND id > %s "
                "ORDER BY id LIMIT %s",
                (self.hive_database, last_id, limit),
            )
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None
