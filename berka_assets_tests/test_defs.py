"""The code location's Definitions, loaded as Dagster loads them: graph, kinds, catalog metadata
and declarative automation. No server: Dagster evaluates the conditions against an ephemeral
instance."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from berka_assets.definitions import defs
from berka_assets_tests.dev.expected import ASSETS, CHECKS, TRENDS


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def test_definitions_load_and_validate() -> None:
    dg.Definitions.validate_loadable(defs)


def test_the_graph_runs_from_the_source_files_to_the_report(graph) -> None:
    nodes = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert set(nodes) == set(ASSETS)
    for key, (group, upstream) in ASSETS.items():
        assert nodes[key].group_name == group, key
        assert {p.to_user_string() for p in nodes[key].parent_keys} == set(upstream), key
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == CHECKS


def test_every_asset_has_kinds_and_every_table_its_columns(graph) -> None:
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.kinds, f"{key.to_user_string()} has no kinds"
        if key.path[0] in ("mysql", "hive", "kafka", "berka", "reports"):
            assert node.owners == ["team:data-platform"], key
        if key.path[0] in ("mysql", "hive"):
            schema = node.metadata["dagster/column_schema"]
            assert isinstance(schema, dg.TableSchema) and schema.columns, key
            assert node.metadata["dagster/table_name"].endswith(f".{key.path[-1]}")
        if key.path[0] == "hive":
            assert {"delta", "hive", "spark"} <= node.kinds
    account = graph.get(dg.AssetKey(["mysql", "account"])).metadata["dagster/column_schema"]
    assert [c.name for c in account.columns] == ["account_id", "district_id", "frequency", "date"]
    assert "FOREIGN KEY (district_id) REFERENCES district (district_id)" in (
        account.constraints.other)
    assert account.columns[0].constraints.unique and not account.columns[0].constraints.nullable
    by_age = graph.get(dg.AssetKey(["hive", "trans_by_age_gender"])).metadata[
        "dagster/column_schema"]
    assert [(c.name, c.type) for c in by_age.columns] == [
        ("age_band", "STRING"), ("gender", "STRING"), ("transaction_count", "BIGINT"),
        ("total_amount", "DECIMAL(25,2)"), ("avg_amount", "DECIMAL(25,2)")]


def test_checks_and_report_run_once_per_cron_tick_after_new_batches() -> None:
    instance = dg.DagsterInstance.ephemeral()
    now = dt.datetime.now(dt.UTC)
    # An evaluation more than an hour ago: since then, a tick of both crons has passed.
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=now - dt.timedelta(minutes=61))
    assert result.total_requested == 0

    def requested(result) -> set[str]:
        return {str(r.key.to_user_string() if isinstance(r.key, dg.AssetKey)
                    else f"{r.key.asset_key.to_user_string()}:{r.key.name}")
                for r in result.results if r.true_subset.size}

    # Nothing new since the ticks: nothing to check, no report.
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=now, cursor=result.cursor)
    assert requested(result) == set()
    # A micro-batch materializes the Hive tables: the next evaluation runs every streaming
    # check and the report, once.
    for table in ("enriched_transactions", "quarantine", *TRENDS):
        instance.report_runless_asset_event(dg.AssetMaterialization(["hive", table]))
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=now + dt.timedelta(seconds=1),
        cursor=result.cursor)
    assert requested(result) == {"reports/trends_report"} | {
        f"{key}:{name}" for key, name in CHECKS if key.startswith("hive/")}
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=now + dt.timedelta(seconds=2),
        cursor=result.cursor)
    assert requested(result) == set()
