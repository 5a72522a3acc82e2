"""spark_streaming/job.py under spark-submit, against the real stack: same results, exactly once."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from berka_assets.config import REPO_ROOT, Settings
from berka_assets.sensors.streaming_health import build_streaming_health_sensor
from berka_assets.spark_jobs.hive_tables import HiveTables
from berka_assets.spark_jobs.ledger import WriterConflict
from berka_assets.stack import process
from berka_assets.stack.spark import StreamingJob
from berka_assets_tests import independent
from berka_assets_tests.streaming.harness import Pipeline, as_plain, encode, spark_session

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "data" / "berka"
SAMPLE_TRANS = SAMPLE / "trans_prefix.asc"


class StreamRun:
    """One streaming job over a Pipeline's topic, into its own Hive database."""

    def __init__(self, stack: Settings, pipeline: Pipeline, checkpoint: Path) -> None:
        self.pipeline = pipeline
        self.stream = Pipeline(stack, SAMPLE, topic=pipeline.topic)  # its own Hive database
        self.job = StreamingJob(
            stack,
            "--topic", pipeline.topic,
            "--hive-database", self.stream.hive_database,
            "--checkpoint", str(checkpoint),
            "--trigger-seconds", "1",
            "--max-offsets-per-trigger", "3000",
        )

    def wait_for(self, consumed: int, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ledger = self.stream.ledger()
            if (ledger.totals(self.pipeline.topic).consumed >= consumed
                    and ledger.invisible_batches() == 0):
                return
            assert self.job.pid() is not None, process.tail(self.job.log_path())
            time.sleep(0.5)
        raise AssertionError(f"stream did not consume {consumed} offsets in {timeout} s:\n"
                             + process.tail(self.job.log_path()))


@pytest.fixture
def stream_run(stack: Settings, tmp_path: Path) -> Iterator[StreamRun]:
    pipeline = Pipeline(stack, SAMPLE, max_records=5_000)
    run = StreamRun(stack, pipeline, tmp_path / f"checkpoint-{uuid.uuid4().hex[:6]}")
    yield run
    run.job.stop()
    spark = spark_session(stack)
    pipeline.drop(spark)
    run.stream.drop(spark)


def test_stream_equals_microbatch_and_independent_computation(
    stack: Settings, stream_run: StreamRun
) -> None:
    sent = 12_000
    stream_run.pipeline.produce_file(SAMPLE_TRANS, limit=sent)
    stream_run.job.start()
    stream_run.pipeline.drain()  # the Dagster path over the same topic
    stream_run.wait_for(sent)
    spark = spark_session(stack)
    expected = independent.trends(SAMPLE, SAMPLE_TRANS,
                                  _first_ids(SAMPLE_TRANS, sent))
    assert as_plain(stream_run.stream.trends(spark)) == expected
    assert as_plain(stream_run.pipeline.trends(spark)) == expected
    assert stream_run.stream.counts(spark) == (sent, 0)
    # Its health reaches Dagster as observations of the streaming job's asset.
    sensor = build_streaming_health_sensor(stream_run.stream.hive_database)
    with dg.build_sensor_context(resources=stream_run.stream.resources) as context:
        result = sensor(context)
    observed = [event.metadata for event in result.asset_events]
    assert observed and sum(m["input_rows"].value for m in observed) >= sent
    assert max(m["processed_rows_per_second"].value for m in observed) > 0
    assert "offsets_behind_latest" in observed[-1]
    # The two paths own their databases: the Dagster path may not write the stream's.
    with pytest.raises(WriterConflict, match="spark-streaming"):
        stream_run.stream.ledger().claim("dagster-microbatch")


def test_kill_9_mid_stream_then_restart_from_checkpoint(
    stack: Settings, stream_run: StreamRun
) -> None:
    first, second = 9_000, 15_000
    stream_run.pipeline.produce_file(SAMPLE_TRANS, limit=first)
    stream_run.job.start()
    stream_run.wait_for(3_000)  # at least one batch committed, more in flight
    stream_run.job.kill()  # kill -9, wherever it is
    stream_run.pipeline.produce_raw([b"{broken", b"", b"x" * 70_000])  # poison meanwhile
    stream_run.job = StreamingJob(stack, *stream_run.job.extra_args)
    stream_run.job.start()  # resumes from the checkpoint
    stream_run.pipeline.produce_file(SAMPLE_TRANS, limit=second)  # 9,000 re-sent + 6,000 new
    stream_run.wait_for(first + 3 + second)
    assert stream_run.job.pid() is not None, "poison must not stop the query"
    spark = spark_session(stack)
    assert stream_run.stream.counts(spark) == (second, first + 3)
    assert as_plain(stream_run.stream.trends(spark)) == independent.trends(
        SAMPLE, SAMPLE_TRANS, _first_ids(SAMPLE_TRANS, second)
    )


def test_reference_tables_refresh_without_a_restart(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account added to MySQL while the job runs is known after the refresh interval."""
    reference_db = f"berka_test_{uuid.uuid4().hex[:10]}"
    pipeline = Pipeline(stack, SAMPLE, mysql_database=reference_db)
    pipeline.load_reference()
    monkeypatch.setenv("BERKA_MYSQL_DATABASE", reference_db)  # the job's reference and ledger
    stream = Pipeline(stack, SAMPLE, topic=pipeline.topic, mysql_database=reference_db)
    job = StreamingJob(stack, "--topic", pipeline.topic, "--hive-database", stream.hive_database,
                       "--checkpoint", str(tmp_path / "checkpoint"), "--trigger-seconds", "1",
                       "--reference-refresh-seconds", "2")
    new_account = 987_654
    message = {"account_id": new_account, "date": dt.date(1995, 5, 1), "type": "PRIJEM",
               "operation": "VKLAD", "amount": Decimal("10.00"), "balance": Decimal("10.00"),
               "k_symbol": None, "bank": None, "account": None}

    def send(trans_id: int) -> None:
        pipeline.produce_raw([encode({**message, "trans_id": trans_id})],
                             key=str(new_account).encode())

    def wait_for(consumed: int) -> None:
        deadline = time.monotonic() + 180
        while stream.ledger().totals(pipeline.topic).consumed < consumed:
            assert job.pid() is not None, process.tail(job.log_path())
            assert time.monotonic() < deadline, process.tail(job.log_path())
            time.sleep(0.5)

    spark = spark_session(stack)
    try:
        job.start()
        send(90_000_001)
        wait_for(1)
        assert stream.counts(spark) == (0, 1)  # unknown account: quarantined
        with stream.mysql.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO account (account_id, district_id, frequency, `date`) "
                           "VALUES (%s, 1, 'POPLATEK MESICNE', '1993-01-01')", (new_account,))
            cursor.execute("INSERT INTO client (client_id, birth_number, district_id, gender, "
                           "birth_date) VALUES (%s, '705413', 1, 'F', '1970-04-13')",
                           (new_account,))
            cursor.execute("INSERT INTO disp (disp_id, client_id, account_id, type) "
                           "VALUES (%s, %s, %s, 'OWNER')", (new_account, new_account, new_account))
        time.sleep(2.5)
        # The refresh runs after a batch (never under one), so the batch of 90_000_002 may still
        # have the old data: the reload that follows the first batch can read MySQL before or
        # after the inserts above. The one after it has the new data for sure.
        send(90_000_002)
        wait_for(2)
        send(90_000_003)
        wait_for(3)
        tables = HiveTables(stream.hive_database)
        enriched = spark.sql(f"SELECT trans_id, gender, age_band FROM {tables.enriched}").collect()
        quarantined = [r.trans_id for r in spark.sql(
            f"SELECT trans_id FROM {tables.quarantine}").collect()]
        assert (90_000_003, "F", "20-29") in [(r.trans_id, r.gender, r.age_band) for r in enriched]
        # Each record counted once, on one side or the other.
        assert sorted([r.trans_id for r in enriched] + quarantined) == [
            90_000_001, 90_000_002, 90_000_003]
        assert 90_000_001 in quarantined
        assert "reference tables (re)loaded" in process.tail(job.log_path(), lines=400)
    finally:
        job.stop()
        stream.drop(spark)
        with stream.mysql.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{reference_db}`")


def _first_ids(path: Path, count: int) -> set[int]:
    with path.open() as handle:
        next(handle)
        return {int(line.split(";", 1)[0]) for line, _ in zip(handle, range(count),
                                                              strict=False)}
