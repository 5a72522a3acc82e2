"""`berka-stack watch` brings back a real server that was killed or hangs, and leaves alone one
stopped on purpose. The S3-compatible server, in its own var/ folder and on its own port, so
that the test runs beside the stack without touching it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from berka_stack import cli, process, supervisor
from berka_stack.dev import free_port
from berka_stack.s3 import S3Server

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("BERKA_LOCAL_S3_PORT", str(free_port()))
    server = S3Server()
    server.start()
    yield server
    process.kill_daemon(server.name) if server.pid() else None


def test_a_killed_server_is_restarted(server: S3Server) -> None:
    lines: list[str] = []
    watcher = supervisor.Supervisor([server], echo=lines.append)
    assert watcher.check_once() == []

    killed = server.kill()
    assert not process.pid_alive(killed)
    (recovery,) = watcher.check_once()

    assert recovery.service == "s3" and recovery.reason == "its process is gone"
    assert recovery.seconds is not None and not recovery.error
    assert server.pid() not in (None, killed) and server.answers()
    assert any("s3: back in" in line for line in lines), lines
    assert watcher.check_once() == []


def test_a_hung_server_is_killed_and_restarted_after_the_grace_period(server: S3Server) -> None:
    watcher = supervisor.Supervisor([server], unhealthy_after=1.0, echo=lambda line: None)
    hung = server.pid()
    os.kill(hung, signal.SIGSTOP)  # alive, but answers nothing
    try:
        assert watcher.check_once() == []  # not yet: it may be busy for a moment
        time.sleep(1.2)
        (recovery,) = watcher.check_once()
    finally:
        if process.pid_alive(hung):
            os.kill(hung, signal.SIGCONT)
    assert recovery.reason.startswith("no answer for")
    assert recovery.seconds is not None
    assert not process.pid_alive(hung)
    assert server.pid() != hung and server.answers()


def test_a_server_stopped_with_down_stays_down_until_up(
    server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `up` first prepares Java, secrets and jars, which live in the real var/ (not this test's).
    for step in ("check_java", "ensure_secrets", "ensure_jars", "ensure_udf_jar"):
        monkeypatch.setattr(cli.prereqs, step, lambda *args: None)
    watcher = supervisor.Supervisor([server], echo=lambda line: None)
    cli.down(["s3"], echo=lambda line: None)
    assert server.pid() is None
    assert watcher.check_once() == [] and server.pid() is None

    cli.up(["s3"], echo=lambda line: None)  # releases it: a later crash is repaired again
    server.kill()
    (recovery,) = watcher.check_once()
    assert recovery.seconds is not None and server.answers()


def test_a_service_started_without_up_after_a_down_is_watched_again(server: S3Server) -> None:
    # The streaming job is started by its asset, a script or the soak, not by `berka-stack up`:
    # a hold left by an earlier `down` kept the watcher from ever restarting it.
    watcher = supervisor.Supervisor([server], echo=lambda line: None)
    cli.down(["s3"], echo=lambda line: None)
    server.start()
    killed = server.kill()
    (recovery,) = watcher.check_once()
    assert recovery.reason == "its process is gone" and recovery.seconds is not None
    assert server.pid() not in (None, killed) and server.answers()


def test_the_watch_command_restarts_a_killed_server(server: S3Server) -> None:
    """The command users run, as a process of its own: `berka-stack watch s3`."""
    command = [str(Path(sys.executable).with_name("berka-stack")), "watch", "s3",
               "--interval", "0.5"]
    # Started as from a script run in the background (CI): SIGINT ignored, as it inherits.
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=os.environ.copy(),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(watcher.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("watching s3" in line for line in lines):
            assert watcher.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.1)
        killed = server.kill()
        assert not process.pid_alive(killed)
        deadline = time.monotonic() + 60
        while not any("s3: back in" in line for line in lines):
            assert watcher.poll() is None, lines
            assert time.monotonic() < deadline, f"the watch command did not restart s3: {lines}"
            time.sleep(0.2)
        assert server.pid() not in (None, killed)  # it answered when "back in" was printed
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            stopped = watcher.wait(30) is not None
        except subprocess.TimeoutExpired:
            watcher.kill()
            stopped = False
        reader.join(10)
    assert stopped, "the watch command did not stop on SIGINT"
