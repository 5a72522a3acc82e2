"""The MySQL ledger of an earlier release is brought up to date in place (real MariaDB)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest

from berka_assets.resources.mysql import MySQLResource
from berka_core.config import Settings, secret
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.ledger import BatchLedger, PartitionCommit
from berka_core.spark_jobs.stream_metrics import StreamMetrics

pytestmark = pytest.mark.integration

# The tables as the first Delta release created them: a plan with a Delta transaction id, and
# a ledger from before visible_at and its indexes, the streaming job's progress reports from
# before their time index.
EARLIER_TABLES = [
    """CREATE TABLE microbatch_plan (
      hive_database VARCHAR(128) NOT NULL PRIMARY KEY, delta_app_id VARCHAR(64) NOT NULL,
      batch_seq BIGINT NOT NULL, batch_id VARCHAR(255) NULL, ranges TEXT NULL,
      planned_at DATETIME(3) NOT NULL) ENGINE=InnoDB""",
    """CREATE TABLE microbatch_ledger (
      hive_database VARCHAR(128) NOT NULL, topic VARCHAR(249) NOT NULL,
      kafka_partition INT NOT NULL, start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL,
      batch_id VARCHAR(255) NOT NULL, enriched_rows BIGINT NOT NULL,
      quarantined_rows BIGINT NOT NULL, committed_at DATETIME(3) NOT NULL,
      PRIMARY KEY (hive_database, topic, kafka_partition, start_offset)) ENGINE=InnoDB""",
    """CREATE TABLE streaming_progress (
      id BIGINT AUTO_INCREMENT PRIMARY KEY, hive_database VARCHAR(128) NOT NULL,
      batch_epoch BIGINT NOT NULL, reported_at DATETIME(3) NOT NULL, input_rows BIGINT NOT NULL,
      input_rows_per_second DOUBLE NULL, processed_rows_per_second DOUBLE NULL,
      offsets_behind_latest BIGINT NULL, batch_duration_ms BIGINT NULL, end_offsets TEXT NULL,
      KEY by_database (hive_database, id)) ENGINE=InnoDB""",
]


@pytest.fixture
def earlier_tables(stack: Settings) -> Iterator[MySQLResource]:
    """A scratch MySQL database holding the earlier release's tables."""
    password = secret(stack.mysql.password_env)
    name = f"berka_test_ledger_{uuid.uuid4().hex[:8]}"
    admin = MySQLResource(database=stack.mysql.database, password=password)
    with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        mysql = MySQLResource(database=name, password=password)
        with mysql.connect(autocommit=True) as connection, connection.cursor() as cursor:
            for ddl in EARLIER_TABLES:
                cursor.execute(ddl)
        yield mysql
    finally:
        with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _indexes(mysql: MySQLResource, table: str) -> set[str]:
    with mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT index_name FROM information_schema.statistics "
                       "WHERE table_schema = DATABASE() AND table_name = %s", (table,))
        return {row[0] for row in cursor.fetchall()}


def test_earlier_plan_and_ledger_tables_are_upgraded_and_work(
    earlier_tables: MySQLResource,
) -> None:
    mysql = earlier_tables
    assert not {"by_visibility", "by_commit_time"} & _indexes(mysql, "microbatch_ledger")
    ledger = BatchLedger(mysql.connect, "db")
    ledger.ensure_table()
    ledger.ensure_table()  # idempotent
    batch = [OffsetRange("t", 0, 0, 10)]
    plan = ledger.plan("t.p0-0-10", batch)
    assert ledger.pending() == plan
    ledger.commit("t.p0-0-10", [PartitionCommit(batch[0], 9, 1)])
    ledger.mark_visible()
    assert ledger.pending() is None and ledger.frontiers("t") == {0: 10}
    # Asked per partition (one index lookup each), a partition with no batch has no frontier.
    assert ledger.frontiers("t", [1, 0]) == {0: 10} and ledger.frontiers("t", []) == {}
    assert ledger.invisible_batches() == 0
    assert {"by_visibility", "by_commit_time"} <= _indexes(mysql, "microbatch_ledger")


def test_progress_reports_are_upgraded_and_pruned_to_the_retention(
    earlier_tables: MySQLResource,
) -> None:
    mysql = earlier_tables
    metrics = StreamMetrics(mysql.connect, "db")
    metrics.ensure_table()
    metrics.ensure_table()  # idempotent
    assert "by_time" in _indexes(mysql, "streaming_progress")
    for epoch in (1, 2, 3):
        metrics.record({"batchId": epoch, "numInputRows": 10})
    with mysql.connect() as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE streaming_progress SET reported_at = reported_at - INTERVAL 2 DAY "
                       "WHERE batch_epoch < 3")
    other = StreamMetrics(mysql.connect, "another_db")
    other.record({"batchId": 1, "numInputRows": 1})

    assert metrics.prune(dt.timedelta(hours=24)) == 2
    assert [row["batch_epoch"] for row in metrics.since(0)] == [3]
    assert len(other.since(0)) == 1  # another database's reports are its own
