"""Readers see only committed states: a PyHive client polls the trend views and the enriched
table through HiveServer2 (the Spark Thrift Server) as fast as it can while micro-batches add
records, process a re-sent range, get compacted, and while the Spark server is killed with
kill -9 in the middle of a batch; and the same while the streaming job writes its database.
Every answer must be a committed state."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline, reset_spark_client, spark_session
from berka_assets_tests.streaming.test_exactly_once import (
    SAMPLE,
    SAMPLE_TRANS,
    _run_in_background,
    _start_with_retries,
    _wait_for_write,
)
from berka_assets_tests.streaming.test_streaming_job import StreamRun
from berka_core.config import Settings
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_stack import process
from berka_stack.spark import SparkConnectServer

pytestmark = pytest.mark.integration

TREND_TOTALS = {
    "yearly_trend": "SUM(transaction_count), SUM(transaction_amount)",
    "monthly_trend": "SUM(transaction_count), SUM(transaction_amount)",
    "trans_by_age_gender": "SUM(transaction_count), SUM(total_amount)",
}


@dataclass
class Answer:
    at: float  # when the query started
    source: str
    count: int | None
    amount: Decimal | None  # for enriched_transactions: the distinct trans_ids
    ended: float = 0.0  # when its answer came: the state it read was current in [at, ended]


@dataclass
class Reader:
    """One PyHive connection polling every view and the enriched table in turn."""

    settings: Settings
    database: str
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from pyhive import hive

        hive_settings = self.settings.hive
        connection = hive.connect(host=hive_settings.host, port=hive_settings.port,
                                  username=hive_settings.username, auth=hive_settings.auth)
        cursor = connection.cursor()
        queries = {view: f"SELECT {totals} FROM `{self.database}`.`{view}`"
                   for view, totals in TREND_TOTALS.items()}
        queries["enriched_transactions"] = (
            "SELECT COUNT(*), COUNT(DISTINCT trans_id) "
            f"FROM `{self.database}`.enriched_transactions")
        try:
            while not self.stop.is_set():
                for source, sql in queries.items():
                    # Stamped when the query starts: one that started before a commit may
                    # return after it, with the earlier (equally committed) state.
                    started = time.monotonic()
                    try:
                        cursor.execute(sql)
                        (count, amount), = cursor.fetchall()
                    except Exception as error:  # noqa: BLE001 - every error is a finding
                        self.errors.append(f"{source}: {str(error).splitlines()[0][:300]}")
                        continue
                    self.answers.append(Answer(started, source, count, amount, time.monotonic()))
        finally:
            connection.close()

    def wait_for_answers_since(self, since: float, timeout: float = 120) -> None:
        """Until every view and the table answered a query that started after `since`."""
        deadline = time.monotonic() + timeout
        while not all(self.of(source, since) for source in (*TREND_TOTALS,
                                                             "enriched_transactions")):
            assert time.monotonic() < deadline, f"no answers since {since} in {timeout} s"
            assert not self.stop.is_set()
            time.sleep(0.1)

    def of(self, source: str, since: float = 0.0) -> list[Answer]:
        return [a for a in self.answers if a.source == source and a.at >= since]


def oracle_totals(good: int) -> tuple[int, Decimal]:
    yearly = independent.trends(SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, good))
    rows = yearly["yearly_trend"]
    return sum(r[1] for r in rows), sum((r[2] for r in rows), Decimal(0))


@pytest.mark.slow
def test_readers_see_only_committed_states_through_hiveserver2(stack: Settings) -> None:
    # One run per tick (the product's default) of at most 500 records per partition: each
    # phase below is two batches.
    pipeline = Pipeline(stack, SAMPLE, max_records=500, run_per="tick")
    tables = HiveTables(pipeline.hive_database)
    spark = spark_session(stack)
    tables.ensure(spark)
    reader = Reader(stack, pipeline.hive_database)
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    try:
        # (a) new records, batch after batch.
        first = 3_000
        pipeline.produce_file(SAMPLE_TRANS, limit=first)
        pipeline.drain()
        after_new = time.monotonic()
        # (b) a re-sent range: only duplicates arrive, the trends must not move.
        pipeline.produce_file(SAMPLE_TRANS, limit=first)
        pipeline.drain()
        # (d) compaction and clean-up.
        tables.maintain(spark_session(stack))
        after_duplicates = time.monotonic()
        # (e) kill -9 of the Spark server while a batch is planned and not committed.
        pipeline.produce_file(SAMPLE_TRANS, limit=first + 2_000, skip=first)
        tick = pipeline.tick()
        pipeline.cursor = tick.cursor
        victim = tick.run_requests[0]
        running, outcome = _run_in_background(pipeline, victim)
        assert _wait_for_write(pipeline, running), "the batch never got to its write"
        server = SparkConnectServer(stack)
        killed = server.kill()
        assert not process.pid_alive(killed)
        _start_with_retries(server)
        running.join(300)
        assert outcome and not outcome[0].success, "the kill landed after the batch"
        reset_spark_client()
        for run_request in tick.run_requests:
            assert pipeline.execute(run_request).success
        pipeline.drain()
        after_final = time.monotonic()
        reader.wait_for_answers_since(after_final)
    finally:
        reader.stop.set()
        thread.join(60)

    good = first + 2_000
    try:
        assert_only_committed_states(reader, first, good, after_new, after_duplicates,
                                     after_final)
        assert pipeline.counts(spark_session(stack)) == (good, first)
    finally:
        pipeline.drop(spark_session(stack))


@pytest.mark.slow
def test_readers_see_only_committed_states_while_the_streaming_job_runs(
    stack: Settings, tmp_path: Path
) -> None:
    """(c) the streaming job writes its database in small triggers, compacts it with its own
    maintenance thread, processes a re-sent range and is killed with kill -9 mid-trigger."""
    pipeline = Pipeline(stack, SAMPLE, max_records=1_000)
    run = StreamRun(stack, pipeline, tmp_path / "checkpoint", max_offsets_per_trigger=1_000,
                    maintenance_minutes=0.25)
    reader = Reader(stack, run.stream.hive_database)
    thread = threading.Thread(target=reader.run, daemon=True)
    first = 3_000
    try:
        pipeline.produce_file(SAMPLE_TRANS, limit=first)
        run.job.start()
        run.wait_for(1_000)  # its tables exist: the reader starts on committed data
        thread.start()
        run.wait_for(first)
        after_new = time.monotonic()
        maintained = _maintenance_runs(run)
        pipeline.produce_file(SAMPLE_TRANS, limit=first)  # only duplicates
        run.wait_for(2 * first)
        _wait_for_maintenance(run, maintained)
        after_duplicates = time.monotonic()
        pipeline.produce_file(SAMPLE_TRANS, limit=first + 2_000, skip=first)
        run.kill_mid_batch()
        run.job.start()  # finishes the planned batch, then resumes from its checkpoint
        run.wait_for(2 * first + 2_000)
        after_final = time.monotonic()
        reader.wait_for_answers_since(after_final)
    finally:
        reader.stop.set()
        if thread.is_alive():
            thread.join(60)
        run.job.stop()

    good = first + 2_000
    try:
        assert_only_committed_states(reader, first, good, after_new, after_duplicates,
                                     after_final)
        assert run.stream.counts(spark_session(stack)) == (good, first)
    finally:
        pipeline.drop(spark_session(stack))
        run.stream.drop(spark_session(stack))


def _maintenance_runs(run: StreamRun) -> int:
    return run.job.log_path().read_text(errors="replace").count("Delta maintenance: compacted")


def _wait_for_maintenance(run: StreamRun, runs_before: int, timeout: float = 120) -> None:
    """Until the job's maintenance thread has run OPTIMIZE and VACUUM once more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _maintenance_runs(run) > runs_before:
            return
        time.sleep(0.5)
    raise AssertionError("the streaming job never ran its maintenance:\n"
                         + process.tail(run.job.log_path()))


def assert_only_committed_states(reader: Reader, first: int, good: int, after_new: float,
                                 after_duplicates: float, after_final: float) -> None:
    """`first` new records, then only duplicates of them (from after_new to after_duplicates),
    then new records up to `good`: what every answer of the reader must agree with."""
    assert not reader.errors, reader.errors[:5]
    assert len(reader.answers) > 100, len(reader.answers)
    oracle_first, oracle_final = oracle_totals(first), oracle_totals(good)
    for view in TREND_TOTALS:
        answers = reader.of(view)
        assert answers, view
        # Never empty once the first batch committed, never going back while data only grows.
        seen_data = False
        previous = (0, Decimal(0))
        for answer in answers:
            if answer.count is None:
                assert not seen_data, f"{view} went empty after holding data"
                continue
            seen_data = True
            current = (answer.count, Decimal(answer.amount))
            assert current >= previous, f"{view} went back: {previous} -> {current}"
            assert current[0] <= good
            previous = current
        # While only duplicates arrived (and during the compaction): always the oracle.
        during = [a for a in reader.of(view, since=after_new) if a.ended <= after_duplicates]
        assert during, f"no answer of {view} while only duplicates arrived"
        for answer in during:
            assert (answer.count, Decimal(answer.amount)) == oracle_first, answer
        final = reader.of(view, since=after_final)
        assert final, f"no answer of {view} after the last commit"
        for answer in final:
            assert (answer.count, Decimal(answer.amount)) == oracle_final, answer
    # The enriched table never holds a repeated trans_id (a half-applied batch would).
    for answer in reader.of("enriched_transactions"):
        assert answer.count == answer.amount and answer.count <= good, answer


def test_delta_tables_through_pyhive_list_columns_and_keep_resolving(stack: Settings) -> None:
    """Two failure modes reported in Delta's tracker, checked on our Thrift Server: JDBC column
    listings of Delta tables empty (delta-io/delta#695), and `USING delta` no longer resolving
    in a long-running Thrift Server (delta-io/delta#1341)."""
    from berka_assets.resources.hive import HiveResource

    hive = HiveResource()
    database = f"t_{int(time.time() * 1000) % 10**9}"
    try:
        hive.query(f"CREATE DATABASE {database}")
        for attempt in range(2):  # a second CREATE on the same, long-running server
            table = f"{database}.delta_{attempt}"
            hive.query(f"CREATE TABLE {table} (id BIGINT, amount DECIMAL(15,2)) USING delta")
            hive.query(f"INSERT INTO {table} VALUES (1, 10.50)")
            _, rows = hive.query(f"DESCRIBE {table}")
            assert [row[0] for row in rows[:2]] == ["id", "amount"], rows
            _, detail = hive.query(f"DESCRIBE DETAIL {table}")
            assert detail[0][0] == "delta"
            _, history = hive.query(f"DESCRIBE HISTORY {table}")
            assert len(history) == 2
            _, old = hive.query(f"SELECT COUNT(*) FROM {table} VERSION AS OF 0")
            assert old == [(0,)]
    finally:
        hive.query(f"DROP DATABASE IF EXISTS {database} CASCADE")
