"""`berka-dev` itself: DAGSTER_HOME preparation, serving, and a clean stop on Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from berka_core.config import REPO_ROOT
from berka_stack.dev import (
    ProcessGroup,
    free_port,
    prepare_dagster_home,
    processes_with_environment,
)
from berka_stack.process import port_open


def test_prepare_dagster_home_links_the_config_and_keeps_a_copied_one(tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("telemetry:\n  enabled: false\n")
    second.write_text("telemetry:\n  enabled: false\n")
    home = tmp_path / "var" / "dagster-home"

    target = prepare_dagster_home(home, first)
    assert target == home.resolve() / "dagster.yaml"
    assert target.is_symlink() and target.resolve() == first.resolve()
    assert prepare_dagster_home(home, second).resolve() == second.resolve()  # re-pointed

    target.unlink()
    target.write_text("# copied by hand, e.g. dagster.mysql.yaml\n")
    prepare_dagster_home(home, first)
    assert not target.is_symlink()
    assert target.read_text().startswith("# copied by hand")


# On SIGTERM it starts a child, as dagster dev restarts a code server while it shuts down, and
# exits once that child is gone. The child never saw the first SIGTERM (it did not exist yet).
RESTARTS_ON_SIGTERM = """
import signal, subprocess, sys, time
children = []
def restart(*_):
    children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
    print("restarted", children[-1].pid, flush=True)
signal.signal(signal.SIGTERM, restart)
print("ready", flush=True)
while not children or children[-1].poll() is None:
    time.sleep(0.1)
"""


def test_process_group_stop_also_signals_processes_started_during_the_stop(
    tmp_path: Path,
) -> None:
    log = tmp_path / "group.log"
    group = ProcessGroup("restarter", log)
    group.start([sys.executable, "-u", "-c", RESTARTS_ON_SIGTERM])
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "ready" in log.read_text()

    stopping = time.monotonic()
    group.stop(timeout=20)  # a SIGKILL fallback would take 20 s
    assert time.monotonic() - stopping < 10, log.read_text()
    assert "restarted" in log.read_text()  # the latecomer existed and was stopped too
    assert group.processes() == []


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        if text in output:
            return output
        assert process.poll() is None, f"berka-dev exited ({process.returncode}):\n{output}"
        time.sleep(0.5)
    raise AssertionError(f"no {text!r} from berka-dev in {timeout:g} s:\n{log.read_text()}")


@pytest.mark.integration
@pytest.mark.parametrize("stop_with", ["SIGINT", "SIGTERM"])
def test_berka_dev_serves_the_ui_and_stops_cleanly(
    stop_with: str,
    isolated_env: dict[str, str],
    test_instance_config: Path,
    tmp_path: Path,
    artifacts: Path,
) -> None:
    port = free_port()
    home = (tmp_path / "dagster-home").resolve()
    command = [sys.executable, "-m", "berka_stack.dev", "--port", str(port),
               "--dagster-home", str(home)]
    if stop_with == "SIGINT":
        # Ctrl-C, as `berka-dev &` in a script gets it: with SIGINT ignored from the start.
        command.append("--no-sensor")
        preexec = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    else:
        # With the Kafka sensor on; its micro-batch runs stay queued (test instance config).
        command += ["--instance-config", str(test_instance_config)]
        preexec = None
    log = artifacts / f"berka-dev-{stop_with}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **isolated_env}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec,
        )
    try:
        output = _wait_for_line(log, f"Dagster UI: http://127.0.0.1:{port}", process, 180)
        if stop_with == "SIGTERM":
            assert "sensor kafka_trans_sensor: RUNNING" in output
            assert "sensor berka_automation_sensor: RUNNING" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=10) as r:
            assert "dagster_webserver_version" in json.load(r)
        assert (home / "dagster.yaml").is_symlink()
        started = processes_with_environment("DAGSTER_HOME", str(home))
        assert len(started) >= 4  # dagster dev, webserver, daemon, code server(s)

        stopping = time.monotonic()
        process.send_signal(getattr(signal, stop_with))
        assert process.wait(timeout=90) == 0, log.read_text()
        # Stopped by SIGTERM to its process group, without the SIGKILL fallback (30 s).
        assert time.monotonic() - stopping < 25, log.read_text()
        assert "[berka-dev] stopped" in log.read_text()
        assert not port_open("127.0.0.1", port)
        assert processes_with_environment("DAGSTER_HOME", str(home)) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in processes_with_environment("DAGSTER_HOME", str(home)):
            os.kill(pid, signal.SIGKILL)
