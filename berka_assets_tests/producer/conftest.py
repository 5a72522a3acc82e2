"""Fixtures of the producer's integration tests: a fresh topic pair per test, a consumer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_core.config import MySQLSettings, Settings, secret
from berka_core.producer.position import TABLE as POSITION_TABLE
from berka_core.producer.position import MySQLPositionStore
from berka_stack.kafka import ensure_topics


@dataclass(frozen=True)
class Topics:
    topic: str
    dlq: str
    bootstrap_servers: str


def delete_topics(bootstrap_servers: str, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    if names:
        admin = AdminClient({"bootstrap.servers": bootstrap_servers})  # alive until resolved
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()


@pytest.fixture
def new_topics(stack: Settings, mysql: MySQLResource) -> Iterator[Callable[[], Topics]]:
    """Makes unique topic pairs (3 partitions like `trans`, and a dead-letter topic), deleted
    after the test with their stored positions."""
    made: list[str] = []

    def make() -> Topics:
        name = f"test-replay-{uuid.uuid4().hex[:10]}"
        ensure_topics(stack.kafka.bootstrap_servers, {name: 3, f"{name}.dlq": 1})
        made.extend([name, f"{name}.dlq"])
        return Topics(name, f"{name}.dlq", stack.kafka.bootstrap_servers)

    yield make
    delete_topics(stack.kafka.bootstrap_servers, made)
    if made:
        with mysql.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM `{POSITION_TABLE}` WHERE topic IN %s", (made,))


@pytest.fixture
def topics(new_topics: Callable[[], Topics]) -> Topics:
    return new_topics()


@pytest.fixture
def mysql(stack: Settings) -> MySQLResource:
    return MySQLResource(password=secret(MySQLSettings().password_env))


@pytest.fixture
def positions(mysql: MySQLResource) -> Iterator[MySQLPositionStore]:
    with MySQLPositionStore.for_resource(mysql) as store:
        yield store


@pytest.fixture
def kafka(stack: Settings) -> KafkaResource:
    return KafkaResource()


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    key: bytes
    value: bytes


def consume_all(bootstrap_servers: str, topic: str, expected: int,
                timeout: float = 30.0) -> list[Consumed]:
    """Every message of `topic`, read by an independent consumer; asserts there are exactly
    `expected` (the partitions' end offsets say there is nothing more to come)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers,
                         "group.id": f"test-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        stored = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                     for p in partitions)
        assert stored == expected, f"{topic} holds {stored} messages, expected {expected}"
        messages: list[Consumed] = []
        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(Consumed(message.partition(), message.offset(),
                                         message.key(), message.value()))
        assert len(messages) == expected
        return messages
    finally:
        consumer.close()
