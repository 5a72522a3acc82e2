"""The only composition root: every asset, check, sensor, job and resource of the code location."""

from __future__ import annotations

import os

import dagster as dg

from berka_assets.assets.reference import reference_tables
from berka_assets.assets.reports import trends_report
from berka_assets.assets.source import berka_source_files
from berka_assets.assets.streaming import kafka_topic, microbatch, microbatch_job
from berka_assets.assets.synthetic import synthetic_berka
from berka_assets.automation import automation_sensor
from berka_assets.checks.reference import REFERENCE_CHECKS
from berka_assets.checks.streaming import STREAMING_CHECKS
from berka_assets.jobs import s3_replay_job
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.hive import HiveResource
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.s3 import s3_resource
from berka_assets.resources.spark import spark_resource
from berka_assets.sensors.kafka_offsets import kafka_trans_sensor
from berka_assets.sensors.streaming_health import streaming_health_sensor, streaming_job_asset
from berka_core.config import Settings, get_settings, load_secrets_into_environment

# Outside `dagster dev` (tests, the demo, `dagster definitions validate`) the local stack's
# .env still has to reach EnvVar; values already in the environment win.
load_secrets_into_environment()


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or get_settings()
    s3 = s3_resource(settings.s3)
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            security_protocol=settings.kafka.security_protocol,
            sasl_password=dg.EnvVar(settings.kafka.sasl_password_env)
            if os.environ.get(settings.kafka.sasl_password_env) else None
        ),
        "mysql": MySQLResource(password=dg.EnvVar(settings.mysql.password_env)),
        "pyspark": spark_resource(settings.spark),
        "hive": HiveResource(),
        "s3": s3,
        "berka_source": BerkaSourceResource(kind=settings.s3.source_kind, s3=s3),
    }


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
    jobs=[microbatch_job, streaming_checks_job, s3_replay_job],
    sensors=[kafka_trans_sensor, streaming_health_sensor, automation_sensor],
    resources=build_resources(),
)
