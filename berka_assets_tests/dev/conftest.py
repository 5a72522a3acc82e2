"""Fixtures of the UI tests: one real `dagster dev` for the package, isolated from the stack's data.

The dagster dev under test loads the real code location, but
- its DAGSTER_HOME is a temporary folder (SQLite storage, the repo's dagster.yaml settings),
- its reference tables go to a throw-away MySQL database `berka_test_ui_*` (dropped at the end),
- micro-batch runs that the Kafka sensor requests stay queued: the instance config is the repo's
  dagster.yaml with the `berka/microbatch` tag limit set to 0, so a test never starts Spark work
  on the shared stack, while the sensor still ticks against the real Kafka topic.
Every process started here is stopped by the fixture, also when a test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from berka_assets.resources.mysql import MySQLResource
from berka_assets_tests.dev.expected import KAFKA_SENSOR
from berka_core.config import Settings, secret, var_dir
from berka_stack.dev import INSTANCE_CONFIG, DagsterDev

ARTIFACTS = var_dir() / "screenshots" / "ui"


@pytest.fixture(scope="package")
def artifacts() -> Path:
    """Screenshots and logs of the UI tests (var/screenshots/ui/, git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="package")
def isolated_env(stack: Settings) -> Iterator[dict[str, str]]:
    """Environment of a dagster dev under test: its own MySQL database and Hive database name."""
    name = f"{stack.mysql.database}_test_ui_{uuid.uuid4().hex[:8]}"
    admin = MySQLResource(database=stack.mysql.database,
                          password=secret(stack.mysql.password_env))
    with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield {"BERKA_MYSQL_DATABASE": name, "BERKA_HIVE_DATABASE": name}
    finally:
        with admin.connect(autocommit=True) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="package")
def test_instance_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's dagster.yaml, but micro-batch runs are never dequeued (tag limit 0)."""
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    limits = config["run_queue"]["tag_concurrency_limits"]
    microbatch = [limit for limit in limits if limit["key"] == "berka/microbatch"]
    assert microbatch, "dagster.yaml lost its berka/microbatch run-queue limit"
    for limit in microbatch:
        limit["limit"] = 0
    path = tmp_path_factory.mktemp("instance") / "dagster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="package")
def dagster_dev(
    isolated_env: dict[str, str],
    test_instance_config: Path,
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: Path,
) -> Iterator[DagsterDev]:
    """A real `dagster dev` of the project on a free port, stopped with all its processes."""
    log = artifacts / "dagster-dev.log"
    log.unlink(missing_ok=True)
    dev = DagsterDev(
        dagster_home=tmp_path_factory.mktemp("dagster-home"),
        instance_config=test_instance_config,
        env=isolated_env,
        log_path=log,
    )
    dev.start()  # stops what it started if it fails
    try:
        yield dev
    finally:
        dev.stop()
        assert dev.processes() == [], "dagster dev left processes behind"


@pytest.fixture(scope="package")
def kafka_sensor(dagster_dev: DagsterDev) -> str:
    """The Kafka sensor, switched on in the dagster dev under test."""
    assert dagster_dev.start_sensor(KAFKA_SENSOR) == "RUNNING"
    return KAFKA_SENSOR


def chromium_and_driver() -> tuple[str, str]:
    """Debian's chromium and chromedriver; installed here if missing and possible, else skip."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found  # type: ignore[return-value]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600,
                           check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                            "chromium", "chromium-driver"], capture_output=True, timeout=900,
                           check=True, env=env)
        except (subprocess.SubprocessError, OSError):
            pass
        found = shutil.which("chromium"), shutil.which("chromedriver")
        if all(found):
            return found  # type: ignore[return-value]
    pytest.skip("Debian's chromium and chromium-driver are not installed and could not be "
                "installed here (`make bootstrap` installs them)")
