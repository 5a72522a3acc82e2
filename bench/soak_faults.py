"""The soak's faults, one at a time and in rotation. The harness only kills or stops; what brings
a service back is the product: `berka-stack watch` for the servers and the streaming job,
Dagster's run monitoring and run retries for a killed micro-batch run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from berka_stack.dev import run_workers
from berka_stack.kafka import Kafka
from berka_stack.mariadb import MariaDB
from berka_stack.service import Service
from berka_stack.spark import SparkConnectServer, StreamingJob, ThriftServer

FAULT_NAMES = ["kill -9 spark-connect", "kill -9 streaming-job", "kafka restart",
               "mariadb restart", "kill -9 run worker", "thrift-server restart"]


@dataclass
class Injected:
    name: str
    at: float  # epoch seconds
    detail: str
    recovered_in: float | None = None  # seconds until the service answered and both paths moved


class Faults:
    """Each fault returns what it did; `service_of` names the service whose answer ends it."""

    def __init__(self, daemon_pid: Callable[[], int], only: list[str] | None = None) -> None:
        self._daemon_pid = daemon_pid
        rotation: list[tuple[str, Callable[[], str], Service | None]] = [
            ("kill -9 spark-connect", lambda: self._kill(SparkConnectServer()),
             SparkConnectServer()),
            ("kill -9 streaming-job", lambda: self._kill(StreamingJob()), StreamingJob()),
            ("kafka restart", lambda: self._stop(Kafka()), Kafka()),
            ("mariadb restart", lambda: self._stop(MariaDB()), MariaDB()),
            ("kill -9 run worker", self._kill_run_worker, None),
            ("thrift-server restart", lambda: self._stop(ThriftServer()), ThriftServer()),
        ]
        assert [name for name, _, _ in rotation] == FAULT_NAMES
        self.rotation = [fault for fault in rotation if not only or fault[0] in only]
        self._next = 0

    def inject_next(self) -> tuple[Injected, Service | None]:
        name, action, service = self.rotation[self._next % len(self.rotation)]
        self._next += 1
        at = time.time()
        return Injected(name, at, action()), service

    @staticmethod
    def _kill(service: Service) -> str:
        return f"pid {service.kill()}"

    @staticmethod
    def _stop(service: Service) -> str:
        # Stopped as an operator's restart would, but not with `berka-stack down`: the watcher
        # sees it gone and starts it again.
        pid = service.pid()
        service.stop()
        return f"pid {pid} stopped"

    def _kill_run_worker(self, wait: float = 60.0) -> str:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            workers = run_workers([self._daemon_pid()])
            if workers:
                workers[0].kill()
                return f"run worker pid {workers[0].pid}"
            time.sleep(0.2)
        return "no run in flight within 60 s (nothing killed)"
