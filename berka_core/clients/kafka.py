"""confluent-kafka clients of one cluster: producers, consumers, admin and offset look-ups.

`KafkaConnection` holds the behaviour and reads its settings from attributes, so the Dagster
resource (berka_assets/resources/kafka.py) and the plain `KafkaClient` of the spark-submit job
are the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from berka_core.config import KafkaSettings, get_settings


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    low: int  # first offset still stored
    high: int  # next offset to be written (end offset, exclusive)


class KafkaConnection:
    """Needs the attributes bootstrap_servers, security_protocol, sasl_mechanism,
    sasl_username, sasl_password, ssl_ca_location and request_timeout_ms."""

    def client_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "socket.timeout.ms": self.request_timeout_ms,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({key: value for key, value in optional.items() if value})
        return config

    def spark_options(self) -> dict[str, str]:
        """The same cluster as options of Spark's Kafka source (`kafka.` prefixed)."""
        options = {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            "kafka.security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["kafka.sasl.mechanism"] = self.sasl_mechanism
        if self.ssl_ca_location:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = self.ssl_ca_location
        if self.sasl_username and self.sasl_password:
            module = (
                "org.apache.kafka.common.security.scram.ScramLoginModule"
                if self.sasl_mechanism and self.sasl_mechanism.startswith("SCRAM")
                else "org.apache.kafka.common.security.plain.PlainLoginModule"
            )
            options["kafka.sasl.jaas.config"] = (
                f'{module} required username="{self.sasl_username}" '
                f'password="{self.sasl_password}";'
            )
        return options

    def producer(self, **overrides: Any):  # -> confluent_kafka.Producer
        from confluent_kafka import Producer

        # librdkafka's default is not idempotent; a replay must never duplicate or reorder.
        config = {"enable.idempotence": True, "acks": "all", **self.client_config(), **overrides}
        return Producer(config)

    def consumer(self, group_id: str, **overrides: Any):  # -> confluent_kafka.Consumer
        from confluent_kafka import Consumer

        config = {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **self.client_config(),
            **overrides,
        }
        return Consumer(config)

    def admin(self):  # -> confluent_kafka.admin.AdminClient
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.client_config())

    def topic_id(self, topic: str, timeout: float = 10.0) -> str | None:
        """Kafka's ID of the topic (a UUID): a topic deleted and created again under the same
        name gets a new one, and its offsets start again. None when the broker gives none."""
        from confluent_kafka import TopicCollection

        admin = self.admin()  # kept alive until the answer: a collected client cancels it
        future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic]
        topic_id = future.result(timeout=timeout).topic_id
        return str(topic_id) if topic_id is not None else None

    def partition_offsets(self, topic: str, timeout: float = 10.0) -> list[PartitionOffsets]:
        """Low and high watermarks of every partition of `topic`."""
        from confluent_kafka import TopicPartition

        consumer = self.consumer(group_id="berka-offset-probe")
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
            topic_metadata = metadata.topics.get(topic)
            if topic_metadata is None or topic_metadata.error is not None:
                error = topic_metadata.error if topic_metadata else "not found"
                raise RuntimeError(
                    f"Kafka topic {topic!r} is not available on {self.bootstrap_servers}: {error}"
                )
            result = []
            for partition in sorted(topic_metadata.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )
                result.append(PartitionOffsets(partition, low, high))
            return result
        finally:
            consumer.close()


@dataclass(frozen=True)
class KafkaClient(KafkaConnection):
    """The same connection without Dagster, from the environment (password included)."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    request_timeout_ms: int = 10_000

    @classmethod
    def from_settings(cls, settings: KafkaSettings | None = None) -> KafkaClient:
        settings = settings or get_settings().kafka
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism or None,
            sasl_username=settings.sasl_username or None,
            sasl_password=os.environ.get(settings.sasl_password_env) or None,
            ssl_ca_location=settings.ssl_ca_location or None,
        )
