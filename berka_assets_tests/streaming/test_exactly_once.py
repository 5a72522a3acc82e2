"""The sensor -> micro-batch path against real Kafka, Spark, Hive and MariaDB: exact to the cent.

Every scenario ends the same way: the three Hive trend tables equal the independent plain-Python
computation over the transactions that were sent, with nothing lost and nothing counted twice.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from berka_assets.assets.streaming import microbatch_run_config
from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import (
    Pipeline,
    as_plain,
    encode,
    reset_spark_client,
    spark_session,
)
from berka_core import transformations as T
from berka_core.config import REPO_ROOT, Settings
from berka_core.dataset.reader import read_table
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.microbatch import WRITE_ENRICHED, WRITE_WITH_QUARANTINE
from berka_stack import process
from berka_stack.dev import free_port
from berka_stack.kafka import Kafka
from berka_stack.mariadb import MariaDB
from berka_stack.spark import SparkConnectServer

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "data" / "berka"
SAMPLE_TRANS = SAMPLE / "trans_prefix.asc"


@pytest.fixture(scope="module")
def sample(stack: Settings) -> Iterator[Pipeline]:
    """The real 49,102-row sample, sent and processed through the sensor in ranges."""
    pipeline = Pipeline(stack, SAMPLE, max_records=20_000)
    pipeline.load_reference()
    pipeline.produce_file(SAMPLE_TRANS)
    pipeline.executed = pipeline.drain()  # type: ignore[attr-defined]
    yield pipeline
    pipeline.drop(spark_session(stack))


def _retry_then_the_rest(pipeline: Pipeline, victim: dg.RunRequest,
                         rest: Sequence[dg.RunRequest]) -> None:
    """The failed run again (as Dagster's run retry would), the runs after it, then the
    catch-up: every run must succeed."""
    assert pipeline.execute(victim).success
    for run_request in rest:
        assert pipeline.execute(run_request).success
    pipeline.drain()


def test_real_sample_trends_equal_independent_computation(
    stack: Settings, sample: Pipeline
) -> None:
    spark = spark_session(stack)
    assert as_plain(sample.trends(spark)) == independent.trends(SAMPLE, SAMPLE_TRANS)
    assert sample.counts(spark) == (49_102, 0)
    totals = sample.ledger().totals(sample.topic)
    assert (totals.consumed, totals.enriched, totals.quarantined) == (49_102, 49_102, 0)
    # 3 partitions of ~16k records in ranges of at most 20k: one run per partition.
    assert sorted(r.run_key.rsplit("-", 3)[1] for r in sample.executed) == ["0", "1", "2"]


def test_rerun_of_a_finished_run_and_duplicate_ticks_change_nothing(
    stack: Settings, sample: Pipeline
) -> None:
    spark = spark_session(stack)
    assert len(sample.executed) == 3  # the runs re-executed below
    # Re-execute a finished run.
    assert sample.execute(sample.executed[0]).success
    # A duplicate tick, evaluated again from the cursor the sensor started with, plans from
    # the ledger's frontier: nothing, as everything is committed ...
    again = sample.tick(cursor="{}")
    assert again.run_requests == [] and again.skip_reason is not None, again
    # ... and even if the old runs were all launched again, nothing is added.
    for run_request in sample.executed:
        assert sample.execute(run_request).success
    # Overlapping ranges cut differently still add nothing.
    overlapping = [OffsetRange(sample.topic, 0, 100, 9_000), OffsetRange(sample.topic, 1, 0, 20),
                   OffsetRange(sample.topic, 2, 5_000, 16_000)]
    assert sample.execute(dg.RunRequest(
        run_config=microbatch_run_config(overlapping, sample.hive_database))).success
    assert as_plain(sample.trends(spark)) == independent.trends(SAMPLE, SAMPLE_TRANS)
    assert sample.counts(spark) == (49_102, 0)


def test_synthetic_set_trends_equal_independent_computation(
    stack: Settings, tmp_path: Path
) -> None:
    from berka_core.dataset.generator import generate

    generate(scale=0.01, seed=7, out=tmp_path)
    # One run per tick over all partitions, the low-latency mode of the sensor.
    pipeline = Pipeline(stack, tmp_path, mysql_database="berka_test_synthetic",
                        max_records=5_000, run_per="tick")
    pipeline.load_reference()
    sent = pipeline.produce_file(tmp_path / "trans.asc")
    runs = pipeline.drain()
    assert all("_" in r.run_key for r in runs[:-1]), "a run covers several partitions"
    spark = spark_session(stack)
    try:
        assert as_plain(pipeline.trends(spark)) == independent.trends(tmp_path)
        assert pipeline.counts(spark) == (sent, 0)
    finally:
        pipeline.drop(spark)


POISON = [
    b"{not json",
    b"",
    None,  # a tombstone
    b'{"schema_version":1,"trans_id":"abc","account_id":1}',
    b"[1, 2, 3]",
    b"x" * (1024 * 1024),
]


def test_poison_messages_are_quarantined_and_good_ones_counted_once(
    stack: Settings,
) -> None:
    pipeline = Pipeline(stack, SAMPLE, max_records=2_000)
    good = 3_000
    pipeline.produce_file(SAMPLE_TRANS, limit=good)
    pipeline.drain()
    pipeline.produce_raw(POISON)
    pipeline.drain()  # poison alone: its batch needs the quarantine pass
    valid = {"trans_id": 99_999_999, "account_id": 1, "date": dt.date(1993, 5, 1),
             "type": "PRIJEM", "operation": "VKLAD", "amount": Decimal("10.00"),
             "balance": Decimal("10.00"), "k_symbol": None, "bank": None, "account": None}
    bad_amount = json.loads(encode(valid))
    bad_amount["amount"] = "-5.00"
    header, first_line = SAMPLE_TRANS.read_text().splitlines(keepends=True)[:2]
    already_sent = next(iter(read_table([header, first_line], "trans")))
    pipeline.produce_raw([
        encode({**valid, "account_id": 987_654}),  # no such account
        json.dumps(bad_amount).encode(),
        encode(already_sent),  # a re-send, as after a producer crash
    ])
    pipeline.drain()
    spark = spark_session(stack)
    try:
        assert pipeline.counts(spark) == (good, len(POISON) + 3)
        # Clean batches appended to enriched only; the poison-only batch and the one with a
        # re-sent record to quarantine too.
        assert set(pipeline.write_paths) == {WRITE_ENRICHED, WRITE_WITH_QUARANTINE}
        reasons = {
            row.reason: row.n
            for row in spark.sql(
                f"SELECT reason, COUNT(*) AS n FROM `{pipeline.hive_database}`.quarantine "
                "GROUP BY reason").collect()
        }
        assert reasons == {
            T.REASON_NOT_JSON: 2,
            T.REASON_EMPTY: 2,
            T.REASON_TRANS_ID: 1,
            T.REASON_TOO_LARGE: 1,
            T.REASON_UNKNOWN_ACCOUNT: 1,
            T.REASON_AMOUNT: 1,
            T.REASON_DUPLICATE_COMMITTED: 1,
        }
        too_large = spark.sql(
            f"SELECT raw_value, kafka_offset FROM `{pipeline.hive_database}`.quarantine "
            f"WHERE reason = '{T.REASON_TOO_LARGE}'"
        ).first()
        assert len(too_large.raw_value) == 1024 * 1024 and too_large.kafka_offset >= 0
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, good)
        )
    finally:
        pipeline.drop(spark)


def _start_with_retries(server: SparkConnectServer, attempts: int = 3) -> None:
    for attempt in range(attempts):
        try:
            server.start()
            return
        except process.StackError:
            if attempt == attempts - 1:
                raise
            time.sleep(5)


def _write_in_progress(pipeline: Pipeline) -> bool:
    """A batch is planned and not committed: between its plan and its ledger commit, which is
    where its Delta appends happen."""
    return pipeline.ledger().pending() is not None


def _run_in_background(pipeline: Pipeline, run_request) -> tuple[threading.Thread, list]:
    outcome: list = []

    def target() -> None:
        outcome.append(pipeline.execute(run_request, raise_on_error=False))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _wait_for_write(pipeline: Pipeline, thread: threading.Thread, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        if _write_in_progress(pipeline):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_kill_9_spark_mid_write_then_retry_is_exact(stack: Settings) -> None:
    pipeline = Pipeline(stack, SAMPLE, max_records=3_000)
    sent = 9_000
    pipeline.produce_file(SAMPLE_TRANS, limit=sent)
    first = pipeline.tick()
    pipeline.cursor = first.cursor
    assert pipeline.execute(first.run_requests[0]).success

    victim = first.run_requests[1]
    thread, outcome = _run_in_background(pipeline, victim)
    assert _wait_for_write(pipeline, thread), "the run never reached its write"
    server = SparkConnectServer(stack)
    killed = server.kill()  # kill -9 of the Spark process, mid-write
    assert not process.pid_alive(killed)
    # Restarted as a supervisor would; the client's retries then reach a server that does not
    # know its session, and the run fails instead of retrying for minutes.
    _start_with_retries(server)
    thread.join(300)
    assert outcome and not outcome[0].success
    reset_spark_client()

    _retry_then_the_rest(pipeline, victim, first.run_requests[2:])
    spark = spark_session(stack)
    try:
        assert pipeline.counts(spark) == (sent, 0)
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, sent)
        )
    finally:
        pipeline.drop(spark)


@pytest.mark.slow
def test_kafka_restart_between_batches_and_mariadb_stop_during_a_run(stack: Settings) -> None:
    pipeline = Pipeline(stack, SAMPLE, max_records=2_000)
    pipeline.produce_file(SAMPLE_TRANS, limit=4_000)
    first = pipeline.tick()
    pipeline.cursor = first.cursor
    assert pipeline.execute(first.run_requests[0]).success

    kafka = Kafka(stack.kafka)
    try:
        assert kafka.stop(), "Kafka was not running under berka-stack"
    finally:
        kafka.start()  # whatever happened: later tests need the broker
    more = pipeline.produce_file(SAMPLE_TRANS, limit=6_000)  # re-sends the first 4,000 too
    assert more == 6_000

    mariadb = MariaDB(stack.mysql)
    victim = first.run_requests[1]
    thread, outcome = _run_in_background(pipeline, victim)
    try:
        assert _wait_for_write(pipeline, thread)
        assert mariadb.stop(), "MariaDB was not running"
        thread.join(180)
    finally:
        mariadb.start()  # whatever happened: later tests need the server
    result = outcome[0]
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.to_string()  # with its cause chain
    # The failure names the outage: the server that is down, not just any error.
    host, port = stack.mysql.host, stack.mysql.port
    assert (f"Cannot reach MySQL at {host}:{port}" in message
            or ("micro-batch step" in message and "Connection refused" in message
                and (f"port:{port}" in message or f"port={port}" in message))), message

    _retry_then_the_rest(pipeline, victim, first.run_requests[2:])
    spark = spark_session(stack)
    try:
        # 4,000 + 6,000 messages; the re-sent 4,000 are quarantined as duplicates.
        assert pipeline.counts(spark) == (6_000, 4_000)
        assert WRITE_WITH_QUARANTINE in pipeline.write_paths
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, 6_000)
        )
    finally:
        pipeline.drop(spark)


def test_streaming_checks_pass_and_catch_a_tampered_table(
    stack: Settings, sample: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from berka_assets.assets.streaming import microbatch
    from berka_assets.checks.streaming import STREAMING_CHECKS, trends_fresh

    monkeypatch.setenv("BERKA_HIVE_DATABASE", sample.hive_database)
    monkeypatch.setenv("BERKA_KAFKA_TOPIC", sample.topic)

    def run_checks() -> dict[str, bool]:
        result = dg.materialize([microbatch, *STREAMING_CHECKS], resources=sample.resources,
                                selection=dg.AssetSelection.checks(*STREAMING_CHECKS),
                                instance=sample.instance)
        return {f"{e.asset_key.path[-1]}.{e.check_name}": e.passed
                for e in result.get_asset_check_evaluations()}

    healthy = run_checks()
    assert len(healthy) == 6 and all(healthy.values()), healthy

    # A row copied into the table behind the pipeline's back.
    spark = spark_session(stack)
    enriched = f"`{sample.hive_database}`.enriched_transactions"
    before = HiveTables(sample.hive_database).version(spark, enriched)
    spark.sql(f"INSERT INTO {enriched} SELECT {', '.join(T.ENRICHED_COLUMNS)}, 'tampered' "
              f"FROM {enriched} LIMIT 1")
    tampered = run_checks()
    assert not tampered["enriched_transactions.no_duplicate_trans_id"]
    assert not tampered["enriched_transactions.offsets_add_up"]
    assert not tampered["monthly_trend.totals_match_enriched"]
    assert tampered["monthly_trend.trends_fresh"]

    # Delta's own repair: the table back to its version before the tampering; the next batch
    # rebuilds the trends from it: healthy again.
    spark.sql(f"RESTORE TABLE {enriched} TO VERSION AS OF {before}")
    assert sample.execute(sample.executed[0]).success
    assert all(run_checks().values())

    # Freshness reads only the ledger (MySQL) and the topic (Kafka): it answers, and passes,
    # with the Spark Connect server unreachable (a closed port), where the others must fail.
    monkeypatch.setenv("BERKA_SPARK_REMOTE", f"sc://127.0.0.1:{free_port()}")
    without_spark = dg.materialize(
        [microbatch, *STREAMING_CHECKS], resources=sample.resources,
        selection=dg.AssetSelection.checks(trends_fresh), instance=sample.instance)
    assert [(e.check_name, e.passed)
            for e in without_spark.get_asset_check_evaluations()] == [("trends_fresh", True)]
