"""The streaming job's health in Dagster: its per-batch progress becomes asset observations."""

import json

import dagster as dg

from berka_assets.assets.catalog import streaming_spec
from berka_assets.assets.reference import reference_key
from berka_assets.assets.streaming import topic_key
from berka_assets.resources.mysql import MySQLResource
from berka_core.config import get_settings
from berka_core.spark_jobs.microbatch import ENRICHMENT_TABLES
from berka_core.spark_jobs.stream_metrics import StreamMetrics


def streaming_job_key(hive_database: str | None = None) -> dg.AssetKey:
    database = hive_database or get_settings().spark.stream_hive_database
    return dg.AssetKey(["spark_streaming", database])


streaming_job_asset = streaming_spec(
    streaming_job_key(),
    "The continuous Structured Streaming job (spark_streaming/job.py) and the Hive "
    "database it writes. Observed from its progress reports: input and processed rows/s, "
    "offsets behind latest, batch duration.",
    kinds={"spark", "delta", "hive"},
    # What it reads: the topic, and the reference tables it enriches with.
    deps=[topic_key(), *(reference_key(table) for table in ENRICHMENT_TABLES)],
)


def build_streaming_health_sensor(hive_database: str | None = None) -> dg.SensorDefinition:
    hive_database = hive_database or get_settings().spark.stream_hive_database

    @dg.sensor(
        name=f"streaming_health_{hive_database}",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Records the streaming job's progress reports as observations of "
        f"{streaming_job_key(hive_database).to_user_string()}.",
    )
    def streaming_health(
        context: dg.SensorEvaluationContext, mysql: MySQLResource
    ) -> dg.SensorResult | dg.SkipReason:
        metrics = StreamMetrics(mysql.connect, hive_database)
        metrics.ensure_table()
        last_id = int(json.loads(context.cursor)["last_id"]) if context.cursor else 0
        rows = metrics.since(last_id)
        if not rows:
            return dg.SkipReason("no new progress reports from the streaming job")
        observations = [
            dg.AssetObservation(
                asset_key=streaming_job_key(hive_database),
                metadata={
                    "batch_epoch": row["batch_epoch"],
                    "reported_at_utc": str(row["reported_at"]),
                    "input_rows": row["input_rows"],
                    "input_rows_per_second": float(row["input_rows_per_second"] or 0.0),
                    "processed_rows_per_second": float(row["processed_rows_per_second"] or 0.0),
                    "offsets_behind_latest": int(row["offsets_behind_latest"] or 0),
                    "batch_duration_ms": int(row["batch_duration_ms"] or 0),
                },
            )
            # Every report with data, and the latest one even when idle.
            for row in rows
            if row["input_rows"] or row is rows[-1]
        ]
        return dg.SensorResult(
            asset_events=observations, cursor=json.dumps({"last_id": rows[-1]["id"]})
        )

    return streaming_health


streaming_health_sensor = build_streaming_health_sensor()
