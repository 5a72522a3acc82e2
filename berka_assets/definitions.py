"""The only composition root: every asset, check, sensor, job and resource of the code location."""

from __future__ import annotations

import dagster as dg

from berka_assets.assets.reference import reference_tables
from berka_assets.checks.reference import REFERENCE_CHECKS
from berka_assets.config import Settings, load_secrets_into_environment, load_settings
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.hive import HiveResource
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.s3 import s3_resource
from berka_assets.resources.spark import spark_resource

# Outside `dagster dev` (tests, the demo, `dagster definitions validate`) the local stack's
# .env still has to reach EnvVar; values already in the environment win.
load_secrets_into_environment()


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or load_settings()
    s3 = s3_resource(settings.s3)
    return {
        "kafka": KafkaResource(),
        "mysql": MySQLResource(password=dg.EnvVar(settings.mysql.password_env)),
        "pyspark": spark_resource(settings.spark),
        "hive": HiveResource(),
        "s3": s3,
        "berka_source": BerkaSourceResource(s3=s3),
    }


defs = dg.Definitions(
    assets=[reference_tables],
    asset_checks=REFERENCE_CHECKS,
    resources=build_resources(),
)
