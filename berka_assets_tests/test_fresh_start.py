"""The README's path after `berka-stack wipe --yes`, on a second, isolated stack, as a user runs it:

`make demo` -> `make dev` with new records -> `berka-stack wipe --yes` -> `make demo` ->
`make dev` with new records. Every step is the project's own command in a subprocess; the new
records are sent by `berka-replay` and become visible only through the Dagster daemon's sensor
and its runs. Before the wipe removed the Dagster instance and the warehouse, the second
`make dev` kept the first one's sensor cursor, above the new topic's end offsets, and never
processed anything; the second `make demo` could fail with LOCATION_ALREADY_EXISTS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from dotenv import dotenv_values

from berka_assets_tests import independent
from berka_assets_tests.second_stack import PORTS, berka_stack, command, isolated_env
from berka_core.config import REPO_ROOT
from berka_stack.dev import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLE = REPO_ROOT / "data" / "berka"
SAMPLE_TRANS = SAMPLE / "trans_prefix.asc"

_TRENDS = """
import json
from berka_assets.assets.reports import fetch_trends
from berka_core.config import load_secrets_into_environment
from berka_assets.resources.hive import HiveResource
load_secrets_into_environment()
trends = fetch_trends(HiveResource(), "berka")
print(json.dumps({name: rows for name, (_, rows) in trends.items()}, default=str))
"""


def stack_up(environment: dict[str, str], var: Path) -> None:
    """Start the isolated stack with the repository's credentials: Dagster's commands load
    the .env of their working directory (the repository) over the environment's values."""
    repository_secrets = REPO_ROOT / ".env"
    if repository_secrets.exists() and not (var / ".env").exists():
        var.mkdir(parents=True, exist_ok=True)
        shutil.copy(repository_secrets, var / ".env")
    started = berka_stack(environment, "up")
    assert started.returncode == 0, started.stderr + started.stdout
    environment.update({key: value for key, value in dotenv_values(var / ".env").items()
                        if value is not None})


def demo(environment: dict[str, str], transactions: int) -> str:
    result = subprocess.run(
        [command("berka-demo"), "--transactions", str(transactions), "--rate", "2000"],
        capture_output=True, text=True, env=environment, cwd=REPO_ROOT, timeout=480,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def replay(environment: dict[str, str], messages: int) -> None:
    """New records from the demo's S3 source, from where its replay stopped, as a user sends
    them (the local store accepts any key)."""
    s3 = {"BERKA_S3_ENDPOINT_URL": f"http://127.0.0.1:{PORTS['s3']}",
          "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    result = subprocess.run(
        [command("berka-replay"), "--source", "s3", "--max-messages", str(messages),
         "--rate", "1000", "--no-progress"],
        capture_output=True, text=True, env={**environment, **s3}, cwd=REPO_ROOT, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def hive_trends(environment: dict[str, str]) -> dict[str, list[tuple]]:
    """The three trend views read through the isolated stack's HiveServer2 (PyHive)."""
    result = subprocess.run([sys.executable, "-c", _TRENDS], capture_output=True, text=True,
                            env=environment, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: [tuple(_value(cell) for cell in row) for row in rows]
            for name, rows in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def _value(cell: object) -> object:
    if isinstance(cell, str):
        try:
            return Decimal(cell)
        except InvalidOperation:
            return cell
    return cell


def visible_count(environment: dict[str, str]) -> int:
    return sum(row[1] for row in hive_trends(environment)["yearly_trend"])


class BerkaDev:
    """`make dev` (berka-dev: UI, daemon, Kafka and automation sensors on), stopped with Ctrl-C."""

    def __init__(self, environment: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("a") as output:
            self.process = subprocess.Popen(
                [command("berka-dev"), "--port", str(free_port())], stdout=output,
                stderr=subprocess.STDOUT, env=environment, cwd=REPO_ROOT,
                start_new_session=True)
        deadline = time.monotonic() + 240
        while "sensor kafka_trans_sensor: RUNNING" not in log.read_text():
            assert self.process.poll() is None, "berka-dev exited:\n" + log.read_text()[-3000:]
            assert time.monotonic() < deadline, "berka-dev not up:\n" + log.read_text()[-3000:]
            time.sleep(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def wait_visible(environment: dict[str, str], expected: int, dev: BerkaDev) -> float:
    started = time.monotonic()
    seen = None
    while time.monotonic() - started < 240:
        seen = visible_count(environment)
        if seen >= expected:
            return time.monotonic() - started
        assert dev.process.poll() is None, "berka-dev exited:\n" + dev.log.read_text()[-3000:]
        time.sleep(2)
    raise AssertionError(f"{seen} of {expected} records visible after 240 s; berka-dev's log:\n"
                         + dev.log.read_text()[-4000:])


def test_demo_then_dev_see_new_records_also_after_a_wipe(tmp_path: Path) -> None:
    var = tmp_path / "var"
    environment = isolated_env(var)
    log = tmp_path / "berka-dev.log"
    try:
        stack_up(environment, var)
        demo(environment, 600)
        dev = BerkaDev(environment, log)
        try:
            replay(environment, 100)
            wait_visible(environment, 700, dev)
        finally:
            dev.stop()
        assert (var / "dagster-home").exists() and (var / "warehouse").exists()

        wiped = berka_stack(environment, "wipe", "--yes")
        assert wiped.returncode == 0, wiped.stderr + wiped.stdout
        assert not (var / "dagster-home").exists(), "the sensor's old cursor survived the wipe"
        assert not (var / "warehouse").exists(), "the old Delta files survived the wipe"

        # A smaller topic than before: the old cursor (700) would sit above its end (500).
        stack_up(environment, var)
        output = demo(environment, 300)
        assert "300 messages delivered to trans" in output, output[-3000:]
        dev = BerkaDev(environment, log)
        try:
            replay(environment, 200)
            took = wait_visible(environment, 500, dev)
            print(f"new records visible through the daemon {took:.0f} s after the replay")
        finally:
            dev.stop()
        assert hive_trends(environment) == independent.trends(
            SAMPLE, SAMPLE_TRANS, independent.first_trans_ids(SAMPLE_TRANS, 500))
    finally:
        berka_stack(environment, "down")
