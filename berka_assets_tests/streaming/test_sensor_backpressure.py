"""The sensor plans no new run while one of its Hive database is queued or running."""

from __future__ import annotations

import pytest

from berka_assets.assets.streaming import MICROBATCH_TAG, microbatch_run_config
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline
from berka_core.config import REPO_ROOT, Settings
from berka_core.spark_jobs.kafka_source import OffsetRange

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "data" / "berka"


def _queue_run(pipeline: Pipeline, hive_database: str):
    return pipeline.instance.create_run_for_job(
        job_def=pipeline.job,
        run_config=microbatch_run_config([OffsetRange(pipeline.topic, 0, 0, 1)], hive_database),
        tags={MICROBATCH_TAG: hive_database},
    )


def test_new_offsets_wait_for_the_run_in_flight_then_go_into_one_run(stack: Settings) -> None:
    pipeline = Pipeline(stack, SAMPLE, max_records=5_000, run_per="tick")
    sent = pipeline.produce_file(SAMPLE / "trans_prefix.asc", limit=1_500)

    in_flight = _queue_run(pipeline, pipeline.hive_database)
    waiting = pipeline.tick()
    assert waiting.run_requests == [] and waiting.cursor is None  # the cursor did not move
    assert in_flight.run_id[:8] in waiting.skip_reason.skip_message
    assert pipeline.hive_database in waiting.skip_reason.skip_message

    # A run of another database does not hold this one back.
    pipeline.instance.report_run_canceled(in_flight)
    _queue_run(pipeline, f"{pipeline.hive_database}_other")
    launched = pipeline.tick()
    assert len(launched.run_requests) == 1
    assert launched.run_requests[0].tags["berka/records"] == str(sent)
    assert launched.cursor is not None


def test_a_commit_whose_trends_were_never_written_gets_a_trends_only_run(stack) -> None:
    """A run stopped between its ledger commit and its trends; no new data arrives after it."""
    from berka_assets_tests import independent
    from berka_assets_tests.streaming.harness import as_plain, spark_session
    from berka_assets_tests.streaming.test_exactly_once import SAMPLE_TRANS
    from berka_core.spark_jobs.hive_tables import HiveTables

    pipeline = Pipeline(stack, SAMPLE, max_records=5_000, run_per="tick")
    sent = pipeline.produce_file(SAMPLE_TRANS, limit=600)
    pipeline.drain()
    spark = spark_session(stack)
    try:
        # The state such a crash leaves: trends of before the batch, the batch not visible.
        tables = HiveTables(pipeline.hive_database)
        tables.write_trends(spark, spark.table(tables.cube).limit(0))
        with pipeline.mysql.connect() as connection, connection.cursor() as cursor:
            cursor.execute("UPDATE microbatch_ledger SET visible_at = NULL "
                           "WHERE hive_database = %s", (pipeline.hive_database,))
        assert pipeline.ledger().invisible_batches() == 1

        repair = pipeline.tick()
        assert len(repair.run_requests) == 1 and "-trends-" in repair.run_requests[0].run_key
        assert repair.run_requests[0].tags["berka/records"] == "0"
        assert pipeline.execute(repair.run_requests[0]).success
        assert pipeline.ledger().invisible_batches() == 0
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, sent))
        assert pipeline.tick().run_requests == []  # repaired: nothing more to do
    finally:
        pipeline.drop(spark)
