"""Before reading anything: the broker answers and both topics exist (bounded in time)."""

from __future__ import annotations

import time
from typing import Any

from berka_core.producer.interfaces import KafkaLike
from berka_core.producer.options import ReplayOptions
from berka_core.producer.results import BrokerUnavailableError, TopicNotFoundError


def check_broker(producer: Any, kafka: KafkaLike, options: ReplayOptions) -> int:
    """Partitions of the topic, after checking both topics exist; bounded in time."""
    from confluent_kafka import KafkaException

    timeout = options.connect_timeout_s
    deadline = time.monotonic() + timeout
    attempts = 0
    last_error: object = None
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            metadata = producer.list_topics(timeout=max(0.5, min(5.0, remaining)))
            if metadata.brokers:
                break
            last_error = "no broker in the metadata"
        except KafkaException as error:
            last_error = error.args[0] if error.args else error
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(
                f"Kafka is unreachable at {kafka.bootstrap_servers}: no metadata "
                f"within {timeout:g} s ({attempts} attempt(s); last error: {last_error}). "
                "Is the broker running (`berka-stack status`) and "
                "BERKA_KAFKA_BOOTSTRAP_SERVERS right?"
            )
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    partitions = 0
    for topic in (options.topic, options.dlq_topic):
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            why = info.error if info is not None else "does not exist"
            raise TopicNotFoundError(
                f"Kafka topic {topic!r} is not available on "
                f"{kafka.bootstrap_servers}: {why}. Topics are not auto-created; "
                "create it (berka_stack.kafka.ensure_topics) or fix the option."
            )
        if topic == options.topic:
            partitions = len(info.partitions)
    return partitions
