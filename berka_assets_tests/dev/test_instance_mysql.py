"""dagster.mysql.yaml: a Dagster instance whose runs, events and sensor ticks live in MySQL.

Against the local stack's MariaDB database `dagster` (user `dagster`): the instance loads from the
file as users copy it into DAGSTER_HOME, runs a real job in process, and a real dagster-daemon
records sensor ticks there. Rows of these tests are deleted again (the database is shared).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pymysql
import pytest
import yaml
from dagster._core.definitions.selector import InstigatorSelector

from berka_assets_tests.dev.tick_location import TICK_SENSOR
from berka_core.config import REPO_ROOT, Settings, secret
from berka_stack.dev import (
    INSTANCE_CONFIG,
    MYSQL_INSTANCE_CONFIG,
    ProcessGroup,
    instance_environment,
)

TICK_LOCATION = Path(__file__).with_name("tick_location.py")
PROBE_KEY = dg.AssetKey(["berka_ui_test", "probe"])


@dg.asset(key=PROBE_KEY)
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


def test_mysql_config_has_the_settings_of_dagster_yaml() -> None:
    """Only storage differs: run queue limits, tick retention, sensor workers are the same."""
    mysql = yaml.safe_load(MYSQL_INSTANCE_CONFIG.read_text())
    embedded = yaml.safe_load(INSTANCE_CONFIG.read_text())
    assert {k: v for k, v in mysql.items() if k != "storage"} == embedded
    assert mysql["run_queue"]["tag_concurrency_limits"]
    assert mysql["retention"]["sensor"]["purge_after_days"]
    db = mysql["storage"]["mysql"]["mysql_db"]
    # Nothing secret or site-specific in the file: every connection setting from the environment.
    assert all(isinstance(value, dict) and set(value) == {"env"} for value in db.values())
    assert db["password"] == {"env": "BERKA_DAGSTER_MYSQL_PASSWORD"}


@pytest.fixture
def mysql_home(stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DAGSTER_HOME with dagster.mysql.yaml copied in, its variables set for the local stack."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(MYSQL_INSTANCE_CONFIG.read_text())
    for name, value in instance_environment().items():
        monkeypatch.setenv(name, os.environ.get(name, value))
    monkeypatch.setenv("BERKA_DAGSTER_MYSQL_PASSWORD", secret("BERKA_DAGSTER_MYSQL_PASSWORD"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def dagster_db(mysql_home: Path) -> Iterator[pymysql.Connection]:
    """A plain connection to the instance database, as the `dagster` user."""
    connection = pymysql.connect(
        host=os.environ["BERKA_MYSQL_HOST"], port=int(os.environ["BERKA_MYSQL_PORT"]),
        user=os.environ["BERKA_DAGSTER_MYSQL_USER"],
        password=os.environ["BERKA_DAGSTER_MYSQL_PASSWORD"],
        database=os.environ["BERKA_DAGSTER_MYSQL_DATABASE"], autocommit=True,
    )
    try:
        yield connection
    finally:
        connection.close()


def query(connection: pymysql.Connection, sql: str, *args: object) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


@pytest.mark.integration
def test_runs_and_events_are_stored_in_mysql(mysql_home: Path, dagster_db) -> None:
    instance = dg.DagsterInstance.get()
    run_id = None
    try:
        assert type(instance.run_storage).__name__ == "MySQLRunStorage"
        assert type(instance.event_log_storage).__name__ == "MySQLEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "MySQLScheduleStorage"
        instance.upgrade()  # migrate: a no-op on an up-to-date schema
        assert query(dagster_db, "SELECT version_num FROM alembic_version")

        result = dg.materialize([probe], instance=instance, tags={"berka/test": "ui"})
        assert result.success
        run_id = result.run_id

        assert query(dagster_db, "SELECT status, pipeline_name FROM runs WHERE run_id = %s",
                     run_id) == [("SUCCESS", result.dagster_run.job_name)]
        events = {row[0] for row in query(
            dagster_db, "SELECT dagster_event_type FROM event_logs WHERE run_id = %s", run_id)}
        assert {"STEP_SUCCESS", "ASSET_MATERIALIZATION", "PIPELINE_SUCCESS"} <= events, events
        assert query(dagster_db, "SELECT COUNT(*) FROM asset_keys WHERE asset_key = %s",
                     PROBE_KEY.to_string()) == [(1,)]
        # A new instance from the same file reads it back.
        fresh = dg.DagsterInstance.get()
        try:
            latest = fresh.get_latest_materialization_event(PROBE_KEY)
            assert latest is not None and latest.run_id == run_id
        finally:
            fresh.dispose()
    finally:
        if run_id is not None:
            instance.delete_run(run_id)
        instance.dispose()
        for table in ("event_logs", "asset_event_tags", "asset_keys"):
            query(dagster_db, f"DELETE FROM {table} WHERE asset_key = %s", PROBE_KEY.to_string())


@pytest.mark.integration
def test_daemon_records_sensor_ticks_in_mysql(
    mysql_home: Path, dagster_db, tmp_path: Path, artifacts: Path
) -> None:
    # The database is shared: this daemon must not launch or monitor other instances' runs, so
    # it gets the file's storage but no run queue (queued runs are left to their own daemon).
    config = yaml.safe_load((mysql_home / "dagster.yaml").read_text())
    del config["run_queue"]
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator",
                                 "class": "DefaultRunCoordinator"}
    config["run_monitoring"] = {"enabled": False}
    config["auto_materialize"] = {"enabled": False}
    (mysql_home / "dagster.yaml").write_text(yaml.safe_dump(config))

    location = f"berka_ui_ticks_{uuid.uuid4().hex[:8]}"
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": {
        "relative_path": str(TICK_LOCATION), "location_name": location,
        "working_directory": str(REPO_ROOT)}}]}))
    selector_id = InstigatorSelector(location_name=location, repository_name="__repository__",
                                     name=TICK_SENSOR).get_id()

    heartbeats = "SELECT daemon_type, daemon_id FROM daemon_heartbeats"
    heartbeats_before = set(query(dagster_db, heartbeats))
    log = artifacts / "dagster-daemon-mysql.log"
    log.unlink(missing_ok=True)
    daemon = ProcessGroup("dagster-daemon", log)
    daemon.start([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                  "-w", str(workspace)], env=dict(os.environ), cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 120
        ticks: list[tuple] = []
        while time.monotonic() < deadline and not ticks:
            assert daemon.running(), f"dagster-daemon exited.{daemon.log_tail()}"
            ticks = query(dagster_db, "SELECT status, type FROM job_ticks "
                          "WHERE selector_id = %s AND status <> 'STARTED'", selector_id)
            time.sleep(1)
        assert ticks, f"no tick of {TICK_SENSOR} in MySQL after 120 s.{daemon.log_tail()}"
        assert ticks[0] == ("SKIPPED", "SENSOR")
    finally:
        daemon.stop()
        assert daemon.processes() == [], "dagster-daemon left processes behind"
        for table in ("job_ticks", "instigators", "jobs"):
            query(dagster_db, f"DELETE FROM {table} WHERE selector_id = %s", selector_id)
        for daemon_type, daemon_id in query(dagster_db, heartbeats):
            if (daemon_type, daemon_id) not in heartbeats_before:
                query(dagster_db, "DELETE FROM daemon_heartbeats WHERE daemon_type = %s "
                      "AND daemon_id = %s", daemon_type, daemon_id)
