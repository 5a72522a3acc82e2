"""spark_streaming/job.py under spark-submit, against the real stack: same results, exactly once."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from berka_assets.sensors.streaming_health import build_streaming_health_sensor
from berka_assets_tests import independent
from berka_assets_tests.streaming.harness import Pipeline, as_plain, encode, spark_session
from berka_core.config import REPO_ROOT, Settings
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.ledger import WriterConflict
from berka_stack import process
from berka_stack.mariadb import MariaDB
from berka_stack.spark import StreamingJob

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "data" / "berka"
SAMPLE_TRANS = SAMPLE / "trans_prefix.asc"


class StreamRun:
    """One streaming job over a Pipeline's topic, into its own Hive database."""

    def __init__(self, stack: Settings, pipeline: Pipeline, checkpoint: Path, *,
                 max_offsets_per_trigger: int = 3_000, maintenance_minutes: float = 10) -> None:
        self.pipeline = pipeline
        self.stream = Pipeline(stack, SAMPLE, topic=pipeline.topic)  # its own Hive database
        self.job = StreamingJob(
            stack,
            "--topic", pipeline.topic,
            "--hive-database", self.stream.hive_database,
            "--checkpoint", str(checkpoint),
            "--trigger-seconds", "1",
            "--max-offsets-per-trigger", str(max_offsets_per_trigger),
            "--maintenance-minutes", str(maintenance_minutes),
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

    def wait_for_planned_batch(self, timeout: float = 120) -> None:
        """Until a trigger has planned its batch in the ledger and not committed it yet: work
        in flight, where a kill must lose nothing."""
        ledger = self.stream.ledger()
        deadline = time.monotonic() + timeout
        while ledger.pending() is None:
            assert time.monotonic() < deadline, "no trigger got to its write"
            time.sleep(0.01)

    def kill_mid_batch(self) -> None:
        """kill -9 of the driver while a batch is planned and not committed; proves both."""
        self.wait_for_planned_batch()
        killed = self.job.kill()
        assert not process.pid_alive(killed), f"driver {killed} survived kill -9"
        assert self.stream.ledger().pending() is not None, "the batch committed before the kill"
        self.job = StreamingJob(self.job.settings, *self.job.extra_args)


@pytest.fixture
def stream_run(stack: Settings, tmp_path: Path) -> Iterator[StreamRun]:
    pipeline = Pipeline(stack, SAMPLE, max_records=5_000)
    run = StreamRun(stack, pipeline, tmp_path / f"checkpoint-{uuid.uuid4().hex[:6]}")
    yield run
    run.job.stop()
    spark = spark_session(stack)
    pipeline.drop(spark)
    run.stream.drop(spark)


@pytest.mark.slow
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
                                  independent.first_trans_ids(SAMPLE_TRANS, sent))
    assert as_plain(stream_run.stream.trends(spark)) == expected
    assert as_plain(stream_run.pipeline.trends(spark)) == expected
    assert stream_run.stream.counts(spark) == (sent, 0)
    # One file per trigger and table (not one per Kafka partition): compaction keeps up.
    appends = spark.sql(f"DESCRIBE HISTORY {HiveTables(stream_run.stream.hive_database).enriched}"
                        ).where("operation = 'WRITE'").collect()
    assert appends and {row.operationMetrics["numFiles"] for row in appends} == {"1"}
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


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_from_checkpoint(
    stack: Settings, stream_run: StreamRun
) -> None:
    first, second = 9_000, 15_000
    stream_run.pipeline.produce_file(SAMPLE_TRANS, limit=first)
    stream_run.job.start()
    stream_run.wait_for(3_000)  # at least one batch committed, more to come
    stream_run.kill_mid_batch()
    stream_run.pipeline.produce_raw([b"{broken", b"", b"x" * 70_000])  # poison meanwhile
    stream_run.job.start()  # resumes from the checkpoint
    stream_run.pipeline.produce_file(SAMPLE_TRANS, limit=second)  # 9,000 re-sent + 6,000 new
    stream_run.wait_for(first + 3 + second)
    assert stream_run.job.pid() is not None, "poison must not stop the query"
    spark = spark_session(stack)
    assert stream_run.stream.counts(spark) == (second, first + 3)
    assert as_plain(stream_run.stream.trends(spark)) == independent.trends(
        SAMPLE, SAMPLE_TRANS, independent.first_trans_ids(SAMPLE_TRANS, second)
    )


@pytest.mark.slow
def test_a_refused_ledger_commit_after_the_writes_keeps_the_trends_counting_the_batch(
    stack: Settings, stream_run: StreamRun
) -> None:
    """MySQL refuses a batch's ledger commit after its enriched append and trend cube write
    (the soak's MariaDB restart did). The batch is planned, so the restarted job finishes it;
    meanwhile the trends keep counting it: putting the previous cube back made readers see
    them go down, then up again."""
    sent = 600
    stream_run.pipeline.produce_file(SAMPLE_TRANS, limit=sent)
    mariadb = MariaDB(stack.mysql)
    trigger = f"refuse_{stream_run.stream.hive_database}"
    # A real refusal by the real server, for this database's commits only.
    mariadb.admin_sql(
        f"DELIMITER //\nCREATE TRIGGER `{trigger}` BEFORE INSERT ON microbatch_ledger "
        f"FOR EACH ROW IF NEW.hive_database = '{stream_run.stream.hive_database}' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'commit refused by the test'; END IF //\n",
        database=stack.mysql.database)
    try:
        # Its first batch may already have failed when start() looks: the log says below.
        with contextlib.suppress(process.StackError):
            stream_run.job.start()
        deadline = time.monotonic() + 240
        while stream_run.job.pid() is not None:  # the query fails and the job exits
            assert time.monotonic() < deadline, process.tail(stream_run.job.log_path())
            time.sleep(0.5)
    finally:
        mariadb.admin_sql(f"DROP TRIGGER IF EXISTS `{trigger}`", database=stack.mysql.database)
    assert "commit refused by the test" in stream_run.job.log_path().read_text(errors="replace")
    ledger = stream_run.stream.ledger()
    assert ledger.pending() is not None and ledger.totals(stream_run.pipeline.topic).consumed == 0
    spark = spark_session(stack)
    expected = independent.trends(SAMPLE, SAMPLE_TRANS,
                                  independent.first_trans_ids(SAMPLE_TRANS, sent))
    assert as_plain(stream_run.stream.trends(spark)) == expected  # not the empty cube again

    stream_run.job.start()  # finishes the planned batch, then goes on
    stream_run.wait_for(sent)
    assert stream_run.stream.counts(spark) == (sent, 0)
    assert as_plain(stream_run.stream.trends(spark)) == expected


@pytest.mark.slow
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
        # The refresh runs after a batch (never under one) once the interval has passed: probe
        # record after probe record, until one is enriched with the new account's owner.
        tables = HiveTables(stream.hive_database)
        probes, known_at = [90_000_001], None
        deadline = time.monotonic() + 60
        while known_at is None:
            assert time.monotonic() < deadline, "the new account stayed unknown for 60 s"
            probes.append(probes[-1] + 1)
            send(probes[-1])
            wait_for(len(probes))
            owner = spark.sql(f"SELECT gender, age_band FROM {tables.enriched} "
                              f"WHERE trans_id = {probes[-1]}").collect()
            if owner:
                assert (owner[0].gender, owner[0].age_band) == ("F", "20-29")
                known_at = probes[-1]
        probes.append(known_at + 1)  # once known, it stays known
        send(probes[-1])
        wait_for(len(probes))
        enriched = [r.trans_id for r in spark.sql(
            f"SELECT trans_id FROM {tables.enriched}").collect()]
        quarantined = [r.trans_id for r in spark.sql(
            f"SELECT trans_id FROM {tables.quarantine}").collect()]
        # Each record counted once, on one side or the other; unknown before the refresh only.
        assert sorted(enriched + quarantined) == probes
        assert sorted(quarantined) == [p for p in probes if p < known_at]
        assert "reference tables (re)loaded" in process.tail(job.log_path(), lines=400)
    finally:
        job.stop()
        stream.drop(spark)
        with stream.mysql.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{reference_db}`")
