"""What the soak samples every minute (from the servers themselves, never from the pipeline's own
claims where an outside view exists) and the per-window table it prints."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import pymysql
from pyspark.sql import SparkSession

from berka_assets.resources.spark import connect_endpoint_reachable
from berka_core.clients.kafka import KafkaClient
from berka_core.config import Settings, secret
from berka_core.spark_jobs.ledger import BatchLedger
from berka_stack.dev import is_run_worker
from berka_stack.service import Service

UTC = dt.UTC


@dataclass
class Sample:
    at: float
    in_kafka: int | None  # records in the topic (sum of end offsets)
    consumed: dict[str, int | None]  # per path: records committed in its ledger
    lag: dict[str, int | None]  # per path: records in Kafka beyond its ledger's frontier
    rss_mib: dict[str, float]  # per long-lived process
    files: dict[str, int | None]  # per path: enriched_transactions' files in its snapshot
    metastore: dict[str, int | None]  # rows of the metastore's TBLS and PARTITIONS
    pids: dict[str, int | None] = field(default_factory=dict)  # per service, at the sample


@dataclass
class Sampler:
    settings: Settings
    topic: str
    ledgers: dict[str, BatchLedger]  # path -> its database's ledger
    databases: dict[str, str]  # path -> Hive database
    services: list[Service]
    daemon_pid: int
    reset_spark: Callable[[], None]  # forgets a Connect session whose server was restarted
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> Sample:
        high = self._end_offsets()
        consumed, lag = {}, {}
        for path, ledger in self.ledgers.items():
            try:
                frontiers = ledger.frontiers(self.topic)
                consumed[path] = ledger.totals(self.topic).consumed
                lag[path] = (sum(end - frontiers.get(p, 0) for p, end in high.items())
                             if high else None)
            except Exception:  # noqa: BLE001 - MariaDB restarting: a gap in the series
                consumed[path] = lag[path] = None
        sample = Sample(time.time(), sum(high.values()) if high else None, consumed, lag,
                        self._rss(), self._files(), self._metastore_rows(),
                        {service.name: service.pid() for service in self.services})
        self.samples.append(sample)
        return sample

    def _end_offsets(self) -> dict[int, int]:
        try:
            return {p.partition: p.high for p in
                    KafkaClient.from_settings(self.settings.kafka).partition_offsets(self.topic)}
        except Exception:  # noqa: BLE001 - broker restarting
            return {}

    def _rss(self) -> dict[str, float]:
        rss = {service.name: service.status().rss_bytes / 2**20 for service in self.services}
        try:
            daemon = psutil.Process(self.daemon_pid)
            # The daemon and its code server; runs (and what a run starts) come and go and
            # are not long-lived.
            children = daemon.children(recursive=True)
            of_runs = {child.pid for run in filter(is_run_worker, children)
                       for child in [run, *_descendants(run)]}
            tree = [daemon, *(p for p in children if p.pid not in of_runs)]
            rss["dagster-daemon"] = sum(_rss_of(p) for p in tree) / 2**20
        except psutil.NoSuchProcess:
            rss["dagster-daemon"] = 0.0
        return rss

    def _files(self) -> dict[str, int | None]:
        """Per path: data files in the current snapshot of enriched_transactions (what
        compaction bounds; files on disk also keep BERKA_DELTA_RETENTION_HOURS of history)."""
        counts: dict[str, int | None] = {}
        if not connect_endpoint_reachable(self.settings.spark.remote, timeout=1.0):
            # A Connect client retries a dead server for minutes: no figure this time.
            self.reset_spark()
            return dict.fromkeys(self.databases)
        for path, database in self.databases.items():
            try:
                spark = SparkSession.builder.remote(self.settings.spark.remote).getOrCreate()
                counts[path] = int(spark.sql(
                    f"DESCRIBE DETAIL `{database}`.enriched_transactions").first()["numFiles"])
            except Exception:  # noqa: BLE001 - Spark Connect restarting
                self.reset_spark()
                counts[path] = None
        return counts

    def _metastore_rows(self) -> dict[str, int | None]:
        mysql = self.settings.mysql
        try:
            connection = pymysql.connect(host=mysql.host, port=mysql.port,
                                         user=mysql.metastore_user,
                                         password=secret(mysql.metastore_password_env),
                                         database=mysql.metastore_database, connect_timeout=5)
            with connection, connection.cursor() as cursor:
                counts = {}
                for table in ("TBLS", "PARTITIONS", "TABLE_PARAMS"):
                    cursor.execute(f"SELECT COUNT(*) FROM {table}")
                    counts[table] = int(cursor.fetchone()[0])
                return counts
        except Exception:  # noqa: BLE001 - MariaDB restarting
            return {"TBLS": None, "PARTITIONS": None, "TABLE_PARAMS": None}


def _descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _rss_of(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Window:
    start: float
    end: float
    samples: list[Sample]
    latencies: dict[str, list[float]]  # per path, of the records sent in this window
    faults: list[str]

    def p(self, path: str, q: float) -> float | None:
        return percentile(self.latencies.get(path, []), q)

    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


def _fmt(value: float | int | None, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


def window_table(windows: list[Window], started: float, paths: list[str]) -> str:
    """Two tables, one row per window: traffic, latency, lag and faults; then memory, files
    and the metastore."""
    from rich.console import Console
    from rich.table import Table

    flow = Table(title="soak per window: traffic, latency, lag, faults")
    for column in ("window", "in Kafka", *(f"{p} done" for p in paths),
                   *(f"{p} p50/p95 s" for p in paths), *(f"{p} lag" for p in paths),
                   "faults (recovered in)"):
        flow.add_column(column)
    resources = Table(title="soak per window: resources (last sample)")
    for column in ("window", "RSS MiB", *(f"{p} files" for p in paths),
                   "metastore TBLS/PART/PARAMS"):
        resources.add_column(column)
    for window in windows:
        last = window.last()
        label = f"{(window.start - started) / 60:4.1f}-{(window.end - started) / 60:4.1f} min"
        if last is None:
            flow.add_row(label, *["-"] * (len(flow.columns) - 1))
            resources.add_row(label, *["-"] * (len(resources.columns) - 1))
            continue
        flow.add_row(
            label, _fmt(last.in_kafka),
            *(_fmt(last.consumed.get(p)) for p in paths),
            *(f"{_fmt(window.p(p, 0.5), '.1f')}/{_fmt(window.p(p, 0.95), '.1f')}"
              for p in paths),
            *(_fmt(last.lag.get(p)) for p in paths),
            "; ".join(window.faults) or "-",
        )
        resources.add_row(
            label,
            " ".join(f"{name.split('-')[0][:6]}:{mib:.0f}" for name, mib in last.rss_mib.items()),
            *(_fmt(last.files.get(p)) for p in paths),
            "/".join(_fmt(last.metastore.get(key))
                     for key in ("TBLS", "PARTITIONS", "TABLE_PARAMS")),
        )
    console = Console(width=160, record=True)
    with console.capture() as capture:
        console.print(flow)
        console.print(resources)
    return capture.get()


def mean_or_none(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None
