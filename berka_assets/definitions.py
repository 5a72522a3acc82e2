"""The only composition root: every asset, check, sensor, job and resource of the code location."""

from __future__ import annotations

import dagster as dg

from berka_assets.config import load_secrets_into_environment, load_settings
from berka_assets.resources.hive import HiveResource
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.s3 import s3_resource
from berka_assets.resources.spark import spark_resource

# Outside `dagster dev` (tests, the demo, `dagster definitions validate`) the local stack's
# .env still has to reach EnvVar; values already in the environment win.
load_secrets_into_environment()


def build_resources() -> dict[str, object]:
    settings = load_settings()
    return {
        "kafka": KafkaResource(),
        "mysql": MySQLResource(password=dg.EnvVar(settings.mysql.password_env)),
        "pyspark": spark_resource(settings.spark),
        "hive": HiveResource(),
        "s3": s3_resource(settings.s3),
    }


defs = dg.Definitions(resources=build_resources())
