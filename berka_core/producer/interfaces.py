"""What the replay needs of its collaborators: a log, Kafka and the source of the trans file."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from berka_core.clients.kafka import PartitionOffsets


class LogLike(Protocol):
    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...

    def error(self, msg: str) -> Any: ...


class KafkaLike(Protocol):
    """What the replay needs of a KafkaResource."""

    bootstrap_servers: str

    def producer(self, **overrides: Any) -> Any: ...

    def partition_offsets(self, topic: str, timeout: float = 10.0) -> list[PartitionOffsets]: ...


class SourceLike(Protocol):
    """What the replay needs of a BerkaSourceResource: the trans file as bytes and its URI."""

    def open(self, table: str) -> contextlib.AbstractContextManager[tuple[Any, str]]: ...
