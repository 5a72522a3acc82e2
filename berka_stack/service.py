"""The shape every local service shares, so the CLI and the test fixtures treat them alike."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from berka_stack import process

# How long a stopped service's port may take to be released.
PORT_RELEASE_SECONDS = 15.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    up: bool
    address: str
    version: str
    pid: int | None
    rss_bytes: int

    def line(self) -> str:
        state = "up  " if self.up else "down"
        memory = f"{self.rss_bytes / 2**20:7.0f} MiB" if self.pid else "       -   "
        return f"{self.name:<14} {state} {self.address:<22} {memory}  {self.version}"


class Service(ABC):
    """A process of the local stack, started and stopped through its pid file."""

    name: str
    start_timeout: float = 90.0
    # Graceful stop first; SIGKILL after this long.
    stop_timeout: float = 30.0

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def is_healthy(self) -> bool:
        """A real round trip with the server, not only an open port."""

    @abstractmethod
    def _launch(self) -> int:
        """Prepare files and start the process; return its pid."""

    def version(self) -> str:
        return ""

    def after_start(self) -> None:  # noqa: B027 - optional hook, most services need nothing
        """One-off set-up once healthy (databases, topics...). Must be idempotent."""

    def pid(self) -> int | None:
        return process.read_pid(self.name)

    def log_path(self) -> Path:
        return process.log_file(self.name)

    @property
    def timeout(self) -> float:
        """Start timeout, overridable per service: BERKA_<NAME>_START_TIMEOUT (seconds)."""
        variable = f"BERKA_{self.name.upper().replace('-', '_')}_START_TIMEOUT"
        return float(os.environ.get(variable, self.start_timeout))

    def start(self) -> float:
        """Start if not running; wait until healthy; return seconds taken (0 if already up).
        Whoever starts it wants it running: a hold left by `berka-stack down` is released."""
        release(self.name)
        if self.pid() is not None and self.is_healthy():
            self.after_start()
            return 0.0
        if self.pid() is not None:
            # Running but not answering: maybe still starting from another `up`.
            process.wait_until(self.name, self.is_healthy, timeout=self.timeout,
                               pid=self.pid())
            self.after_start()
            return 0.0
        self.check_port_free()
        pid = self._launch()
        try:
            seconds = process.wait_until(self.name, self.is_healthy, timeout=self.timeout,
                                         pid=pid)
            self.after_start()
        except BaseException:
            # Leave nothing half-started behind; the error carries the log's tail.
            process.stop_daemon(self.name, timeout=10)
            raise
        return seconds

    def _host_port(self) -> tuple[str, int]:
        host, port = self.address.rsplit(":", 1)
        return host, int(port)

    def check_port_free(self) -> None:
        # A previous instance that is still exiting lets go of its port within seconds.
        process.ensure_port_free(self.name, *self._host_port(), wait=PORT_RELEASE_SECONDS)

    def stop(self) -> bool:
        """Stop gracefully (SIGKILL after stop_timeout); return once the port is released."""
        stopped = process.stop_daemon(self.name, timeout=self.stop_timeout)
        if stopped:
            process.wait_port_closed(*self._host_port(), PORT_RELEASE_SECONDS)
        return stopped

    def kill(self) -> int:
        """kill -9 of the service's process group; the pid that was killed."""
        return process.kill_daemon(self.name)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        up = pid is not None and self.answers()
        return ServiceStatus(
            name=self.name,
            up=up,
            address=self.address,
            version=self.version() if up else "",
            pid=pid,
            rss_bytes=process.rss_bytes(pid) if pid else 0,
        )

    def answers(self) -> bool:
        """The health check, as a yes or no: for status lines and the watcher, never raising."""
        try:
            return self.is_healthy()
        except Exception:  # noqa: BLE001 - a failed check is a no
            return False


# A service stopped on purpose (`berka-stack down`) is held: `berka-stack watch` leaves it
# stopped until something starts it again.
def _hold_marker(name: str) -> Path:
    return process.run_dir() / f"{name}.held"


def hold(name: str) -> None:
    _hold_marker(name).touch()


def release(name: str) -> None:
    _hold_marker(name).unlink(missing_ok=True)


def held(name: str) -> bool:
    return _hold_marker(name).exists()
