"""Resources made from the settings, in one place: the code location's definitions, the
`berka-replay` CLI and the demo use these; the streaming job uses the same settings through the
core's clients (berka_core/clients), which the Kafka and MySQL resources extend.

In the code location a password is an `EnvVar`: Dagster resolves it in the run and never shows
it. A CLI uses the resources outside Dagster, where an `EnvVar` stays a variable's name, so it
asks for resolved secrets (from the environment, else the local stack's `.env`).
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.hive import HiveResource
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.s3 import s3_resource
from berka_assets.resources.spark import spark_resource
from berka_core.config import Settings, get_settings, load_secrets_into_environment, secret


def _password(variable: str, resolve: bool) -> str:
    return secret(variable) if resolve else dg.EnvVar(variable)


def kafka_resource(settings: Settings, *, resolve_secrets: bool = False,
                   bootstrap_servers: str | None = None) -> KafkaResource:
    """The SASL password only where its variable is set (PLAINTEXT clusters have none)."""
    variable = settings.kafka.sasl_password_env
    return KafkaResource(
        bootstrap_servers=bootstrap_servers or settings.kafka.bootstrap_servers,
        security_protocol=settings.kafka.security_protocol,
        sasl_password=_password(variable, resolve_secrets) if os.environ.get(variable) else None,
    )


def mysql_resource(settings: Settings, *, resolve_secrets: bool = False) -> MySQLResource:
    return MySQLResource(password=_password(settings.mysql.password_env, resolve_secrets))


def build_resources(settings: Settings | None = None, *,
                    resolve_secrets: bool = False) -> dict[str, object]:
    """Every resource the definitions bind, by key.

    Outside `dagster dev` (tests, the demo, `dagster definitions validate`) the local stack's
    .env still has to reach EnvVar: its values are exported here; values already in the
    environment win."""
    load_secrets_into_environment()
    settings = settings or get_settings()
    s3: S3Resource = s3_resource(settings.s3)
    return {
        "kafka": kafka_resource(settings, resolve_secrets=resolve_secrets),
        "mysql": mysql_resource(settings, resolve_secrets=resolve_secrets),
        "pyspark": spark_resource(settings.spark),
        "hive": HiveResource(),
        "s3": s3,
        "berka_source": BerkaSourceResource(kind=settings.s3.source_kind, s3=s3),
    }
