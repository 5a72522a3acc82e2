"""`berka-dev` (`make dev`): the Dagster UI, daemon and code location of the project, locally.

Runs `dagster dev -w workspace.yaml` with DAGSTER_HOME=var/dagster-home (the repo's dagster.yaml
linked into it, so the run queue, sensor and retention settings apply), the local stack's
secrets from .env in the environment, and the Kafka and automation sensors switched on. Ctrl-C
or SIGTERM stops `dagster dev` and everything it started (webserver, daemon, code servers, runs):
they share one process group of their own, which is killed as a whole.

`DagsterDev` is the same thing as a context manager, with a GraphQL client (dagster-graphql's
for runs, gql for the rest; berka_stack.dagster_ui), for tests and the demo:

    with DagsterDev(port=free_port(), dagster_home=tmp / "home") as dev:
        dev.start_sensor(KAFKA_SENSOR)
        print(dev.url, dev.graphql("{ version }"))

Instance storage: a `dagster.yaml` symlink in DAGSTER_HOME is (re)pointed at the chosen config
(default: the repo's dagster.yaml, SQLite under DAGSTER_HOME); a regular file there is left
alone, so copying dagster.mysql.yaml to var/dagster-home/dagster.yaml switches to MySQL storage.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import IO

import psutil

from berka_assets.automation import AUTOMATION_SENSOR
from berka_core.config import (
    REPO_ROOT,
    get_settings,
    load_secrets_into_environment,
    var_dir,
)
from berka_stack.dagster_ui import (
    DagsterDevError,
    DagsterUIClient,
)
from berka_stack.process import (
    CLIENT_ONLY_VARIABLES,
    port_open,
    process_group_members,
    tail,
)

LOCATION = "berka_assets"
DEFAULT_PORT = 3000
INSTANCE_CONFIG = REPO_ROOT / "dagster.yaml"
MYSQL_INSTANCE_CONFIG = REPO_ROOT / "dagster.mysql.yaml"
WORKSPACE = REPO_ROOT / "workspace.yaml"
MARKER_VARIABLE = "BERKA_DAGSTER_DEV_ID"


def default_dagster_home() -> Path:
    return var_dir() / "dagster-home"


def kafka_sensor_name() -> str:
    """The name of the Kafka sensor of the code location (it follows BERKA_KAFKA_TOPIC)."""
    from berka_assets.sensors.kafka_offsets import kafka_trans_sensor

    return kafka_trans_sensor.name


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def instance_environment() -> dict[str, str]:
    """Defaults of the variables dagster.mysql.yaml reads, for the local stack's MariaDB.

    The password comes from .env (BERKA_DAGSTER_MYSQL_PASSWORD) via
    load_secrets_into_environment; values already in the environment win.
    """
    mysql = get_settings().mysql
    return {
        "BERKA_MYSQL_HOST": mysql.host,
        "BERKA_MYSQL_PORT": str(mysql.port),
        "BERKA_DAGSTER_MYSQL_USER": "dagster",
        "BERKA_DAGSTER_MYSQL_DATABASE": "dagster",
    }


def prepare_dagster_home(home: Path, instance_config: Path = INSTANCE_CONFIG) -> Path:
    """Create DAGSTER_HOME and link `instance_config` there as dagster.yaml.

    A symlink already there is re-pointed; a regular file (a copied dagster.mysql.yaml, say) is
    the user's choice and kept. Returns the dagster.yaml that applies.
    """
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if target.is_symlink() or not target.exists():
        target.unlink(missing_ok=True)
        target.symlink_to(instance_config.resolve())
    return target


def is_run_worker(candidate: psutil.Process) -> bool:
    """A Dagster run's own process: the code server forks it through multiprocessing
    (`spawn_main`); launched by hand or by older launchers it is `dagster api execute_run`."""
    try:
        command = " ".join(candidate.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "spawn_main" in command or "execute_run" in command


def run_workers(root_pids: Iterable[int]) -> list[psutil.Process]:
    """The live run processes among these processes and their descendants."""
    found: dict[int, psutil.Process] = {}
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        found.update((p.pid, p) for p in tree if is_run_worker(p))
    return list(found.values())


def processes_with_environment(name: str, value: str) -> list[int]:
    """Live processes whose environment has name=value (readable ones: ours, as the same user)."""
    found = []
    for candidate in psutil.process_iter():
        if candidate.pid == os.getpid():
            continue
        try:
            if candidate.status() == psutil.STATUS_ZOMBIE:
                continue
            if candidate.environ().get(name) == value:
                found.append(candidate.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone, or another user's
            continue
    return found


def _default_signals() -> None:
    """In the child before exec: Ctrl-C and SIGTERM do their default again.

    A program started in the background of a non-interactive shell inherits SIGINT ignored, and
    passes that on; dagster dev stops its webserver and daemon with SIGINT, so they would ignore
    it and only a SIGKILL would end them.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ProcessGroup:
    """A command in a session (process group) of its own, stopped with everything it started.

    Each process it starts inherits a marker variable, so a stray that left the group (a
    `setsid` child) is found and stopped as well.
    """

    def __init__(self, name: str, log_path: Path | None = None) -> None:
        self.name = name
        self.log_path = log_path  # None: output goes to this process's stdout/stderr
        self.marker = uuid.uuid4().hex
        self._popen: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self, command: list[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> int:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        out: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self._log = self.log_path.open("ab")
        environment = {k: v for k, v in (env or os.environ).items()
                       if k not in CLIENT_ONLY_VARIABLES}
        bin_dir = str(Path(sys.executable).parent)  # the venv's dagster, dagster-daemon, ...
        environment["PATH"] = bin_dir + os.pathsep + environment.get("PATH", "")
        environment[MARKER_VARIABLE] = self.marker
        self._popen = subprocess.Popen(
            command,
            cwd=str(cwd) if cwd else None,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
        return self._popen.pid

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def processes(self) -> list[int]:
        """Every live process of the group, and marked strays that left it."""
        if self._popen is None:
            return []
        self._popen.poll()  # reap the leader once it exited
        found = set(process_group_members(self._popen.pid))
        found.update(processes_with_environment(MARKER_VARIABLE, self.marker))
        return sorted(found)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM all of it, SIGKILL what is left after `timeout`; raise if anything survives.

        While it waits it also signals processes that appear after the first signal: dagster dev
        may restart a code server during its own shutdown, and that one never got the first.
        """
        if self._popen is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            targets = self.processes()
            if not targets:
                break
            signalled = set(targets)
            self._signal([self._popen.pid, *targets], sig, group=True)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                alive = self.processes()
                if not alive:
                    break
                latecomers = [pid for pid in alive if pid not in signalled]
                signalled.update(latecomers)
                self._signal(latecomers, sig, group=False)
                time.sleep(0.2)
        left = self.processes()
        if self._log is not None:
            self._log.close()
            self._log = None
        if left:
            raise DagsterDevError(f"{self.name}: processes {left} survived SIGKILL")
        self._popen = None

    @staticmethod
    def _signal(pids: list[int], sig: signal.Signals, *, group: bool) -> None:
        for pid in dict.fromkeys(pids):
            for send in (os.killpg, os.kill) if group else (os.kill,):
                try:
                    send(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None:
            return ""
        return f" Last lines of {self.log_path}:\n{tail(self.log_path, lines)}"


class DagsterDev(DagsterUIClient):
    """`dagster dev` in a process group of its own, with a GraphQL client. Stop it with stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        dagster_home: Path | None = None,
        instance_config: Path = INSTANCE_CONFIG,
        workspace: Path = WORKSPACE,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        location: str = LOCATION,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.dagster_home = (dagster_home or default_dagster_home()).resolve()
        self.instance_config = instance_config
        self.workspace = workspace
        self.extra_env = dict(env or {})
        self.log_path = log_path  # None: dagster dev writes to this process's stdout/stderr
        self.location = location
        self._process = ProcessGroup("dagster dev", log_path)

    # -- life cycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return self._process.running()

    def environment(self) -> dict[str, str]:
        return {**instance_environment(), **os.environ, **self.extra_env,
                "DAGSTER_HOME": str(self.dagster_home)}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "dagster", "dev", "-w", str(self.workspace),
                "-h", self.host, "-p", str(self.port)]

    def start(self, timeout: float = 180.0) -> DagsterDev:
        """Start dagster dev; return once the webserver answers and the code location loaded."""
        if self.running():
            return self
        if port_open(self.host, self.port):
            raise DagsterDevError(
                f"{self.host}:{self.port} is already in use; pick another port (--port)."
            )
        prepare_dagster_home(self.dagster_home, self.instance_config)
        self._process.start(self.command(), env=self.environment(), cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + timeout
            self._wait(self._server_answers, deadline, "the webserver to answer")
            self.wait_for_location(deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop dagster dev and everything it started (see ProcessGroup.stop)."""
        self._process.stop(timeout)

    def processes(self) -> list[int]:
        return self._process.processes()

    def run_workers(self) -> list[psutil.Process]:
        """The processes of the runs this instance executes right now."""
        return run_workers(self.processes())

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------
    def _tail(self) -> str:
        return self._process.log_tail()


# -- berka-dev --------------------------------------------------------------------------------
def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="berka-dev", description="The Dagster UI, daemon and code location, locally."
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"webserver port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="webserver address")
    parser.add_argument("--no-sensor", action="store_true",
                        help="do not switch the Kafka and automation sensors on")
    parser.add_argument("--dagster-home", type=Path, default=None,
                        help="DAGSTER_HOME (default var/dagster-home)")
    parser.add_argument("--instance-config", type=Path, default=INSTANCE_CONFIG,
                        help="instance config linked into DAGSTER_HOME (default dagster.yaml; "
                        "dagster.mysql.yaml for MySQL storage)")
    args = parser.parse_args(argv)

    load_secrets_into_environment()
    dev = DagsterDev(port=args.port, host=args.host, dagster_home=args.dagster_home,
                     instance_config=args.instance_config)
    # SIGINT too: started in the background of a script, we would inherit it ignored.
    previous = {sig: signal.signal(sig, _raise_interrupt)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        print(f"[berka-dev] DAGSTER_HOME={dev.dagster_home}", flush=True)
        print(f"[berka-dev] starting dagster dev on {dev.url} ...", flush=True)
        started = time.monotonic()
        dev.start()
        print(f"[berka-dev] code location {LOCATION} loaded in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        if not args.no_sensor:
            for name in (kafka_sensor_name(), AUTOMATION_SENSOR):
                print(f"[berka-dev] sensor {name}: {dev.start_sensor(name)}", flush=True)
        print(f"[berka-dev] Dagster UI: {dev.url}  (Ctrl-C stops it)", flush=True)
        while dev.running():
            time.sleep(0.5)
        print("[berka-dev] dagster dev exited on its own", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\n[berka-dev] stopping dagster dev ...", flush=True)
        return 0
    except DagsterDevError as error:
        print(f"[berka-dev] {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not cut the stop short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            dev.stop()
            print("[berka-dev] stopped", flush=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
