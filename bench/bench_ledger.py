"""The ledger's questions of every batch and tick, as its rows grow over days of triggers.

The streaming job adds a ledger row per partition per trigger (three a second with 1-s
triggers: 260k a day). This fills a throw-away MySQL database with --rows such rows (all
visible but the last batch's) and times the ledger calls a batch or a sensor tick makes, with
and without the indexes on visible_at and committed_at (ledger.LEDGER_INDEXES), and prints the
ratio. Needs MariaDB of the local stack (`berka-stack up`).

    python bench/bench_ledger.py --rows 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable

from berka_assets.resources.mysql import MySQLResource
from berka_core.config import get_settings, load_secrets_into_environment, secret
from berka_core.spark_jobs.ledger import LEDGER_INDEXES, BatchLedger

PARTITIONS = 3
CHUNK = 10_000


def fill(mysql: MySQLResource, rows: int) -> None:
    """`rows` committed ranges of one Hive database, three partitions, all visible but the
    last batch's."""
    batches = rows // PARTITIONS
    with mysql.connect() as connection, connection.cursor() as cursor:
        for first in range(0, batches, CHUNK):
            values = [("db", "t", p, b * 10, b * 10 + 10, f"b{b}", 10, 0,
                       None if b == batches - 1 else "2026-01-01")
                      for b in range(first, min(first + CHUNK, batches))
                      for p in range(PARTITIONS)]
            cursor.executemany(
                "INSERT INTO microbatch_ledger (hive_database, topic, kafka_partition, "
                "start_offset, end_offset, batch_id, enriched_rows, quarantined_rows, "
                "committed_at, visible_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,NOW(3),%s)", values)
            connection.commit()


def timed(call: Callable[[], object], repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(ledger: BatchLedger, repeat: int) -> dict[str, float]:
    return {
        "invisible_batches (sensor tick)": timed(ledger.invisible_batches, repeat),
        "mark_visible() (micro-batch)": timed(ledger.mark_visible, repeat),
        "last_commit (checks, soak)": timed(ledger.last_commit, repeat),
        "frontiers, scanned (no partitions given)": timed(lambda: ledger.frontiers("t"),
                                                           repeat),
        "frontiers of 3 partitions (every batch)": timed(
            lambda: ledger.frontiers("t", range(PARTITIONS)), repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load_secrets_into_environment()
    settings = get_settings()
    database = f"berka_test_bench_{uuid.uuid4().hex[:6]}"
    admin = MySQLResource(password=secret(settings.mysql.password_env))
    with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"{args.rows:,} ledger rows")
    try:
        mysql = MySQLResource(database=database, password=admin.password)
        ledger = BatchLedger(mysql.connect, "db")
        ledger.ensure_table()
        started = time.monotonic()
        fill(mysql, args.rows)
        print(f"  filled in {time.monotonic() - started:.1f} s")
        with_indexes = measure(ledger, args.repeat)
        with mysql.connect(autocommit=True) as connection, connection.cursor() as cursor:
            for name in LEDGER_INDEXES:
                cursor.execute(f"ALTER TABLE microbatch_ledger DROP INDEX {name}")
        without = measure(ledger, args.repeat)
    finally:
        with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{database}`")
    print(f"  {'call':34} {'no index':>10} {'indexed':>10} {'ratio':>7}")
    for call, seconds in with_indexes.items():
        print(f"  {call:34} {without[call] * 1000:8.1f}ms {seconds * 1000:8.1f}ms "
              f"{without[call] / seconds:6.1f}x")


if __name__ == "__main__":
    main()
