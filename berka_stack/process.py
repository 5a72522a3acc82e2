"""Background processes with pid files: start, find, wait for, stop; and one-off set-up commands.

Every service of the local stack is one detached process group whose pid is kept in
`var/run/<name>.pid`, so `berka-stack down` (or a test fixture) can stop it from any shell.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from berka_core.config import var_dir

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service could not be prepared, started or reached; the message says what to do."""


def run_dir() -> Path:
    path = var_dir() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    path = var_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file(name: str) -> Path:
    return run_dir() / f"{name}.pid"


def log_file(name: str) -> Path:
    return log_dir() / f"{name}.log"


def read_pid(name: str) -> int | None:
    """The pid of a running service, or None (a stale pid file is removed)."""
    path = pid_file(name)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
    except ValueError:
        path.unlink(missing_ok=True)
        return None
    if not pid_alive(pid):
        _forget_pid(name, pid)
        return None
    return pid


def _forget_pid(name: str, pid: int) -> None:
    """Remove the pid file if it still names `pid`: a supervisor may have started the service
    again, with a pid file of its own, since `pid` was read."""
    path = pid_file(name)
    try:
        if int(path.read_text().strip()) != pid:
            return
    except (FileNotFoundError, ValueError):
        pass
    path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    if pid <= 0:  # a damaged pid file; psutil refuses negative pids
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess included (macOS raises it for zombies)
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(host: str, port: int, timeout: float) -> bool:
    """True once nothing accepts connections on host:port (False after `timeout`)."""
    deadline = time.monotonic() + timeout
    while port_open(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def ensure_port_free(name: str, host: str, port: int, *, wait: float = 0.0) -> None:
    """Raise unless the port is free (after waiting up to `wait` s for an exiting owner)."""
    if not wait_port_closed(host, port, wait):
        raise StackError(
            f"{name}: port {host}:{port} is already in use by another process. Stop it, or set "
            f"the port variable for {name} (see berka_core/config.py) to a free port."
        )


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def run_setup_command(what: str, command: Sequence[str]) -> None:
    """Run a one-off set-up command (formatting storage, initialising a data folder) to its end;
    on failure raise StackError "<what> failed:" with the tail of its output."""
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{what} failed:\n" + (result.stdout + result.stderr)[-3000:])


# Markers pyspark sets in a process that holds a Spark Connect session; inherited by a daemon they
# would turn its classic Spark session into a (failing) Connect client.
CLIENT_ONLY_VARIABLES = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "SPARK_REMOTE")


def start_daemon(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start `command` detached in its own process group, logging to var/logs/<name>.log."""
    log = log_file(name)
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={
                **{k: v for k, v in os.environ.items() if k not in CLIENT_ONLY_VARIABLES},
                **(env or {}),
            },
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
    pid_file(name).write_text(str(process.pid))
    return process.pid


def wait_until(
    name: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    pid: int | None = None,
    interval: float = 0.25,
) -> float:
    """Poll `ready` until true; fail with the log's tail on timeout or if the process died."""
    started = time.monotonic()
    while True:
        try:
            if ready():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a health probe may fail in many ways while starting
            pass
        if pid is not None and not pid_alive(pid):
            raise StackError(
                f"{name} exited while starting. Last lines of {log_file(name)}:\n"
                f"{tail(log_file(name))}"
            )
        if time.monotonic() - started > timeout:
            raise StackError(
                f"{name} did not become ready within {timeout:g} s. Last lines of "
                f"{log_file(name)}:\n{tail(log_file(name))}"
            )
        time.sleep(interval)


def stop_daemon(name: str, *, timeout: float = 30.0) -> bool:
    """SIGTERM the service's process group, SIGKILL what is left after `timeout`."""
    pid = read_pid(name)
    if pid is None:
        return False
    if not _signal_and_wait(pid, signal.SIGTERM, timeout, poll=0.2):
        log.warning("%s (pid %s) did not stop within %.0f s of SIGTERM; killing it", name, pid,
                    timeout)
        _signal_and_wait(pid, signal.SIGKILL, 10)
    _forget_stopped(name, pid, pid_alive, "survived SIGTERM and SIGKILL; stop it by hand.")
    return True


def kill_daemon(name: str) -> int:
    """SIGKILL the service's whole process group at once: a crash, as tests need it. Returns
    the pid it killed; raises when nothing ran or when the group outlived the signal."""
    pid = read_pid(name)
    if pid is None or not pid_alive(pid):
        raise StackError(f"{name} is not running: nothing to kill")
    _signal_and_wait(pid, signal.SIGKILL, 10)
    _forget_stopped(name, pid, _group_alive, "survived SIGKILL for 10 s")
    return pid


def _forget_stopped(name: str, pid: int, alive: Callable[[int], bool], survived: str) -> None:
    """After the signals: reap, raise StackError "<name> (pid <pid>) <survived>" while
    `alive(pid)`, else remove the pid file. A stop asks for the leader gone (pid_alive), a kill
    for the whole group (_group_alive)."""
    _reap(pid)
    if alive(pid):
        raise StackError(f"{name} (pid {pid}) {survived}")
    _forget_pid(name, pid)


def _signal_and_wait(pid: int, sig: signal.Signals, timeout: float, poll: float = 0.1) -> bool:
    """Signal the group, then wait up to `timeout` for it to be gone; True if it is."""
    _signal_group(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(poll)
    return not _group_alive(pid)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the service's process group, and the process itself in case it left the group."""
    for send in (os.killpg, os.kill):
        try:
            send(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid_alive(pid) or _group_has_live_members(pid)


def _group_has_live_members(pgid: int) -> bool:
    return bool(process_group_members(pgid))


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    members = []
    for candidate in psutil.process_iter():
        try:
            # psutil has no process group id; os.getpgid is POSIX (Linux and macOS).
            if os.getpgid(candidate.pid) != pgid:
                continue
            if candidate.status() != psutil.STATUS_ZOMBIE:
                members.append(candidate.pid)
        except (OSError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def _reap(pid: int) -> None:
    # Collect our own zombie child if this process started the service.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (none once it is gone)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return False


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    except psutil.AccessDenied:  # descendants not listable: the process alone
        tree = [root]
    total = 0
    for member in tree:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # exited since, a zombie, not ours
            continue
    return total
