"""Where a replay stopped, kept durably so the next run resumes with no gap and no repeat.

One row per (source file, topic) in MySQL table `producer_position` of database `berka`:
last_line is the highest line of the file such that it and every line before it are done
(their message, or their dead-letter message for a malformed row, was delivered; rows left out
by a date range count as done). Line 1 is the header, so a fresh position is line 1.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any, Protocol

TABLE = "producer_position"
MAX_SOURCE_URI = 512  # with topic's 249 (Kafka's limit), the key fits InnoDB's 3072 bytes
MAX_TOPIC = 249

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS `{TABLE}` (
  source_uri VARCHAR({MAX_SOURCE_URI}) NOT NULL,
  topic VARCHAR({MAX_TOPIC}) NOT NULL,
  last_line BIGINT NOT NULL COMMENT 'every line up to here is delivered (header = 1)',
  last_trans_id BIGINT NULL COMMENT 'trans_id of the last record at or before last_line',
  sent BIGINT NOT NULL COMMENT 'messages delivered up to last_line, over all runs',
  rejected BIGINT NOT NULL COMMENT 'malformed rows sent to the dead-letter topic',
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (source_uri, topic)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


@dataclass(frozen=True)
class Position:
    source_uri: str
    topic: str
    last_line: int = 1
    last_trans_id: int | None = None
    sent: int = 0
    rejected: int = 0
    updated_at: dt.datetime | None = None

    def advanced(self, **changes: Any) -> Position:
        return replace(self, **changes)


class PositionStore(Protocol):
    def load(self, source_uri: str, topic: str) -> Position | None: ...

    def save(self, position: Position) -> None: ...


class MemoryPositionStore:
    """For tests and dry runs: positions live as long as the object."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], Position] = {}
        self.saves = 0

    def load(self, source_uri: str, topic: str) -> Position | None:
        return self.positions.get((source_uri, topic))

    def save(self, position: Position) -> None:
        self.saves += 1
        self.positions[(position.source_uri, position.topic)] = replace(
            position, updated_at=dt.datetime.now(dt.UTC)
        )


class MySQLPositionStore:
    """Positions in MySQL through one autocommit connection held for the whole replay.

    `connect` is a context manager factory giving a PyMySQL connection, such as
    `lambda: mysql.connect(autocommit=True)` for a MySQLResource. Use the store as a context
    manager; a dropped connection is reopened on the next call.
    """

    def __init__(self, connect: Any) -> None:
        self._connect = connect
        self._context: AbstractContextManager[Any] | None = None
        self._connection: Any = None

    @classmethod
    def for_resource(cls, mysql: Any) -> MySQLPositionStore:
        return cls(lambda: mysql.connect(autocommit=True))

    def __enter__(self) -> MySQLPositionStore:
        self._open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> None:
        self._context = self._connect()
        self._connection = self._context.__enter__()
        with self._connection.cursor() as cursor:
            cursor.execute(CREATE_TABLE)

    def close(self) -> None:
        if self._context is not None:
            context, self._context, self._connection = self._context, None, None
            context.__exit__(None, None, None)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self._connection is not None:
            try:
                self._connection.ping()
            except Exception:  # noqa: BLE001 - any failure: reconnect once below
                with suppress(Exception):
                    self.close()
                self._context = self._connection = None
        if self._connection is None:
            self._open()
        with self._connection.cursor() as cursor:
            yield cursor

    def load(self, source_uri: str, topic: str) -> Position | None:
        with self._cursor() as cursor:
            cursor.execute(
                f"SELECT last_line, last_trans_id, sent, rejected, updated_at FROM `{TABLE}` "
                "WHERE source_uri = %s AND topic = %s",
                (source_uri, topic),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        last_line, last_trans_id, sent, rejected, updated_at = row
        return Position(source_uri, topic, int(last_line),
                        None if last_trans_id is None else int(last_trans_id),
                        int(sent), int(rejected), updated_at)

    def save(self, position: Position) -> None:
        if len(position.source_uri) > MAX_SOURCE_URI:
            raise ValueError(f"source URI longer than {MAX_SOURCE_URI} characters: "
                             f"{position.source_uri[:80]}...")
        with self._cursor() as cursor:
            # updated_at set explicitly: ON UPDATE would not fire when nothing else changed.
            cursor.execute(
                f"INSERT INTO `{TABLE}` (source_uri, topic, last_line, last_trans_id, sent, "
                "rejected, updated_at) VALUES (%s, %s, %s, %s, %s, %s, CURRENT_TIMESTAMP(3)) "
                "ON DUPLICATE KEY UPDATE last_line = VALUES(last_line), "
                "last_trans_id = VALUES(last_trans_id), sent = VALUES(sent), "
                "rejected = VALUES(rejected), updated_at = CURRENT_TIMESTAMP(3)",
                (position.source_uri, position.topic, position.last_line,
                 position.last_trans_id, position.sent, position.rejected),
            )
