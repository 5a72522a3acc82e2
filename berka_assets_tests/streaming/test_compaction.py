"""Delta maintenance on the real stack: every N batches the sensor's maintenance run (the
streaming job: its maintenance thread) compacts the appended files (OPTIMIZE) and deletes what
no version within the retention reads (VACUUM); file counts stay bounded, the trends exact."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from berka_assets.jobs.maintenance import MAINTENANCE_TAG
from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import (
    Pipeline,
    as_plain,
    reset_spark_client,
    spark_session,
)
from berka_assets_tests.streaming.test_exactly_once import (
    POISON,
    SAMPLE,
    SAMPLE_TRANS,
    _run_in_background,
    _start_with_retries,
)
from berka_assets_tests.streaming.test_streaming_job import StreamRun
from berka_core.config import Settings
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_stack import process
from berka_stack.spark import SparkConnectServer, StreamingJob

pytestmark = pytest.mark.integration

MAINTAIN_EVERY = 3


def _assert_exact(spark, pipeline: Pipeline, good: int, quarantined: int) -> None:
    assert as_plain(pipeline.trends(spark)) == independent.trends(
        SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, good))
    assert pipeline.counts(spark) == (good, quarantined)
    totals = pipeline.ledger().totals(pipeline.topic)
    assert (totals.consumed, totals.enriched, totals.quarantined) == (
        good + quarantined, good, quarantined)
    tables = HiveTables(pipeline.hive_database)
    repeats = spark.sql(f"SELECT trans_id FROM {tables.enriched} GROUP BY trans_id "
                        "HAVING COUNT(*) > 1").count()
    assert repeats == 0


def _compactions_since(spark, table: str, version: int) -> int:
    """OPTIMIZE commits after `version` that replaced several files by fewer."""
    history = spark.sql(f"DESCRIBE HISTORY {table}").where(
        f"operation = 'OPTIMIZE' AND version > {version}").collect()
    return sum(int(row.operationMetrics["numRemovedFiles"])
               > int(row.operationMetrics["numAddedFiles"]) for row in history)


def _files_on_disk(spark, table: str) -> int:
    location = spark.sql(f"DESCRIBE DETAIL {table}").first()["location"].removeprefix("file:")
    return len(list(Path(location).glob("*.parquet")))


@pytest.fixture
def pipeline(stack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BERKA_DELTA_MAINTAIN_EVERY_BATCHES", str(MAINTAIN_EVERY))
    # No retention: VACUUM then deletes every file the current version does not read (a real
    # deployment keeps hours, so that a running reader's snapshot stays readable).
    monkeypatch.setenv("BERKA_DELTA_RETENTION_HOURS", "0")
    monkeypatch.setenv("BERKA_DELTA_VACUUM_EVERY_HOURS", "0")  # at every maintenance
    pipeline = Pipeline(stack, SAMPLE, max_records=300)
    yield pipeline
    pipeline.drop(spark_session(stack))


def _maintenance_step_started(pipeline: Pipeline) -> bool:
    runs = pipeline.instance.get_runs(filters=dg.RunsFilter(
        tags={MAINTENANCE_TAG: pipeline.hive_database}, statuses=[dg.DagsterRunStatus.STARTED]))
    return any(pipeline.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_START).records for run in runs)


@pytest.mark.slow
def test_kill_9_of_spark_during_a_maintenance_run_then_batches_stay_exact(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor asks for a maintenance run after every batch; the Spark server is killed
    while one runs OPTIMIZE/VACUUM. The maintenance fails, nothing of the data does: later
    batches and maintenances go on, and every record is counted once."""
    monkeypatch.setenv("BERKA_DELTA_MAINTAIN_EVERY_BATCHES", "1")
    monkeypatch.setenv("BERKA_DELTA_RETENTION_HOURS", "0")
    monkeypatch.setenv("BERKA_DELTA_VACUUM_EVERY_HOURS", "0")
    pipeline = Pipeline(stack, SAMPLE, max_records=600, run_per="tick")
    try:
        pipeline.produce_file(SAMPLE_TRANS, limit=600)
        first = pipeline.tick()
        pipeline.cursor = first.cursor
        (batch,) = first.run_requests  # no batch planned before it: no maintenance yet
        assert pipeline.execute(batch).success
        idle = pipeline.tick()  # no new offsets, one batch since the last maintenance
        pipeline.cursor = idle.cursor
        (maintenance,) = idle.run_requests
        assert maintenance.job_name == "delta_maintenance_job", idle.run_requests
        thread, outcome = _run_in_background(pipeline, maintenance)
        deadline = time.monotonic() + 120
        while not _maintenance_step_started(pipeline):
            assert thread.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.05)
        time.sleep(1)  # into OPTIMIZE (a maintenance of these tables takes 10 s or more)
        server = SparkConnectServer(stack)
        killed = server.kill()
        assert not process.pid_alive(killed)
        _start_with_retries(server)
        thread.join(300)
        assert outcome and not outcome[0].success, "the maintenance finished before the kill"
        reset_spark_client()

        pipeline.produce_file(SAMPLE_TRANS, limit=3_000, skip=600)
        pipeline.drain()  # more batches, each followed by a maintenance run
        spark = spark_session(stack)
        _assert_exact(spark, pipeline, 3_000, 0)
        tables = HiveTables(pipeline.hive_database)
        history = spark.sql(f"DESCRIBE HISTORY {tables.enriched}").collect()
        assert any(row.operation == "OPTIMIZE" for row in history), history
        assert _files_on_disk(spark, tables.enriched) == tables.file_count(spark, tables.enriched)
    finally:
        pipeline.drop(spark_session(stack))


@pytest.mark.slow
def test_tables_are_compacted_and_vacuumed_and_trends_stay_exact(pipeline: Pipeline) -> None:
    good = 3_000  # ~10 batches of <= 300 records over 3 partitions, poison in between
    pipeline.produce_file(SAMPLE_TRANS, limit=1_200)
    pipeline.drain()
    pipeline.produce_raw(POISON)
    pipeline.drain()
    pipeline.produce_file(SAMPLE_TRANS, limit=good, skip=1_200)
    pipeline.drain()
    spark = spark_session(pipeline.settings)
    _assert_exact(spark, pipeline, good, len(POISON))
    batches = pipeline.ledger().totals(pipeline.topic).batches
    assert batches > 3 * MAINTAIN_EVERY
    tables = HiveTables(pipeline.hive_database)
    history = spark.sql(f"DESCRIBE HISTORY {tables.enriched}").collect()
    assert sum(row.operation == "OPTIMIZE" for row in history) >= 2, history
    # Compacted: fewer files than batches appended, and at most the appends since the last
    # maintenance beside the compacted file.
    files = tables.file_count(spark, tables.enriched)
    assert files < batches and files <= 1 + MAINTAIN_EVERY * 3, files
    # Vacuumed: on disk only what some version within the retention (none) reads.
    assert tables.maintain(spark).vacuumed == (tables.enriched, tables.quarantine, tables.cube)
    assert _files_on_disk(spark, tables.enriched) == tables.file_count(spark, tables.enriched)
    assert _files_on_disk(spark, tables.cube) == tables.file_count(spark, tables.cube) == 1
    _assert_exact(spark, pipeline, good, len(POISON))


MAINTENANCE_STARTS = "Delta maintenance starting"
MAINTENANCE_ENDS = "Delta maintenance: compacted"
MAINTENANCE_FAILS = "Delta maintenance failed"


@pytest.mark.slow
def test_kill_9_of_the_streaming_job_during_its_maintenance_loses_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    """The job's maintenance thread is killed with the job in the middle of OPTIMIZE/VACUUM;
    restarted, the job goes on, compacts again, and every record is counted once."""
    pipeline = Pipeline(stack, SAMPLE, max_records=1_000)
    run = StreamRun(stack, pipeline, tmp_path / "checkpoint", max_offsets_per_trigger=500,
                    maintenance_minutes=0.05)
    log = run.job.log_path()
    earlier = log.stat().st_size if log.exists() else 0  # the log is appended across runs

    def logged(text: str) -> int:
        with log.open("rb") as handle:
            handle.seek(earlier)
            return handle.read().decode(errors="replace").count(text)

    def in_flight() -> int:
        return (logged(MAINTENANCE_STARTS) - logged(MAINTENANCE_ENDS)
                - logged(MAINTENANCE_FAILS))

    def wait_until(condition, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"{what}:\n{process.tail(log)}"
            time.sleep(0.02)

    spark = spark_session(stack)
    try:
        pipeline.produce_file(SAMPLE_TRANS, limit=4_000)
        run.job.start()
        run.wait_for(4_000)
        wait_until(lambda: in_flight() == 1, "no maintenance started")
        killed = run.job.kill()
        assert not process.pid_alive(killed)
        assert in_flight() == 1, "the maintenance ended before the kill"

        tables = HiveTables(run.stream.hive_database)
        restarted_at = tables.version(spark, tables.enriched)
        run.job = StreamingJob(stack, *run.job.extra_args)
        run.job.start()
        pipeline.produce_file(SAMPLE_TRANS, limit=6_000, skip=4_000)
        run.wait_for(6_000)
        # Compacts again: an OPTIMIZE committed after the restart that merged files. (How many
        # files remain at one instant depends on how the interval falls between triggers.)
        wait_until(lambda: _compactions_since(spark, tables.enriched, restarted_at) > 0,
                   "no compaction after the restart")

        assert run.stream.counts(spark) == (6_000, 0)
        assert as_plain(run.stream.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, 6_000))
        run.job.stop()
        # Tables younger than the retention (24 h): VACUUM could delete nothing, so it is skipped.
        assert tables.maintain(spark).vacuumed == ()
        assert tables.file_count(spark, tables.enriched) == 1
    finally:
        run.job.stop()
        pipeline.drop(spark)
        run.stream.drop(spark)
