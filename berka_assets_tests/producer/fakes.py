"""In-memory stand-ins for Kafka and the source, to test the replay loop's bookkeeping."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from berka_core.producer.delivery import Unsent
from berka_core.producer.position import MemoryPositionStore, Position


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


# A delivered message as confluent-kafka reports it (topic(), key(), value()): the replay's own
# shape of a message it could not queue serves.
FakeMessage = Unsent


# fail(topic, message dict, attempt) -> error name or None
FailRule = Callable[[str, dict[str, Any], int], str | None]


class FakeProducer:
    """Delivers a random part of its queue on each poll, in random order (reports from
    different partitions interleave), everything on flush; `fail` decides errors.

    Like librdkafka it can refuse: with `queue_limit`, `produce` raises BufferError on a full
    local queue and `produce_batch` queues only what fits, marking the rest with `_error`;
    with `fatal_after`, the producer's `error_cb` gets a fatal error once that many messages
    were produced, every delivery from then on fails with it and, with `raise_when_fatal`,
    every later produce raises (librdkafka may do either first)."""

    def __init__(self, topics: dict[str, int], fail: FailRule | None = None,
                 seed: int = 0, on_produce: Callable[[int], None] | None = None,
                 queue_limit: int | None = None, fatal_after: int | None = None,
                 raise_when_fatal: bool = True) -> None:
        self.topics = topics
        self.fail = fail
        self.queue_limit = queue_limit
        self.fatal_after = fatal_after
        self.raise_when_fatal = raise_when_fatal
        self.error_cb: Callable[[FakeError], None] | None = None
        self.refused = 0  # messages turned away by a full queue
        self.fatal = False
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
        if self.fatal and self.raise_when_fatal:
            raise RuntimeError("KafkaError{code=_FATAL}: the producer is in a fatal state")
        if self.queue_limit is not None and len(self.queue) >= self.queue_limit:
            self.refused += 1
            raise BufferError("Local: Queue full")
        self.queue.append((FakeMessage(topic, key, value), on_delivery))
        self.produced += 1
        if self.on_produce is not None:
            self.on_produce(self.produced)
        if not self.fatal and self.fatal_after is not None and self.produced >= self.fatal_after:
            self.fatal = True
            if self.error_cb is not None:
                self.error_cb(FakeError("_FATAL", fatal=True))

    def produce_batch(self, topic: str, messages: list[dict[str, Any]],
                      on_delivery: Any = None) -> int:
        queued = 0
        for message in messages:
            try:
                self.produce(topic, message["value"], message.get("key"),
                             on_delivery=message.get("callback", on_delivery))
                queued += 1
            except BufferError:
                message["_error"] = FakeError("_QUEUE_FULL")
        return queued

    def _deliver(self, batch: list[tuple[FakeMessage, Any]]) -> None:
        self.rng.shuffle(batch)
        for message, callback in batch:
            attempt = self.attempts[message.value()] = self.attempts.get(message.value(), 0) + 1
            error = FakeError("_FATAL", fatal=True) if self.fatal else None
            if error is None and self.fail is not None:
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
        self._producer.error_cb = config.get("error_cb")
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
