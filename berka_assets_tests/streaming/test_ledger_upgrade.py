"""The MySQL ledger of an earlier release is brought up to date in place (real MariaDB)."""

from __future__ import annotations

import uuid

import pytest

from berka_assets.resources.mysql import MySQLResource
from berka_core.config import Settings, secret
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.ledger import BatchLedger, PartitionCommit

pytestmark = pytest.mark.integration

# The tables as the first Delta release created them: a plan with a Delta transaction id, and
# a ledger from before visible_at.
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
]


def test_earlier_plan_and_ledger_tables_are_upgraded_and_work(stack: Settings) -> None:
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
        ledger = BatchLedger(mysql.connect, "db")
        ledger.ensure_table()
        ledger.ensure_table()  # idempotent
        batch = [OffsetRange("t", 0, 0, 10)]
        plan = ledger.plan("t.p0-0-10", batch)
        assert ledger.pending() == plan
        ledger.commit("t.p0-0-10", [PartitionCommit(batch[0], 9, 1)])
        ledger.mark_visible()
        assert ledger.pending() is None and ledger.frontiers("t") == {0: 10}
        assert ledger.invisible_batches() == 0
    finally:
        with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
