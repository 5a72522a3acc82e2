"""Noticing a Kafka topic deleted and created again under the same name (its offsets start
over) before planning from the ledger's frontier; see BatchLedger.follow_topic."""

from __future__ import annotations

from collections.abc import Callable

from berka_core.clients.kafka import KafkaConnection
from berka_core.spark_jobs.ledger import BatchLedger, archived_topic


def follow_topic(kafka: KafkaConnection, ledger: BatchLedger, topic: str,
                 warn: Callable[[str], None]) -> bool:
    """True (after a warning) when `topic` is a new incarnation for this ledger's database:
    its frontier then starts at the new topic's first offset. Call with no batch in flight."""
    topic_id = kafka.topic_id(topic)
    earlier = ledger.follow_topic(topic, topic_id) if topic_id is not None else None
    if earlier is None:
        return False
    warn(f"topic {topic!r} was deleted and created again (id {earlier} -> {topic_id}): its "
         f"offsets start over. The earlier topic's ledger rows are kept as "
         f"{archived_topic(topic, earlier)!r}; the new topic is processed from its first "
         "offset (records already counted come back as duplicates).")
    return True
