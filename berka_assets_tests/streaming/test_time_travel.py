"""Time travel: the trends as they were at an earlier Delta version, through HiveServer2.

Each micro-batch records the trend cube's version in its trend assets' metadata; the report
asset, given that version (or a commit time), shows the trends of that moment, equal to the
independent computation over the records committed by then."""

from __future__ import annotations

import dagster as dg
import pytest

from berka_assets.assets.reports import cube_version, fetch_trends, trends_report
from berka_assets.assets.streaming import hive_key
from berka_assets.resources.hive import HiveResource
from berka_assets_tests import independent
from berka_assets_tests.independent import first_trans_ids
from berka_assets_tests.streaming.harness import Pipeline, spark_session
from berka_assets_tests.streaming.test_exactly_once import SAMPLE, SAMPLE_TRANS
from berka_core.config import Settings

pytestmark = pytest.mark.integration


def as_text(trends: dict[str, list[tuple]]) -> dict[str, list[tuple[str, ...]]]:
    """PyHive and the oracle spell numbers differently (str or Decimal): compare their text."""
    return {table: [tuple(str(value) for value in row) for row in rows]
            for table, rows in trends.items()}


@pytest.mark.slow
def test_report_shows_the_trends_as_of_an_earlier_version(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(stack, SAMPLE, max_records=2_000)
    monkeypatch.setenv("BERKA_HIVE_DATABASE", pipeline.hive_database)
    hive = HiveResource()
    first, final = 2_000, 3_000
    try:
        pipeline.produce_file(SAMPLE_TRANS, limit=first)
        pipeline.drain()
        event = pipeline.instance.get_latest_materialization_event(hive_key("yearly_trend"))
        assert event is not None and event.asset_materialization is not None
        then = event.asset_materialization.metadata["trend_cube_version"].value
        assert isinstance(then, int) and then >= 1, then
        _, committed_at = cube_version(hive, pipeline.hive_database, version=then)

        pipeline.produce_file(SAMPLE_TRANS, limit=final, skip=first)
        pipeline.drain()

        def fetched(**as_of: object) -> dict[str, list[tuple]]:
            return {table: rows for table, (_, rows) in
                    fetch_trends(hive, pipeline.hive_database, **as_of).items()}

        oracle_then = independent.trends(SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, first))
        oracle_now = independent.trends(SAMPLE, SAMPLE_TRANS, first_trans_ids(SAMPLE_TRANS, final))
        assert oracle_then != oracle_now
        assert as_text(fetched()) == as_text(oracle_now)
        assert as_text(fetched(version=then)) == as_text(oracle_then)
        assert as_text(fetched(timestamp=committed_at)) == as_text(oracle_then)

        result = dg.materialize(
            [trends_report], resources={"hive": hive}, instance=pipeline.instance,
            run_config={"ops": {"reports__trends_report": {"config": {"as_of_version": then}}}},
        )
        assert result.success
        metadata = result.asset_materializations_for_node("reports__trends_report")[0].metadata
        assert metadata["trend_cube_version"].value == then
        assert metadata["as_of"].value == f"version {then}"
        shown = {(r.data["year"], r.data["transaction_count"], r.data["transaction_amount"])
                 for r in metadata["yearly_trend"].value.records}
        assert shown == {(year, count, str(amount))
                         for year, count, amount in oracle_then["yearly_trend"]}
    finally:
        pipeline.drop(spark_session(stack))
