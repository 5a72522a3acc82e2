"""Materialize on demand, as a user does from the command line or the UI: no config at all.

`dagster asset materialize --select hive/monthly_trend` rebuilds that trend from the committed
data; `--select '*'` catches the micro-batch up from the ledger's frontier to the topic's end
(and loads the reference tables, runs the report). Both exit 0 with no config file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline, as_plain, spark_session
from berka_assets_tests.streaming.test_exactly_once import SAMPLE, SAMPLE_TRANS
from berka_core.config import REPO_ROOT, Settings
from berka_core.spark_jobs.hive_tables import HiveTables

pytestmark = pytest.mark.integration


def materialize(selection: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "berka_assets.definitions",
         "--select", selection],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400,
    )


@pytest.mark.slow
def test_materialize_a_trend_then_everything_with_no_config(
    stack: Settings, tmp_path: Path
) -> None:
    pipeline = Pipeline(stack, SAMPLE)
    sent = pipeline.produce_file(SAMPLE_TRANS, limit=1_500)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "BERKA_KAFKA_TOPIC": pipeline.topic,
           "BERKA_HIVE_DATABASE": pipeline.hive_database, "BERKA_SENSOR_MAX_RECORDS": "400"}
    spark = spark_session(stack)
    try:
        # One trend alone, before anything was processed: rebuilt (empty), nothing consumed.
        trend = materialize("hive/monthly_trend", env)
        assert trend.returncode == 0, trend.stdout[-3000:] + trend.stderr[-3000:]
        assert "rebuilt from the committed data" in trend.stderr + trend.stdout
        assert pipeline.ledger().frontiers(pipeline.topic) == {}
        assert spark.table(HiveTables(pipeline.hive_database).cube).count() == 0

        # Everything: one catch-up batch of at most 400 records per partition.
        everything = materialize("*", env)
        assert everything.returncode == 0, (everything.stdout[-3000:]
                                            + everything.stderr[-3000:])
        consumed = pipeline.ledger().totals(pipeline.topic).consumed
        assert 0 < consumed <= 3 * 400
        assert pipeline.counts(spark) == (consumed, 0)

        # Clicked again until caught up: every record once, equal to the oracle.
        for _ in range(3):
            if pipeline.ledger().totals(pipeline.topic).consumed == sent:
                break
            again = materialize("hive/enriched_transactions", env)
            assert again.returncode == 0, again.stderr[-3000:]
        assert pipeline.counts(spark) == (sent, 0)
        assert as_plain(pipeline.trends(spark)) == independent.trends(
            SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, sent))
    finally:
        pipeline.drop(spark)
