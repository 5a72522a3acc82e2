"""The only composition root: every asset, check, sensor, job and resource of the code location."""

from __future__ import annotations

import dagster as dg

from berka_assets.assets.reference import reference_tables
from berka_assets.assets.reports import trends_report
from berka_assets.assets.source import berka_source_files
from berka_assets.assets.streaming import kafka_topic, microbatch, microbatch_job
from berka_assets.assets.synthetic import synthetic_berka
from berka_assets.automation import automation_sensor
from berka_assets.checks.reference import REFERENCE_CHECKS
from berka_assets.checks.streaming import STREAMING_CHECKS
from berka_assets.jobs import delta_maintenance_job, s3_replay_job
from berka_assets.resources.factory import build_resources
from berka_assets.sensors.kafka_offsets import kafka_trans_sensor
from berka_assets.sensors.streaming_health import streaming_health_sensor, streaming_job_asset

streaming_checks_job = dg.define_asset_job(
    "streaming_checks_job",
    selection=dg.AssetSelection.checks(*STREAMING_CHECKS),
    description="Ledger, duplicate, totals and freshness checks of the Hive tables.",
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions(
    assets=[
        berka_source_files, kafka_topic, reference_tables, microbatch, trends_report,
        streaming_job_asset, synthetic_berka,
    ],
    asset_checks=[*REFERENCE_CHECKS, *STREAMING_CHECKS],
    jobs=[microbatch_job, streaming_checks_job, s3_replay_job, delta_maintenance_job],
    sensors=[kafka_trans_sensor, streaming_health_sensor, automation_sensor],
    resources=build_resources(),
)
