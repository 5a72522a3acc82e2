"""In-memory stand-ins for Kafka and the source, to test the replay loop's bookkeeping."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from berka_assets.producer.position import MemoryPositionStore, Position


class FakeError:
    def __init__(self, name: str, fatal: bool = False) -> None:
        self._name = name
        self._fatal = fatal

    def name(self) -> str:
        return self._name

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return f"KafkaError{{code={self._name}}}"


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value


# fail(topic, message dict, attempt) -> error name or None
FailRule = Callable[[str, dict[str, Any], int], str | None]


class FakeProducer:
    """Delivers a random part of its queue on each poll, in random order (reports from
    different partitions interleave), everything on flush; `fail` decides errors."""

    def __init__(self, topics: dict[str, int], fail: FailRule | None = None,
                 seed: int = 0, on_produce: Callable[[int], None] | None = None) -> None:
        self.topics = topics
        self.fail = fail
        self.rng = random.Random(seed)
        self.queue: list[tuple[FakeMessage, Any]] = []
        self.attempts: dict[bytes, int] = {}
        self.delivered: list[FakeMessage] = []
        self.on_produce = on_produce
        self.produced = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(
            brokers={1: "fake"},
            topics={name: SimpleNamespace(error=None, partitions=dict.fromkeys(range(n)))
                    for name, n in self.topics.items()},
        )

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                on_delivery: Any = None) -> None:
        self.queue.append((FakeMessage(topic, key, value), on_delivery))
        self.produced += 1
        if self.on_produce is not None:
            self.on_produce(self.produced)

    def produce_batch(self, topic: str, messages: list[dict[str, Any]],
                      on_delivery: Any = None) -> int:
        for message in messages:
            self.produce(topic, message["value"], message.get("key"),
                         on_delivery=message.get("callback", on_delivery))
        return len(messages)

    def _deliver(self, batch: list[tuple[FakeMessage, Any]]) -> None:
        self.rng.shuffle(batch)
        for message, callback in batch:
            attempt = self.attempts[message.value()] = self.attempts.get(message.value(), 0) + 1
            error = None
            if self.fail is not None:
                name = self.fail(message.topic(), json.loads(message.value()), attempt)
                error = FakeError(name) if name else None
            if error is None:
                self.delivered.append(message)
            callback(error, message)

    def poll(self, timeout: float = 0) -> int:
        # A random two thirds: the rest waits, as a slower partition's reports would.
        self.rng.shuffle(self.queue)
        keep = len(self.queue) // 3
        batch, self.queue = self.queue[keep:], self.queue[:keep]
        self._deliver(batch)
        return len(batch)

    def flush(self, timeout: float = -1) -> int:
        while self.queue:
            batch, self.queue = self.queue, []
            self._deliver(batch)
        return 0

    def purge(self) -> None:
        self.queue.clear()

    def __len__(self) -> int:
        return len(self.queue)


class FakeKafka:
    bootstrap_servers = "fake:9092"

    def __init__(self, producer: FakeProducer) -> None:
        self._producer = producer
        self.config: dict[str, Any] = {}

    def producer(self, **config: Any) -> FakeProducer:
        self.config = config
        return self._producer

    def partition_offsets(self, topic: str, timeout: float = 10.0) -> list[Any]:
        return []


class BytesSource:
    def __init__(self, data: bytes, uri: str = "mem://trans.asc") -> None:
        self.data = data
        self.uri = uri

    @contextmanager
    def open(self, table: str) -> Iterator[tuple[io.BytesIO, str]]:
        yield io.BytesIO(self.data), self.uri


class CheckingStore(MemoryPositionStore):
    """Asserts on every save that each line up to the position is really done."""

    def __init__(self, producer: FakeProducer, line_of_trans_id: dict[int, int],
                 dlq_topic: str, done_before: int = 1) -> None:
        super().__init__()
        self.done_before = done_before  # lines done by an earlier (pretended) run
        self.producer = producer
        self.line_of = line_of_trans_id
        self.dlq_topic = dlq_topic
        self.history: list[Position] = []

    def done_lines(self) -> set[int]:
        done = set()
        for message in self.producer.delivered:
            payload = json.loads(message.value())
            if message.topic() == self.dlq_topic:
                done.add(payload["line"])
            else:
                done.add(self.line_of[payload["trans_id"]])
        return done

    def save(self, position: Position) -> None:
        done = self.done_lines()
        lines = range(self.done_before + 1, position.last_line + 1)
        missing = [line for line in lines if line not in done]
        assert not missing, f"position {position.last_line} claims undelivered lines {missing[:5]}"
        self.history.append(position)
        super().save(position)
