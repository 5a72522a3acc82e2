"""The running `dagster dev` of the project through GraphQL: graph, checks, sensor, a run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from berka_assets.checks.reference import REFERENCE_CHECKS
from berka_assets.resources.mysql import MySQLResource
from berka_assets_tests import independent
from berka_assets_tests.dev.expected import ASSETS, CHECKS, EDGES, REFERENCE
from berka_core.config import Settings, secret
from berka_stack.dev import DagsterDev

pytestmark = pytest.mark.integration

ASSET_GRAPH = """
{
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}
"""


def asset_graph(dev: DagsterDev) -> dict[str, dict]:
    return {"/".join(node["assetKey"]["path"]): node
            for node in dev.graphql(ASSET_GRAPH)["assetNodes"]}


def test_asset_nodes_groups_and_edges(dagster_dev: DagsterDev) -> None:
    nodes = asset_graph(dagster_dev)
    assert set(nodes) == set(ASSETS)
    assert {key: nodes[key]["groupName"] for key in ASSETS} == {
        key: group for key, (group, _) in ASSETS.items()
    }
    edges = {("/".join(dep["path"]), key)
             for key, node in nodes.items() for dep in node["dependencyKeys"]}
    assert EDGES <= edges, EDGES - edges


def test_asset_checks_are_listed(dagster_dev: DagsterDev) -> None:
    listed = set()
    for key, node in asset_graph(dagster_dev).items():
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        listed |= {(key, check["name"]) for check in checks["checks"]}
    assert listed == CHECKS, (listed - CHECKS, CHECKS - listed)


def test_kafka_sensor_runs_and_ticks(
    dagster_dev: DagsterDev, kafka_sensor: str, stack: Settings
) -> None:
    """Started, the sensor is RUNNING and the daemon evaluates it against the real Kafka: new
    records in its topic become micro-batch runs."""
    from berka_assets_tests.streaming.harness import Pipeline
    from berka_assets_tests.streaming.test_exactly_once import SAMPLE, SAMPLE_TRANS

    assert dagster_dev.sensor_status(kafka_sensor) == "RUNNING"
    # New records past the dev database's ledger frontier (its own Hive database).
    Pipeline(stack, SAMPLE, topic=stack.kafka.topic).produce_file(SAMPLE_TRANS, limit=30)
    query = """
    query Ticks($selector: SensorSelector!) {
      sensorOrError(sensorSelector: $selector) {
        ... on Sensor { sensorState { ticks(limit: 5) {
          timestamp status runIds skipReason error { message } } } }
      }
    }
    """
    runs_query = """
    { runsOrError(filter: {pipelineName: "microbatch_job"}) { ... on Runs { results {
        runId status } } } }
    """
    produced_at = time.time()
    deadline = time.monotonic() + 90
    ticks: list[dict] = []
    runs: list[dict] = []
    while time.monotonic() < deadline:
        state = dagster_dev.graphql(query, {"selector": dagster_dev.sensor_selector(kafka_sensor)})
        ticks = [t for t in state["sensorOrError"]["sensorState"]["ticks"]
                 if t["timestamp"] > produced_at and t["status"] != "STARTED"]
        assert not [t for t in ticks if t["status"] == "FAILURE"], ticks
        runs = dagster_dev.graphql(runs_query)["runsOrError"]["results"]
        if ticks and runs:
            break
        time.sleep(1)
    assert ticks, "the daemon did not evaluate the Kafka sensor within 90 s of new records"
    # The records are in a micro-batch run: requested by this tick, or by an earlier one whose
    # run still waits in the queue (tag limit 0 in the test instance: the test never starts
    # Spark work on the shared stack), which the tick then says it waits for.
    assert runs, "the sensor requested no micro-batch run"
    assert {run["status"] for run in runs} == {"QUEUED"}
    latest = max(ticks, key=lambda t: t["timestamp"])
    if latest["status"] == "SUCCESS":
        assert latest["runIds"] and set(latest["runIds"]) <= {run["runId"] for run in runs}
    else:
        assert latest["status"] == "SKIPPED" and " is queued;" in latest["skipReason"], latest
        assert latest["skipReason"].split("micro-batch run ")[1][:8] in {
            run["runId"][:8] for run in runs}


def test_reference_tables_run_succeeds(dagster_dev: DagsterDev, stack: Settings) -> None:
    """A real run launched through GraphQL: the seven reference tables, with their checks."""
    run_id = dagster_dev.launch_run(
        "__ASSET_JOB", asset_keys=[["mysql", table] for table in REFERENCE],
        # One process for the load and its 14 checks (a process per step costs ~4 s each here).
        run_config={"execution": {"config": {"in_process": {}}}},
        tags={"berka/test": "ui"},
    )
    status = dagster_dev.wait_for_run(run_id, timeout=180)
    assert status == "SUCCESS", f"run {run_id}: {status}; see {dagster_dev.log_path}"
    checks = dagster_dev.graphql("""
    query Checks($keys: [AssetKeyInput!]) {
      assetNodes(assetKeys: $keys) {
        assetChecksOrError { ... on AssetChecks { checks {
          name executionForLatestMaterialization { runId status }
        } } }
      }
    }""", {"keys": [{"path": ["mysql", table]} for table in REFERENCE]})["assetNodes"]
    executions = [check["executionForLatestMaterialization"]
                  for node in checks for check in node["assetChecksOrError"]["checks"]]
    assert len(executions) == sum(len(checks.check_keys) for checks in REFERENCE_CHECKS)
    assert all(e and e["runId"] == run_id and e["status"] == "SUCCEEDED" for e in executions)

    # The tables landed in the dagster dev's own database, with every row of the source files.
    database = dagster_dev.extra_env["BERKA_MYSQL_DATABASE"]
    mysql = MySQLResource(database=database, password=secret(stack.mysql.password_env))
    source = Path(stack.data_dir)
    with mysql.connect() as connection, connection.cursor() as cursor:
        for table in REFERENCE:
            cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
            rows = sum(1 for _ in independent._rows(independent._file(source, table)))
            assert cursor.fetchone()[0] == rows, table
