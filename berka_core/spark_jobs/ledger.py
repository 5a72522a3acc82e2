"""The batch ledger: which Kafka offsets are committed to which Hive database, kept in MySQL.

Spark never commits Kafka offsets, so the offsets live here: per Hive database and Kafka
partition the committed ranges, whose end is where every batch starts (so re-runs, duplicate
ticks and overlapping ranges neither add nor skip a record), with each batch's counts and when
its records became visible.

A batch's rows go to Delta tables (hive_tables), which MySQL cannot commit together with. So a
batch is first *planned* here (`plan`: its ranges and a sequence number, one open plan per
database), then appended to the Delta tables, then committed here. A crash anywhere in between
leaves the plan open, and the next batch finishes exactly that plan first: the same offsets
written again in place of whatever rows of the batch a table committed, then the ledger commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from berka_core.spark_jobs.kafka_source import OffsetRange

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


PLAN_DDL = """
CREATE TABLE IF NOT EXISTS microbatch_plan (
  hive_database VARCHAR(128) NOT NULL PRIMARY KEY,
  batch_seq     BIGINT       NOT NULL,
  batch_id      VARCHAR(255) NULL,
  ranges        TEXT         NULL,
  planned_at    DATETIME(3)  NOT NULL
) ENGINE=InnoDB
"""


INCARNATION_DDL = """
CREATE TABLE IF NOT EXISTS kafka_topic_incarnation (
  hive_database VARCHAR(128) NOT NULL,
  topic         VARCHAR(249) NOT NULL,
  topic_id      VARCHAR(64)  NOT NULL,
  seen_since    DATETIME(3)  NOT NULL,
  PRIMARY KEY (hive_database, topic)
) ENGINE=InnoDB
"""


def archived_topic(topic: str, topic_id: str) -> str:
    """The ledger's name for the rows of an earlier incarnation of `topic` (kept as history)."""
    return f"{topic[:249 - len(topic_id) - 1]}@{topic_id}"


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
class BatchPlan:
    """A planned batch: its offsets, and its number in its database (1, 2, ...)."""

    batch_id: str
    ranges: list[OffsetRange]
    seq: int


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
            cursor.execute(PLAN_DDL)
            cursor.execute(INCARNATION_DDL)
            # Tables of earlier releases are brought up to date once: the ledger gained
            # visible_at; the plan table lost delta_app_id (replays replace their rows now).
            cursor.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE "
                "table_schema = DATABASE() AND ((table_name = 'microbatch_ledger' AND "
                "column_name = 'visible_at') OR (table_name = 'microbatch_plan' AND "
                "column_name = 'delta_app_id'))"
            )
            found = {tuple(row) for row in cursor.fetchall()}
            if ("microbatch_ledger", "visible_at") not in found:
                cursor.execute(
                    "ALTER TABLE microbatch_ledger ADD COLUMN visible_at DATETIME(3) NULL"
                )
            if ("microbatch_plan", "delta_app_id") in found:
                cursor.execute("ALTER TABLE microbatch_plan DROP COLUMN delta_app_id")
            add_missing_indexes(cursor, "microbatch_ledger", LEDGER_INDEXES)

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

    def follow_topic(self, topic: str, topic_id: str) -> str | None:
        """Record which incarnation of `topic` (Kafka's topic ID) this database consumes.

        When the ID changed, the topic was deleted and created again and its offsets started
        over: the old incarnation's ledger rows are kept as history under
        archived_topic(topic, old_id), so the new topic is processed from its first offset
        instead of being taken as committed up to the old frontier. An open plan over the old
        topic is closed: its records went with it, and finishing it would read the new topic's
        offsets. Returns the old ID then. Call it with no batch of this database in flight."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT topic_id FROM kafka_topic_incarnation "
                "WHERE hive_database = %s AND topic = %s FOR UPDATE",
                (self.hive_database, topic),
            )
            row = cursor.fetchone()
            if row is None:  # first sight: the rows so far belong to this incarnation
                cursor.execute(
                    "INSERT INTO kafka_topic_incarnation VALUES (%s, %s, %s, %s)",
                    (self.hive_database, topic, topic_id, _now()),
                )
                return None
            (known,) = row
            if known == topic_id:
                return None
            cursor.execute(
                "UPDATE microbatch_ledger SET topic = %s WHERE hive_database = %s AND topic = %s",
                (archived_topic(topic, known), self.hive_database, topic),
            )
            cursor.execute("SELECT ranges FROM microbatch_plan WHERE hive_database = %s "
                           "AND batch_id IS NOT NULL FOR UPDATE", (self.hive_database,))
            plan = cursor.fetchone()
            if plan is not None and any(r[0] == topic for r in json.loads(plan[0])):
                cursor.execute("UPDATE microbatch_plan SET batch_id = NULL, ranges = NULL "
                               "WHERE hive_database = %s", (self.hive_database,))
            cursor.execute(
                "UPDATE kafka_topic_incarnation SET topic_id = %s, seen_since = %s "
                "WHERE hive_database = %s AND topic = %s",
                (topic_id, _now(), self.hive_database, topic),
            )
            return known

    def frontiers(self, topic: str, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """Per partition, the end of the committed offsets (the next offset to process).

        Given the partitions asked about, one index lookup each; without, a scan of the
        topic's rows, which grow by one per partition and batch (260k a day of 1-s triggers)."""
        with self._connect() as connection, connection.cursor() as cursor:
            if partitions is None:
                cursor.execute(
                    "SELECT kafka_partition, MAX(end_offset) FROM microbatch_ledger "
                    "WHERE hive_database = %s AND topic = %s GROUP BY kafka_partition",
                    (self.hive_database, topic),
                )
                rows = cursor.fetchall()
            else:
                asked = sorted(set(partitions))
                if not asked:
                    return {}
                # MAX over the unique key's prefix: read off the index's last entry.
                cursor.execute(" UNION ALL ".join(
                    ["SELECT %s, (SELECT MAX(end_offset) FROM microbatch_ledger WHERE "
                     "hive_database = %s AND topic = %s AND kafka_partition = %s)"] * len(asked)),
                    [value for partition in asked
                     for value in (partition, self.hive_database, topic, partition)])
                rows = cursor.fetchall()
            return {int(partition): int(end) for partition, end in rows if end is not None}

    def pending(self) -> BatchPlan | None:
        """The planned batch not committed yet (a crash interrupted it), if any."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT batch_id, ranges, batch_seq FROM microbatch_plan "
                "WHERE hive_database = %s AND batch_id IS NOT NULL", (self.hive_database,))
            row = cursor.fetchone()
        if row is None:
            return None
        batch_id, ranges, seq = row
        return BatchPlan(batch_id, [OffsetRange(*r) for r in json.loads(ranges)], int(seq))

    def batch_seq(self) -> int:
        """The number of the database's latest planned batch (0: none yet)."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT batch_seq FROM microbatch_plan WHERE hive_database = %s",
                           (self.hive_database,))
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def plan(self, batch_id: str, ranges: list[OffsetRange]) -> BatchPlan:
        """Plan the next batch: the ranges must start at the committed frontiers, and no other
        plan may be open."""
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT batch_seq, batch_id FROM microbatch_plan "
                "WHERE hive_database = %s FOR UPDATE", (self.hive_database,))
            row = cursor.fetchone()
            if row is not None and row[1] is not None:
                raise LedgerConflict(
                    f"batch {row[1]} of Hive database {self.hive_database!r} is planned and not "
                    f"committed; it must be finished before batch {batch_id}.")
            for offset_range in ranges:
                frontier = self._frontier(cursor, offset_range)
                if frontier != -1 and frontier != offset_range.start:
                    raise LedgerConflict(
                        f"{offset_range.topic}[{offset_range.partition}] is committed up to "
                        f"{frontier}, but batch {batch_id} starts at {offset_range.start}.")
            seq = int(row[0]) + 1 if row else 1
            encoded = json.dumps([[r.topic, r.partition, r.start, r.end] for r in ranges])
            cursor.execute(
                "REPLACE INTO microbatch_plan (hive_database, batch_seq, batch_id, ranges, "
                "planned_at) VALUES (%s, %s, %s, %s, %s)",
                (self.hive_database, seq, batch_id, encoded, _now()))
        return BatchPlan(batch_id, list(ranges), seq)

    def _frontier(self, cursor: Any, offset_range: OffsetRange) -> int:
        # Locks the partition's frontier so two writers cannot both pass a check against it.
        cursor.execute(
            "SELECT COALESCE(MAX(end_offset), -1) FROM microbatch_ledger "
            "WHERE hive_database = %s AND topic = %s AND kafka_partition = %s FOR UPDATE",
            (self.hive_database, offset_range.topic, offset_range.partition),
        )
        return int(cursor.fetchone()[0])

    def commit(self, batch_id: str, commits: Iterable[PartitionCommit]) -> None:
        """Record a batch in one transaction, refusing if any range is no longer contiguous;
        its plan, if it has one, is closed in the same transaction."""
        commits = list(commits)
        now = _now()
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE microbatch_plan SET batch_id = NULL, ranges = NULL "
                "WHERE hive_database = %s AND batch_id = %s", (self.hive_database, batch_id))
            for commit in commits:
                offset_range = commit.offset_range
                frontier = self._frontier(cursor, offset_range)
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
                "SELECT COUNT(DISTINCT batch_id) FROM microbatch_ledger "
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
            cursor.execute(
                "DELETE FROM microbatch_plan WHERE hive_database = %s", (self.hive_database,)
            )
            cursor.execute(
                "DELETE FROM kafka_topic_incarnation WHERE hive_database = %s",
                (self.hive_database,),
            )


# A job that runs for days adds rows every trigger: the questions asked every batch or tick
# (which batches are not visible yet, the last commit) must not scan them all. Created by
# ensure_table for new and earlier tables alike, so they are defined only here.
LEDGER_INDEXES = {"by_visibility": "(hive_database, visible_at)",
                  "by_commit_time": "(hive_database, committed_at)"}


def add_missing_indexes(cursor: Any, table: str, indexes: dict[str, str]) -> None:
    """Add the indexes a table of an earlier release lacks (MySQL 8 has no ADD INDEX IF NOT
    EXISTS, so information_schema is asked)."""
    cursor.execute(
        "SELECT DISTINCT index_name FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = %s", (table,))
    present = {row[0] for row in cursor.fetchall()}
    for name, columns in indexes.items():
        if name not in present:
            cursor.execute(f"ALTER TABLE {table} ADD INDEX {name} {columns}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
