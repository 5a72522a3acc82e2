"""The streaming query's progress events, recorded in MySQL for Dagster to observe."""

from __future__ import annotations

import json
import logging

from berka_core.spark_jobs.stream_metrics import StreamMetrics

log = logging.getLogger("berka.streaming")


def progress_listener(metrics: StreamMetrics):
    """A StreamingQueryListener that records every progress event."""
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressToMySQL(StreamingQueryListener):
        def onQueryStarted(self, event) -> None:
            pass

        def onQueryProgress(self, event) -> None:
            try:
                progress = json.loads(event.progress.json)
                # Where a trigger's time went (addBatch is the foreachBatch function).
                log.info("trigger %s durations (ms): %s", progress.get("batchId"),
                         progress.get("durationMs"))
                metrics.record(progress)
            except Exception as error:  # noqa: BLE001 - metrics must never stop the stream
                log.warning("metrics not recorded: %s", error)

        def onQueryIdle(self, event) -> None:
            pass

        def onQueryTerminated(self, event) -> None:
            pass

    return ProgressToMySQL()
