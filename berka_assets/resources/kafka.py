"""confluent-kafka behind a Dagster resource; the code is berka_core/clients/kafka.py."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from berka_core.clients.kafka import KafkaConnection
from berka_core.config import get_settings


class KafkaResource(KafkaConnection, dg.ConfigurableResource):
    """Connection settings of a Kafka cluster; PLAINTEXT locally, SASL/SSL on real clusters."""

    bootstrap_servers: str = Field(default_factory=lambda: get_settings().kafka.bootstrap_servers)
    security_protocol: str = Field(default_factory=lambda: get_settings().kafka.security_protocol)
    sasl_mechanism: str | None = Field(
        default_factory=lambda: get_settings().kafka.sasl_mechanism or None
    )
    sasl_username: str | None = Field(
        default_factory=lambda: get_settings().kafka.sasl_username or None
    )
    sasl_password: str | None = None  # pass EnvVar("BERKA_KAFKA_SASL_PASSWORD")
    ssl_ca_location: str | None = Field(
        default_factory=lambda: get_settings().kafka.ssl_ca_location or None
    )
    request_timeout_ms: int = 10_000
