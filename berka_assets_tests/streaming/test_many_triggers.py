"""The streaming job's database stays bounded over 3,600 triggers ([tables]): the data files of
its enriched table's snapshot stay few, and its restart time does not grow.

3,600 real triggers take about an hour on two cores, so their commits are simulated: a Delta
writer outside Spark (delta-rs, the `deltalake` package: the same Delta protocol, tens of
milliseconds a commit) appends one small file to `enriched_transactions` and rewrites
`trend_cube` per trigger, the two commits a trigger of the job makes, while the real job runs
beside them. What is measured is the product: its maintenance thread's OPTIMIZE keeps the
snapshot small under that rate, Delta's checkpoints keep the log a start replays short, and a
restart (start to ready: the committed state loaded, the trends written) takes no longer after
3,600 triggers than after a few.

Not simulated: the ledger's rows (bench/bench_ledger.py measures its questions at 300k rows) and
Spark's own streaming checkpoint (it keeps spark.sql.streaming.minBatchesToRetain batches).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from berka_assets_tests.streaming.harness import Pipeline, spark_session
from berka_assets_tests.streaming.test_compaction import _compactions_since
from berka_assets_tests.streaming.test_streaming_job import SAMPLE, SAMPLE_TRANS, StreamRun
from berka_core.config import Settings
from berka_core.spark_jobs.hive_tables import HiveTables

pytestmark = pytest.mark.integration

TRIGGERS = 3_600
REAL_RECORDS = 300
FIRST_SIMULATED_ID = 10**9  # far above the data set's trans_ids


def _location(spark, table: str) -> str:
    return spark.sql(f"DESCRIBE DETAIL {table}").first()["location"]


def _trigger_rows(schema: pa.Schema, trigger: int) -> pa.Table:
    """One record, as a trigger of the job writes it (valid, enriched)."""
    row = dict.fromkeys(schema.names)
    row.update(trans_id=FIRST_SIMULATED_ID + trigger, account_id=1, year=1995,
               month=1 + trigger % 12, type="PRIJEM", amount=Decimal("10.00"),
               balance=Decimal("100.00"), district_id=1, client_id=1, gender="F", age=35,
               age_band="35-44", kafka_partition=0, kafka_offset=trigger,
               sent_at_ms=int(time.time() * 1000), batch_id=f"simulated-{trigger}")
    return pa.Table.from_pylist([row], schema=schema)


def _cube_rows(schema: pa.Schema, triggers: int) -> pa.Table:
    return pa.Table.from_pylist([{"year": 1995, "month": 1, "age_band": "35-44", "gender": "F",
                                  "transaction_count": triggers,
                                  "transaction_amount": Decimal("10.00") * triggers}],
                                schema=schema)


def _simulate_triggers(spark, tables: HiveTables, triggers: int) -> list[int]:
    """`triggers` appends and cube rewrites; the snapshot's file count every 300 triggers."""
    enriched = DeltaTable(_location(spark, tables.enriched))
    cube = DeltaTable(_location(spark, tables.cube))
    enriched_schema = pa.schema(enriched.schema().to_arrow())
    cube_schema = pa.schema(cube.schema().to_arrow())
    files = []
    for trigger in range(triggers):
        write_deltalake(enriched, _trigger_rows(enriched_schema, trigger), mode="append")
        write_deltalake(cube, _cube_rows(cube_schema, trigger + 1), mode="overwrite")
        if trigger % 300 == 299:
            files.append(tables.file_count(spark, tables.enriched))
    return files


def _timed_start(run: StreamRun) -> float:
    started = time.monotonic()
    run.job.start()  # returns once the query runs: committed state loaded, trends written
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 7,200 commits, three starts of the job: over 600 s on CI
def test_3600_triggers_keep_the_file_count_and_the_restart_time_flat(
    stack: Settings, tmp_path: Path
) -> None:
    pipeline = Pipeline(stack, SAMPLE, max_records=1_000)
    run = StreamRun(stack, pipeline, tmp_path / "checkpoint", maintenance_minutes=0.25)
    tables = HiveTables(run.stream.hive_database)
    spark = spark_session(stack)
    try:
        pipeline.produce_file(SAMPLE_TRANS, limit=REAL_RECORDS)
        run.job.start()
        run.wait_for(REAL_RECORDS)
        run.job.stop()
        restart_before = _timed_start(run)

        files = _simulate_triggers(spark, tables, TRIGGERS)
        last_trigger = tables.version(spark, tables.enriched)
        deadline = time.monotonic() + 120
        while not _compactions_since(spark, tables.enriched, last_trigger):
            assert time.monotonic() < deadline, "no compaction after the last trigger"
            time.sleep(1)
        compacted = tables.file_count(spark, tables.enriched)
        run.job.stop()
        restart_after = _timed_start(run)
        run.job.stop()

        print(f"restart {restart_before:.1f} s -> {restart_after:.1f} s after {TRIGGERS:,} "
              f"triggers; snapshot files every 300 triggers {files}, {compacted} compacted")
        # The job's compaction kept up while triggers came: the snapshot never held more than
        # a fraction of them, and after its next run a couple of files hold all of them.
        assert max(files) < TRIGGERS / 4 and compacted <= 2, (files, compacted)
        assert restart_after <= 1.5 * restart_before, (restart_before, restart_after)
        # The restart loaded every committed record once and wrote the trends from them.
        expected = REAL_RECORDS + TRIGGERS
        assert run.stream.counts(spark) == (expected, 0)
        assert spark.sql(f"SELECT SUM(transaction_count) FROM {tables.cube}").first()[0] == (
            expected)
        assert spark.sql(f"SELECT COUNT(DISTINCT trans_id) FROM {tables.enriched}").first()[0] == (
            expected)
    finally:
        run.job.stop()
        pipeline.drop(spark)
        run.stream.drop(spark)
