"""End-to-end latency: producer send -> visible in the Hive trend tables, at a steady rate.

Two paths, each on its own Kafka topic and Hive database:

- `sensor`: the Dagster daemon runs the Kafka sensor continuously and launches micro-batch runs
  (each a new process talking to the Spark Connect server), as in production;
- `streaming`: spark_streaming/job.py under spark-submit.

For every record, latency = the moment its batch became visible in the trend tables (the batch
ledger's visible_at, set right after the trend rebuild) - the producer's send timestamp
(sent_at_ms in the message). Prints p50 / p95 / max per path, and where the time went, stage by
stage (latency_breakdown.py).

    python bench/bench_latency.py --path sensor --rate 20 --seconds 120
    python bench/bench_latency.py --path streaming --rate 1000 --seconds 60 --warmup-seconds 20

Needs the local stack (`berka-stack up`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dagster import DagsterInstance, materialize
from latency_breakdown import log_since, records, sensor_breakdown, streaming_breakdown
from pyspark.sql import SparkSession

from berka_assets.assets.reference import reference_tables
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.factory import build_resources
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.s3 import s3_resource
from berka_core.config import (
    REPO_ROOT,
    get_settings,
    load_secrets_into_environment,
    secret,
    var_dir,
)
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MemoryPositionStore
from berka_core.producer.replay import run_replay
from berka_core.spark_jobs.ledger import BatchLedger
from berka_stack.kafka import ensure_topics
from berka_stack.spark import StreamingJob


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies(spark: SparkSession, ledger: BatchLedger, database: str,
              sent_from: float = 0.0) -> list[float]:
    """Latency of every record sent at or after `sent_from` (epoch seconds)."""
    visible = {batch: at.replace(tzinfo=dt.UTC).timestamp() for batch, at in
               ledger.visibility().items()}
    rows = spark.sql(f"SELECT batch_id, sent_at_ms FROM `{database}`.enriched_transactions"
                     ).collect()
    return [visible[row.batch_id] - row.sent_at_ms / 1000 for row in rows
            if row.batch_id in visible and row.sent_at_ms / 1000 >= sent_from]


def wait_until_visible(ledger: BatchLedger, topic: str, sent: int, timeout: float,
                       job: StreamingJob | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger.totals(topic).consumed >= sent and ledger.invisible_batches() == 0:
            return
        if job is not None and job.pid() is None:
            raise SystemExit(f"the streaming job stopped; its log: {job.log_path()}")
        time.sleep(1)
    raise SystemExit(f"not all {sent} records became visible within {timeout:.0f} s")


def start_sensor_path(topic: str, database: str, home: Path, interval: int,
                      run_per: str) -> subprocess.Popen:
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    environment = {
        **os.environ, "DAGSTER_HOME": str(home), "BERKA_KAFKA_TOPIC": topic,
        "BERKA_HIVE_DATABASE": database, "BERKA_SENSOR_INTERVAL_S": str(interval),
        "BERKA_SENSOR_RUN_PER": run_per,
    }
    sensor = f"kafka_{topic}_sensor"
    subprocess.run([sys.executable, "-m", "dagster", "sensor", "start", sensor,
                    "-w", "workspace.yaml"], env=environment, cwd=REPO_ROOT, check=True,
                   capture_output=True)
    log_path = var_dir() / "logs" / "bench-latency-daemon.log"  # kept for a post-mortem
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"  Dagster daemon log: {log_path}")
    log = log_path.open("w")
    daemon = Path(sys.executable).parent / "dagster-daemon"
    return subprocess.Popen([str(daemon), "run", "-w", "workspace.yaml"], env=environment,
                            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["sensor", "streaming"], required=True)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to produce")
    parser.add_argument("--interval", type=int, default=None,
                        help="sensor interval (s); default the product's, BERKA_SENSOR_INTERVAL_S")
    parser.add_argument("--run-per", choices=["partition", "tick"], default="tick")
    parser.add_argument("--trigger-seconds", type=float, default=1.0)
    parser.add_argument("--warmup-seconds", type=float, default=0.0,
                        help="produce this long first and report the records sent after it "
                             "separately (steady state: a fresh JVM's first batches are slow)")
    args = parser.parse_args()
    load_secrets_into_environment()
    settings = get_settings()
    name = f"lat_{args.path}_{uuid.uuid4().hex[:6]}"
    # The reference tables of the records it sends: another tool (the soak) may have left
    # those of another data set, and the records would be quarantined as unknown accounts.
    assert materialize([reference_tables], resources=build_resources(settings)).success
    ensure_topics(settings.kafka.bootstrap_servers, {name: settings.kafka.partitions})
    mysql = MySQLResource(password=secret(settings.mysql.password_env))
    ledger = BatchLedger(mysql.connect, name)
    spark = SparkSession.builder.remote(settings.spark.remote).getOrCreate()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"path {args.path}, {args.rate:g} msg/s for {args.seconds:g} s")

    with tempfile.TemporaryDirectory() as temp:
        if args.path == "sensor":
            interval = args.interval or settings.sensor.interval_seconds
            worker = start_sensor_path(name, name, Path(temp), interval, args.run_per)
            job = None
        else:
            worker = None
            log_path = StreamingJob(settings).log_path()
            log_offset = log_path.stat().st_size if log_path.exists() else 0
            job = StreamingJob(settings, "--topic", name, "--hive-database", name,
                               "--checkpoint", str(Path(temp) / "checkpoint"),
                               "--trigger-seconds", str(args.trigger_seconds))
            job.start()
        try:
            source = BerkaSourceResource(folder=settings.data_dir, s3=s3_resource(settings.s3))
            steady_from = time.time() + args.warmup_seconds
            result = run_replay(
                ReplayOptions(topic=name, pacing="rate", rate=args.rate, jitter="none",
                             max_seconds=args.warmup_seconds + args.seconds,
                             start="beginning"),
                kafka=KafkaResource(), source=source, positions=MemoryPositionStore(),
            )
            print(f"  sent {result.delivered:,} at {result.rate:,.0f} msg/s")
            wait_until_visible(ledger, name, result.delivered, timeout=300, job=job)
            values = latencies(spark, ledger, name)
            steady = latencies(spark, ledger, name, sent_from=steady_from)
            rows = [row for row in records(spark.sql(
                f"SELECT batch_id, sent_at_ms FROM `{name}`.enriched_transactions").collect(),
                ledger.visibility()) if row[1] >= steady_from]
            if job is None:
                with DagsterInstance.from_config(temp) as instance:
                    breakdown = sensor_breakdown(instance, rows)
            else:
                breakdown = streaming_breakdown(log_since(job.log_path(), log_offset), rows)
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)  # the daemon and the runs it launched
                worker.wait(60)
            if job is not None:
                job.stop()
    groups = [("all records", values)]
    if args.warmup_seconds:
        groups.append((f"after the {args.warmup_seconds:g} s warm-up", steady))
    for label, group in groups:
        print(f"  {label}: {len(group):,} records, latency p50 {percentile(group, 0.50):.2f} s, "
              f"p95 {percentile(group, 0.95):.2f} s, max {max(group):.2f} s, "
              f"mean {statistics.mean(group):.2f} s")
    print(breakdown.table("  where the time went" + (" (after the warm-up)"
                                                     if args.warmup_seconds else "")))
    spark.sql(f"DROP DATABASE IF EXISTS `{name}` CASCADE")
    ledger.reset()
    KafkaResource().admin().delete_topics([name])


if __name__ == "__main__":
    main()
