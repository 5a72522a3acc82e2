"""The psutil-based process helpers of berka_stack.process and berka_stack.dev, on
real child processes (`sleep`), without any server."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from berka_stack import dev, process

Spawn = Callable[..., subprocess.Popen]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a command; whatever is left of it (and of its session) is killed and reaped after."""
    started: list[tuple[subprocess.Popen, bool]] = []

    def start(command: list[str], *, new_session: bool = False,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        child = subprocess.Popen(command, start_new_session=new_session, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})})
        started.append((child, new_session))
        return child

    yield start
    for child, new_session in started:
        for send in ((os.killpg,) if new_session else ()) + (os.kill,):
            try:
                send(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            child.wait(5)
        except ChildProcessError:  # already reaped by process._reap
            pass


def _wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _make_zombie(child: subprocess.Popen) -> int:
    """SIGKILL our child without reaping it: it stays a zombie until the fixture waits for it."""
    os.kill(child.pid, signal.SIGKILL)
    _wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
    return child.pid


def _tree(spawn: Spawn, **kwargs) -> tuple[subprocess.Popen, int]:
    """A `sleep` with a `sleep` child of its own: (parent, child's pid)."""
    parent = spawn(["sh", "-c", "sleep 30 & exec sleep 30"], **kwargs)
    _wait_for(lambda: process.children(parent.pid))
    return parent, process.children(parent.pid)[0]


def _gone_pid(spawn: Spawn) -> int:
    child = spawn(["true"])
    child.wait(5)
    return child.pid


def test_pid_alive_running_zombie_and_gone(spawn: Spawn) -> None:
    running = spawn(["sleep", "30"])
    assert process.pid_alive(running.pid)
    assert process.pid_alive(os.getpid())
    assert not process.pid_alive(_make_zombie(spawn(["sleep", "30"])))
    assert not process.pid_alive(_gone_pid(spawn))


def test_children_lists_direct_children_only(spawn: Spawn) -> None:
    parent, child = _tree(spawn)
    assert process.children(parent.pid) == [child]
    assert process.children(child) == []
    assert parent.pid in process.children(os.getpid())
    assert child not in process.children(os.getpid())
    assert process.children(_gone_pid(spawn)) == []


def test_children_include_a_zombie_child(spawn: Spawn) -> None:
    zombie = _make_zombie(spawn(["sleep", "30"]))
    assert zombie in process.children(os.getpid())


def test_rss_bytes_sums_the_process_tree(spawn: Spawn) -> None:
    parent, _child = _tree(spawn)
    own = psutil.Process(parent.pid).memory_info().rss
    assert own > 0
    assert process.rss_bytes(parent.pid) > own  # the child's memory is added
    assert process.rss_bytes(_gone_pid(spawn)) == 0


def test_process_group_members_skip_zombies(spawn: Spawn) -> None:
    leader, child = _tree(spawn, new_session=True)
    spawn(["sleep", "30"])  # ours, but in our own group
    assert sorted(process.process_group_members(leader.pid)) == sorted([leader.pid, child])
    assert dev.process_group_members is process.process_group_members
    assert process._group_has_live_members(leader.pid)
    # The leader (our child) stays a zombie; its child, killed too, is a zombie or gone (reaped
    # by whoever it was reparented to): the group has no live member left.
    os.kill(child, signal.SIGKILL)
    _make_zombie(leader)
    _wait_for(lambda: not process.pid_alive(child))
    assert process.process_group_members(leader.pid) == []
    assert not process._group_has_live_members(leader.pid)


def test_processes_with_environment(spawn: Spawn) -> None:
    marker = uuid.uuid4().hex
    name = "BERKA_TEST_PROCESS_MARKER"
    marked = spawn(["sleep", "30"], env={name: marker})
    spawn(["sleep", "30"], env={name: marker + "-other"})
    spawn(["sleep", "30"])
    _wait_for(lambda: psutil.Process(marked.pid).environ().get(name) == marker)  # exec'd
    assert dev.processes_with_environment(name, marker) == [marked.pid]
    assert dev.processes_with_environment(name, "no-such-value") == []
    _make_zombie(marked)
    assert dev.processes_with_environment(name, marker) == []


def test_stop_daemon_stops_the_whole_group(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    pid = process.start_daemon("sleeper", ["sh", "-c", "sleep 30 & sleep 30 & wait"])
    _wait_for(lambda: len(process.children(pid)) == 2)
    grandchildren = process.children(pid)
    assert process.read_pid("sleeper") == pid
    assert process.stop_daemon("sleeper", timeout=5)
    assert not process.pid_alive(pid)
    assert not any(process.pid_alive(p) for p in grandchildren)
    assert not process._group_alive(pid)
    assert process.read_pid("sleeper") is None


def test_a_stop_keeps_the_pid_file_of_a_restart_that_raced_it(monkeypatch, tmp_path: Path,
                                                              spawn: Spawn) -> None:
    """`berka-stack watch` restarts a service as soon as its leader is gone, while the stop
    still waits for the rest of the old process group: the stop must not delete the new pid
    file (found by the soak: a Kafka restarted that way ran untracked, and the watcher tried to
    start it again and again, 'port already in use')."""
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    # The leader exits on SIGTERM; a member of its group ignores it for two seconds.
    old = process.start_daemon("racer", ["sh", "-c", "(trap '' TERM; sleep 2) & wait"])
    _wait_for(lambda: len(process.children(old)) == 1)
    restarted: list[int] = []

    def watcher() -> None:
        _wait_for(lambda: not process.pid_alive(old))
        restarted.append(process.start_daemon("racer", ["sleep", "30"]))

    thread = threading.Thread(target=watcher)
    thread.start()
    assert process.stop_daemon("racer", timeout=10)
    thread.join(10)
    assert restarted and process.pid_alive(restarted[0])
    try:
        assert process.read_pid("racer") == restarted[0]
    finally:
        os.killpg(restarted[0], signal.SIGKILL)
