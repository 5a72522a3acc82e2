"""The batch ledger: which Kafka offsets are committed to which Hive database, kept in MySQL.

Spark never commits Kafka offsets, and Hive tables have no transactions, so exactly-once rests on
this table: a batch's rows count only once its ledger rows are committed (one MySQL transaction),
and every batch starts from the committed frontier of each partition. Re-running a batch,
running overlapping ranges, or retrying after a crash therefore neither adds nor drops a record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from berka_assets.spark_jobs.kafka_source import OffsetRange

Connect = Callable[[], AbstractContextManager[Any]]

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS microbatch_ledger (
  hive_database    VARCHAR(128) NOT NULL,
  topic            VARCHAR(249) NOT NULL,
  kafka_partition  INT          NOT NULL,
  start_offset     BIGINT       NOT NULL,
  end_offset       BIGINT       NOT NULL,
  batch_id         VARCHAR(255) NOT NULL,
  enriched_rows    BIGINT       NOT NULL,
  quarantined_rows BIGINT       NOT NULL,
  committed_at     DATETIME(3)  NOT NULL,
  visible_at       DATETIME(3)  NULL,
  PRIMARY KEY (hive_database, topic, kafka_partition, start_offset),
  UNIQUE KEY no_overlap_end (hive_database, topic, kafka_partition, end_offset),
  KEY by_batch (hive_database, batch_id),
  CONSTRAINT offsets_ordered CHECK (end_offset > start_offset),
  CONSTRAINT rows_add_up CHECK (enriched_rows + quarantined_rows = end_offset - start_offset)
) ENGINE=InnoDB
"""

OWNER_DDL = """
CREATE TABLE IF NOT EXISTS hive_database_writer (
  hive_database VARCHAR(128) NOT NULL PRIMARY KEY,
  writer        VARCHAR(64)  NOT NULL,
  claimed_at    DATETIME(3)  NOT NULL
) ENGINE=InnoDB
"""


class LedgerConflict(RuntimeError):
    """The ledger moved under us: another writer committed the same offsets."""


class WriterConflict(RuntimeError):
    """A second kind of writer (Dagster micro-batches vs the streaming job) claimed a database."""


@dataclass(frozen=True)
class PartitionCommit:
    offset_range: OffsetRange
    enriched_rows: int
    quarantined_rows: int


@dataclass(frozen=True)
class LedgerTotals:
    consumed: int
    enriched: int
    quarantined: int
    batches: int


class BatchLedger:
    def __init__(self, connect: Connect, hive_database: str) -> None:
        self._connect = connect
        self.hive_database = hive_database

    def ensure_table(self) -> None:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(LEDGER_DDL)
            cursor.execute(OWNER_DDL)
            # Ledgers created before visible_at existed get the column added once.
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = "
                "DATABASE() AND table_name = 'microbatch_ledger' AND column_name = 'visible_at'"
            )
            if cursor.fetchone()[0] == 0:
                cursor.execute(
                    "ALTER TABLE microbatch_ledger ADD COLUMN visible_at DATETIME(3) NULL"
                )

    def claim(self, writer: str) -> None:
        """Make `writer` the only kind of writer of this Hive database, or refuse clearly."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "INSERT IGNORE INTO hive_database_writer VALUES (%s, %s, %s)",
                (self.hive_database, writer, _now()),
            )
            cursor.execute(
                "SELECT writer FROM hive_database_writer WHERE hive_database = %s",
                (self.hive_database,),
            )
            (owner,) = cursor.fetchone()
        if owner != writer:
            raise WriterConflict(
                f"Hive database {self.hive_database!r} is written by the {owner!r} path; the "
                f"{writer!r} path refuses to write there too (it would double-count). Point one "
                "of them at another database (BERKA_HIVE_DATABASE / BERKA_STREAM_HIVE_DATABASE)."
            )

    def frontiers(self, topic: str) -> dict[int, int]:
        """Per partition, the end of the committed offsets (the next offset to process)."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT kafka_partition, MAX(end_offset) FROM microbatch_ledger "
                "WHERE hive_database = %s AND topic = %s GROUP BY kafka_partition",
                (self.hive_database, topic),
            )
            return {int(partition): int(end) for partition, end in cursor.fetchall()}

    def committed_batch_ids(self) -> set[str]:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT batch_id FROM microbatch_ledger WHERE hive_database = %s",
                (self.hive_database,),
            )
            return {row[0] for row in cursor.fetchall()}

    def commit(self, batch_id: str, commits: Iterable[PartitionCommit]) -> None:
        """Record a batch in one transaction, refusing if any range is no longer contiguous."""
        commits = list(commits)
        now = _now()
        with self._connect() as connection, connection.cursor() as cursor:
            for commit in commits:
                offset_range = commit.offset_range
                # Lock the partition's frontier so two writers cannot both pass this check.
                cursor.execute(
                    "SELECT COALESCE(MAX(end_offset), -1) FROM microbatch_ledger "
                    "WHERE hive_database = %s AND topic = %s AND kafka_partition = %s FOR UPDATE",
                    (self.hive_database, offset_range.topic, offset_range.partition),
                )
                (frontier,) = cursor.fetchone()
                if frontier != -1 and frontier != offset_range.start:
                    raise LedgerConflict(
                        f"{offset_range.topic}[{offset_range.partition}] is committed up to "
                        f"{frontier}, but batch {batch_id} starts at {offset_range.start}."
                    )
                cursor.execute(
                    "INSERT INTO microbatch_ledger (hive_database, topic, kafka_partition, "
                    "start_offset, end_offset, batch_id, enriched_rows, quarantined_rows, "
                    "committed_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (self.hive_database, offset_range.topic, offset_range.partition,
                     offset_range.start, offset_range.end, batch_id, commit.enriched_rows,
                     commit.quarantined_rows, now),
                )

    def compact(self, batch_ids: list[str], into: str, enriched_rows: int,
                quarantined_rows: int) -> None:
        """Make batch `into` stand for `batch_ids` in one transaction, refusing unless it holds
        exactly their rows. From then on the partitions of `batch_ids` are uncommitted, and the
        next prepare drops any a crash left behind."""
        marks = ", ".join(["%s"] * len(batch_ids))
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(enriched_rows), 0), COALESCE(SUM(quarantined_rows), 0) "
                f"FROM microbatch_ledger WHERE hive_database = %s AND batch_id IN ({marks}) "
                "FOR UPDATE",
                (self.hive_database, *batch_ids),
            )
            expected = tuple(int(n) for n in cursor.fetchone())
            if expected != (enriched_rows, quarantined_rows):
                raise LedgerConflict(
                    f"compacting {len(batch_ids)} batches into {into}: the ledger has "
                    f"{expected[0]} enriched and {expected[1]} quarantined rows for them, the "
                    f"compacted partition {enriched_rows} and {quarantined_rows}; not compacted."
                )
            cursor.execute(
                f"UPDATE microbatch_ledger SET batch_id = %s WHERE hive_database = %s "
                f"AND batch_id IN ({marks})",
                (into, self.hive_database, *batch_ids),
            )

    def mark_visible(self, batch_ids: Iterable[str] | None = None) -> None:
        """The trend tables were just rebuilt from every committed batch (or from those of
        `batch_ids` and earlier ones): they are visible now (where their records' latency ends)."""
        only = ""
        parameters: tuple = (_now(), self.hive_database)
        if batch_ids is not None:
            batch_ids = list(batch_ids)
            if not batch_ids:
                return
            only = f" AND batch_id IN ({', '.join(['%s'] * len(batch_ids))})"
            parameters += tuple(batch_ids)
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE microbatch_ledger SET visible_at = %s "
                f"WHERE hive_database = %s AND visible_at IS NULL{only}",
                parameters,
            )

    def invisible_batches(self) -> int:
        """Committed batches not yet reflected in the trend tables."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM microbatch_ledger "
                "WHERE hive_database = %s AND visible_at IS NULL",
                (self.hive_database,),
            )
            return int(cursor.fetchone()[0])

    def visibility(self) -> dict[str, dt.datetime]:
        """batch_id -> when its records became visible in the trend tables."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT batch_id, MAX(visible_at) FROM microbatch_ledger "
                "WHERE hive_database = %s AND visible_at IS NOT NULL GROUP BY batch_id",
                (self.hive_database,),
            )
            return dict(cursor.fetchall())

    def totals(self, topic: str) -> LedgerTotals:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(end_offset - start_offset), 0), "
                "COALESCE(SUM(enriched_rows), 0), COALESCE(SUM(quarantined_rows), 0), "
                "COUNT(DISTINCT batch_id) FROM microbatch_ledger "
                "WHERE hive_database = %s AND topic = %s",
                (self.hive_database, topic),
            )
            consumed, enriched, quarantined, batches = cursor.fetchone()
        return LedgerTotals(int(consumed), int(enriched), int(quarantined), int(batches))

    def last_commit(self) -> dt.datetime | None:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT MAX(committed_at) FROM microbatch_ledger WHERE hive_database = %s",
                (self.hive_database,),
            )
            (value,) = cursor.fetchone()
        return value

    def reset(self) -> None:
        """Forget every batch of this Hive database (used when its tables are dropped)."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM microbatch_ledger WHERE hive_database = %s", (self.hive_database,)
            )
            cursor.execute(
                "DELETE FROM hive_database_writer WHERE hive_database = %s",
                (self.hive_database,),
            )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
