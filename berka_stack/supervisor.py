"""`berka-stack watch`: bring back a service of the local stack that died or stopped answering.

In production systemd (`Restart=on-failure`) or a Kubernetes liveness probe does this; locally
the watcher does the same for the services it was given, so that a crash (`kill -9`, an out of
memory kill) is repaired without a person. A service stopped on purpose with `berka-stack down`
is held (a marker under var/run) and left alone until it is started again, by `berka-stack up`
or any other start (service.py).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from berka_stack.service import Service, held


@dataclass
class Recovery:
    """One restart: why, when, and how long until the service answered again."""

    service: str
    reason: str
    detected_at: float  # epoch seconds
    seconds: float | None = None  # None while it failed to come back
    error: str = ""


@dataclass
class _Watched:
    service: Service
    unhealthy_since: float | None = None
    retry_at: float = 0.0
    backoff: float = 0.0
    restarting: threading.Thread | None = None


@dataclass
class Supervisor:
    """Checks every `interval` seconds; restarts a service whose process is gone, or whose
    process runs but has not answered its health check for `unhealthy_after` seconds (hung)."""

    services: list[Service]
    interval: float = 2.0
    unhealthy_after: float = 60.0
    echo: Callable[[str], None] = print
    recoveries: list[Recovery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._watched = [_Watched(service) for service in self.services]

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        names = ", ".join(service.name for service in self.services)
        self._say(f"watching {names} every {self.interval:g} s")
        while not stop.wait(self.interval):
            self.check_once(wait=False)

    def check_once(self, wait: bool = True) -> list[Recovery]:
        """Restart what needs it; the recoveries done. With `wait=False` (the watch loop) each
        restart runs in a thread of its own: a start can take minutes (the streaming job
        finishing a crashed batch) and must not hold back the repair of another service."""
        done = []
        for watched in self._watched:
            if watched.restarting is not None and watched.restarting.is_alive():
                continue
            reason = self._needs_restart(watched)
            if not reason or time.monotonic() < watched.retry_at:
                continue
            if wait:
                done.append(self._restart(watched, reason))
            else:
                watched.restarting = threading.Thread(
                    target=self._restart, args=(watched, reason), daemon=True,
                    name=f"restart-{watched.service.name}")
                watched.restarting.start()
        return done

    def _needs_restart(self, watched: _Watched) -> str:
        service = watched.service
        if held(service.name):
            watched.unhealthy_since = None
            return ""
        if service.pid() is None:
            return "its process is gone"
        if service.answers():
            watched.unhealthy_since = None
            return ""
        now = time.monotonic()
        watched.unhealthy_since = watched.unhealthy_since or now
        if now - watched.unhealthy_since >= self.unhealthy_after:
            return f"no answer for {now - watched.unhealthy_since:.0f} s"
        return ""

    def _restart(self, watched: _Watched, reason: str) -> Recovery:
        service = watched.service
        recovery = Recovery(service.name, reason, time.time())
        self._say(f"{service.name}: {reason}; restarting")
        started = time.monotonic()
        try:
            if service.pid() is not None:  # hung: nothing graceful can be expected of it
                service.kill()
            service.start()
        except Exception as error:  # noqa: BLE001 - keep watching; try again after a back-off
            watched.backoff = min(60.0, max(2.0, watched.backoff * 2))
            watched.retry_at = time.monotonic() + watched.backoff
            recovery.error = str(error).splitlines()[0][:300] if str(error) else repr(error)
            self._say(f"{service.name}: restart failed ({recovery.error}); "
                      f"next try in {watched.backoff:.0f} s")
        else:
            watched.backoff, watched.unhealthy_since = 0.0, None
            recovery.seconds = time.monotonic() - started
            self._say(f"{service.name}: back in {recovery.seconds:.1f} s")
        self.recoveries.append(recovery)
        return recovery

    def _say(self, text: str) -> None:
        self.echo(f"{dt.datetime.now():%Y-%m-%d %H:%M:%S} watch: {text}")
