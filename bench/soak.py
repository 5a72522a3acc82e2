"""Soak: both paths run for a long time under a rotation of faults while a reader polls them.

The real replay job sends the sample's transactions at a steady random rate into a new topic;
the Dagster daemon runs that topic's Kafka sensor (micro-batch runs into database <name>_sensor)
and the streaming job consumes the same topic (into <name>_stream); a PyHive reader polls both
databases through HiveServer2 all the while; `berka-stack watch` supervises the servers and
the streaming job. With --faults, one fault at a time in rotation (soak_faults.py), at a random
moment of every --fault-every-minutes. Every --sample-seconds it samples the servers
(soak_observe.py); it prints a table per --window-minutes and ends with one line, `SOAK ok` or
`SOAK FAILED <reasons>`, exiting 0 only when:

- both databases equal the independent oracle over the records in the topic, to the cent;
- the reader saw no torn state, and no error outside the seconds of a stopped Thrift Server;
- the last window's p95 latency is within --latency-ratio of the first fault-free window's;
- every long-lived service's largest RSS in the last window is within --rss-ratio of its
  largest in the first fault-free window (both baselines after the first window, which warms
  up, when there are three or more);
- data files in each enriched table's current snapshot stay under --max-files (compaction
  keeps up; files on disk also keep BERKA_DELTA_RETENTION_HOURS of history for readers);
- every fault recovered (the service answered and both paths committed again) within
  --recovery-bound seconds.

    python bench/soak.py --minutes 5 --rate 20 --fault-every-minutes 1 --window-minutes 1
    python bench/soak.py --minutes 60 --rate 200 --faults --fault-every-minutes 5

Needs the local stack (`berka-stack up`). The windows start once both paths serve (a batch
visible on each). No fault is injected in the first two windows (warm-up,
then the baseline), and the last one at least --recovery-bound seconds before the last window
(the last recovery and its catch-up end before the steady state is compared with the baseline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench_latency import start_sensor_path
from soak_faults import FAULT_NAMES, Faults, Injected
from soak_observe import Sampler, Window, window_table
from soak_reader import Reader

from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.s3 import s3_resource
from berka_core.config import (
    REPO_ROOT,
    Settings,
    get_settings,
    load_secrets_into_environment,
    secret,
    var_dir,
)
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MemoryPositionStore
from berka_core.producer.replay import run_replay
from berka_core.producer.stopping import StopRequest
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.ledger import BatchLedger
from berka_stack import cli
from berka_stack.kafka import ensure_topics
from berka_stack.spark import StreamingJob

# The independent oracle and the test harness live with the tests (not installed): the soak
# is tooling and may use them.
sys.path.insert(0, str(REPO_ROOT))
from berka_assets_tests import independent
from berka_assets_tests.streaming.harness import (
    Pipeline,
    as_plain,
    reset_spark_client,
    spark_session,
)

PATHS = ("sensor", "stream")
STARTUP_SECONDS = 300  # at most, from the replay's start until both paths have a batch visible
FULL_SCALE_RECORDS = 1_056_320  # transactions of the real data set (scale 1)
TREND_ORDER = {"monthly_trend": "year, month", "yearly_trend": "year",
               "trans_by_age_gender": "age_band, gender"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="how long to run once both paths serve (the replay starts before)")
    parser.add_argument("--rate", type=float, default=20.0, help="mean messages per second")
    parser.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--fault-every-minutes", type=float, default=5.0)
    parser.add_argument("--fault", action="append", choices=FAULT_NAMES, default=None,
                        help="inject only this fault (repeatable; default: all, in rotation)")
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--window-minutes", type=float, default=5.0)
    parser.add_argument("--recovery-bound", type=float, default=360.0,
                        help="seconds a fault may take to recover (a killed run worker is "
                             "noticed after BERKA_MICROBATCH_MAX_RUNTIME_S, 180 in the soak)")
    parser.add_argument("--latency-ratio", type=float, default=1.25)
    parser.add_argument("--rss-ratio", type=float, default=1.2,
                        help="0: not checked (a run of minutes measures JVM warm-up, not leaks)")
    parser.add_argument("--max-files", type=int, default=200)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of Berka files to replay (default: the shipped sample if "
                             "it holds rate x minutes records, else a synthetic set of the scale "
                             "needed from berka-generate, kept in var/soak-data)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the topic and databases")
    return parser.parse_args()


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings: Settings = get_settings()
        self.name = f"soak_{uuid.uuid4().hex[:6]}"
        self.databases = {"sensor": f"{self.name}_sensor", "stream": f"{self.name}_stream"}
        mysql = MySQLResource(password=secret(self.settings.mysql.password_env))
        self.ledgers = {path: BatchLedger(mysql.connect, db) for path, db in
                        self.databases.items()}
        self.random = random.Random(args.seed)
        self.injected: list[Injected] = []
        self.last_fault_moment = 0.0
        self.daemon: subprocess.Popen | None = None
        self.watcher: subprocess.Popen | None = None
        self.temp = Path(tempfile.mkdtemp(prefix="soak-"))

    def say(self, text: str) -> None:
        print(f"{dt.datetime.now():%H:%M:%S} {text}", flush=True)

    # --- set-up -----------------------------------------------------------------------------
    def start(self) -> None:
        # A killed run worker is noticed after this bound (dagster/max_runtime); the product's
        # 600 s would stall the sensor path for two 5-minute windows. Slower legitimate batches
        # are then interrupted and retried, which the oracle check covers.
        os.environ.setdefault("BERKA_MICROBATCH_MAX_RUNTIME_S", "180")
        down = [s.name for s in cli.all_services() if not s.answers()]
        if down:
            raise SystemExit(f"not up: {', '.join(down)} (run `berka-stack up` first)")
        Pipeline(self.settings, Path(self.settings.data_dir), topic=self.name,
                 hive_database=self.databases["sensor"]).load_reference()
        ensure_topics(self.settings.kafka.bootstrap_servers,
                      {self.name: self.settings.kafka.partitions})
        streaming_args = ["--topic", self.name, "--hive-database", self.databases["stream"],
                          "--checkpoint", str(var_dir() / "checkpoints" / self.name),
                          "--trigger-seconds", "1"]
        # The watcher restarts the job with the same arguments (BERKA_STREAMING_ARGS).
        os.environ["BERKA_STREAMING_ARGS"] = " ".join(streaming_args)
        StreamingJob(self.settings).start()
        self.say(f"streaming job up: topic {self.name} -> {self.databases['stream']}")
        self.watcher = self._spawn("soak-watch", [str(Path(sys.executable).with_name(
            "berka-stack")), "watch", "mariadb", "kafka", "spark-connect", "thrift-server",
            "streaming-job", "--unhealthy-after", "90"])
        self.daemon = start_sensor_path(self.name, self.databases["sensor"], self.temp,
                                        interval=2, run_per="tick")
        self.say(f"Dagster daemon up (pid {self.daemon.pid}): sensor kafka_{self.name}_sensor "
                 f"-> {self.databases['sensor']}")

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (var_dir() / "logs" / f"{name}.log").open("w")
        self.say(f"{name}: {command[1:]} (log var/logs/{name}.log)")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                env=os.environ.copy(), start_new_session=True)

    def replay(self, stop: StopRequest) -> threading.Thread:
        source = BerkaSourceResource(folder=self.settings.data_dir,
                                     s3=s3_resource(self.settings.s3))
        config = ReplayOptions(topic=self.name, pacing="rate", rate=self.args.rate,
                              jitter="exponential", start="beginning")
        thread = threading.Thread(target=run_replay, name="soak-replay", daemon=True, kwargs={
            "options": config, "kafka": KafkaResource(), "source": source,
            "positions": MemoryPositionStore(), "stop": stop})
        thread.start()
        return thread

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        sampler = Sampler(self.settings, self.name, self.ledgers, self.databases,
                          [s for s in cli.all_services() if s.name != "s3"]
                          + [StreamingJob(self.settings)], self.daemon.pid,
                          reset_spark_client)
        reader = Reader(self.settings, list(self.databases.values()))
        stop_replay = StopRequest()
        producing = self.replay(stop_replay)
        self._wait_for_first_batches(timeout=STARTUP_SECONDS)
        # The run's clock starts once both paths serve: on a slow machine the cold start (JVMs,
        # the first runs) would otherwise eat the windows, and the faults planned in them.
        started = time.time()
        reader.start()
        self.say(f"both paths serve; reader polling both databases through HiveServer2; "
                 f"{self.args.minutes:g} min from now")
        fault_plan = self._plan_faults(started)
        next_sample = time.time()
        recoveries: list[threading.Thread] = []
        while producing.is_alive() and time.time() < started + self.args.minutes * 60:
            now = time.time()
            if now >= next_sample:
                sampler.sample()
                next_sample += self.args.sample_seconds
            recovering = any(thread.is_alive() for thread in recoveries)
            if fault_plan and now >= fault_plan[0] and not recovering:  # one at a time
                fault_plan.pop(0)
                if now <= self.last_fault_moment:
                    recoveries.append(self._inject())
                else:  # a long recovery held it back: it would spill into the last window
                    self.say("a planned fault skipped: the previous recovery took its slot")
            time.sleep(0.5)
        if not producing.is_alive():
            self.say("the replay ended early (its data ran out or it failed)")
        stop_replay.set("the soak's time is up")
        producing.join()
        self.say("replay stopped; waiting for both paths to catch up")
        for thread in recoveries:
            thread.join(self.args.recovery_bound)
        sent = self._wait_until_all_visible(sampler, timeout=900)
        sampler.sample()
        reader.stop.set()
        return self.verdict(started, sampler, reader, sent)

    def _plan_faults(self, started: float) -> list[float]:
        """A random moment in every fault period after the first two windows (warm-up, then
        the fault-free latency baseline), the last one at least --recovery-bound before the
        last window: the last fault recovers, and its backlog drains, before the steady state
        is compared with the baseline."""
        if not self.args.faults:
            return []
        every, width = self.args.fault_every_minutes * 60, self.args.window_minutes * 60
        last = started + self.args.minutes * 60 - width - self.args.recovery_bound
        self.last_fault_moment = last
        moments, period = [], started + 2 * width
        while period + every <= last + 1e-6:
            moments.append(period + self.random.uniform(0, every))
            period += every
        if not moments:
            self.say("no fault planned: the run is too short for a warm-up, a baseline, a "
                     "fault period, the recovery bound and a last window")
        return moments

    def _inject(self) -> threading.Thread:
        faults = getattr(self, "_faults", None) or Faults(lambda: self.daemon.pid,
                                                           only=self.args.fault)
        self._faults = faults
        fault, service = faults.inject_next()
        self.injected.append(fault)
        self.say(f"fault: {fault.name} ({fault.detail})")
        thread = threading.Thread(target=self._measure_recovery, args=(fault, service),
                                  daemon=True)
        thread.start()
        return thread

    def _measure_recovery(self, fault: Injected, service) -> None:
        since = dt.datetime.fromtimestamp(fault.at, dt.UTC).replace(tzinfo=None)
        deadline = time.monotonic() + self.args.recovery_bound
        while time.monotonic() < deadline:
            try:
                answers = service is None or service.answers()
                moved = all((ledger.last_commit() or dt.datetime.min) > since
                            for ledger in self.ledgers.values())
            except Exception:  # noqa: BLE001 - MariaDB still down
                answers = moved = False
            if answers and moved:
                fault.recovered_in = time.time() - fault.at
                self.say(f"recovered from {fault.name} in {fault.recovered_in:.1f} s")
                return
            time.sleep(1)
        self.say(f"NOT recovered from {fault.name} within {self.args.recovery_bound:.0f} s")

    def _wait_for_first_batches(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(ledger.visibility() for ledger in self.ledgers.values()):
            if time.monotonic() > deadline:
                raise SystemExit(f"no batch visible on both paths within {timeout:.0f} s")
            time.sleep(1)

    def _wait_until_all_visible(self, sampler: Sampler, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sample = sampler.sample()
            if sample.in_kafka and all(sample.consumed.get(p) == sample.in_kafka for p in PATHS):
                if all(ledger.invisible_batches() == 0 for ledger in self.ledgers.values()):
                    return sample.in_kafka
            time.sleep(5)
        return sampler.samples[-1].in_kafka or 0

    # --- the verdict ------------------------------------------------------------------------
    def verdict(self, started: float, sampler: Sampler, reader: Reader, sent: int) -> int:
        reset_spark_client()
        spark = spark_session(self.settings)
        failures = []
        trans_ids = self._trans_ids_in_topic()
        oracle = independent.trends(Path(self.settings.data_dir), trans_ids=trans_ids)
        for path, database in self.databases.items():
            if as_plain(self._trends(spark, database)) != oracle:
                failures.append(f"{path} trends differ from the oracle")
        windows = self._windows(started, sampler, self._latencies(spark))
        tables = window_table(windows, started, list(PATHS))
        failures += self._checks(windows, reader)
        summary = (f"{len(trans_ids):,} records, {len(self.injected)} faults, "
                   f"{len(reader.answers):,} reader answers, "
                   f"{(time.time() - started) / 60:.1f} min on {platform.node()} "
                   f"({os.cpu_count()} cores)")
        line = (f"SOAK ok: {summary}" if not failures
                else f"SOAK FAILED {'; '.join(failures)} ({summary})")
        report = var_dir() / "logs" / f"{self.name}.txt"  # the tables outlive the terminal
        report.write_text(f"{' '.join(sys.argv)}\n{tables}\n{line}\n")
        print(tables)
        print(line)
        print(f"(also in {report})")
        return 0 if not failures else 1

    def _trends(self, spark, database: str) -> dict[str, list[tuple]]:
        tables = HiveTables(database)
        return {name: [tuple(row) for row in spark.sql(
            f"SELECT * FROM {tables.trend(name)} ORDER BY {order}").collect()]
            for name, order in TREND_ORDER.items()}

    def _trans_ids_in_topic(self) -> set[int]:
        import json

        from confluent_kafka import TopicPartition

        kafka = KafkaResource()
        consumer = kafka.consumer(group_id=f"{self.name}-oracle")
        ids = set()
        for offsets in kafka.partition_offsets(self.name):
            consumer.assign([TopicPartition(self.name, offsets.partition, offsets.low)])
            position = offsets.low
            while position < offsets.high:
                message = consumer.poll(10)
                if message is None or message.error():
                    continue
                position = message.offset() + 1
                ids.add(int(json.loads(message.value())["trans_id"]))
        consumer.close()
        return ids

    def _latencies(self, spark) -> dict[str, list[tuple[float, float]]]:
        """Per path, (sent, latency) of every record: visible_at of its batch - sent_at."""
        result = {}
        for path, database in self.databases.items():
            visible = {batch: at.replace(tzinfo=dt.UTC).timestamp() for batch, at in
                       self.ledgers[path].visibility().items()}
            rows = spark.sql(f"SELECT batch_id, sent_at_ms FROM `{database}`."
                             "enriched_transactions").collect()
            result[path] = [(r.sent_at_ms / 1000, visible[r.batch_id] - r.sent_at_ms / 1000)
                            for r in rows if r.batch_id in visible]
        return result

    def _windows(self, started: float, sampler: Sampler,
                 latencies: dict[str, list[tuple[float, float]]]) -> list[Window]:
        width = self.args.window_minutes * 60
        end = started + self.args.minutes * 60
        windows, start = [], started
        while start < end - 1:
            stop = min(start + width, end)
            windows.append(Window(
                start, stop, [s for s in sampler.samples if start <= s.at < stop],
                {p: [lat for sent, lat in values if start <= sent < stop]
                 for p, values in latencies.items()},
                [f"{f.name} ({_recovery_text(f)})" for f in self.injected
                 if start <= f.at < stop]))
            start = stop
        return windows

    def _checks(self, windows: list[Window], reader: Reader) -> list[str]:
        failures = list(reader.torn_states()[:3])
        thrift_down = [f for f in self.injected if f.name.startswith("thrift")]
        stray = [error for at, error in reader.errors
                 if not any(f.at - 1 <= at <= f.at + (f.recovered_in or 0) + 10
                            for f in thrift_down)]
        if stray:
            failures.append(f"{len(stray)} reader errors, first: {stray[0]}")
        for fault in self.injected:
            if fault.recovered_in is None:
                failures.append(f"{fault.name} not recovered within "
                                f"{self.args.recovery_bound:.0f} s")
        # Baselines come after the first window, which warms up (cold JVMs, growing heaps).
        settled = windows[1:] if len(windows) >= 3 else windows
        quiet = [w for w in settled if not w.faults]
        if self.args.faults and not self.injected:
            failures.append("no fault was injected")
        if not quiet or quiet[0] is windows[-1]:
            failures.append("no fault-free window before the last to compare latency with")
        elif windows:
            for path in PATHS:
                first, last = quiet[0].p(path, 0.95), windows[-1].p(path, 0.95)
                if not first or not last:  # nothing to compare is no proof of flat latency
                    failures.append(f"{path}: no record sent in the "
                                    f"{'last' if not last else 'first fault-free'} window")
                elif last > self.args.latency_ratio * first:
                    failures.append(f"{path} p95 {last:.1f} s in the last window > "
                                    f"{self.args.latency_ratio}x {first:.1f} s")
        if quiet and quiet[0] is not windows[-1]:
            failures += self._rss_growth(quiet[0], windows[-1])
        for sample in [w.last() for w in windows if w.samples]:
            for path, files in sample.files.items():
                if files is not None and files > self.args.max_files:
                    failures.append(f"{path}: {files} data files > {self.args.max_files}")
                    break
        return failures

    def _rss_growth(self, baseline: Window, last: Window) -> list[str]:
        """Per service, the largest RSS of the last window against the largest of the baseline
        window. Per service, not per process: a service restarted by a fault grows back to
        where it was (a JVM's heap warms up again), which is no leak; one that keeps growing
        across the run, restarted or not, is."""
        failures = []
        for name in last.last().rss_mib if last.last() else {}:
            before = max((s.rss_mib.get(name) or 0 for s in baseline.samples), default=0)
            after = max((s.rss_mib.get(name) or 0 for s in last.samples), default=0)
            if self.args.rss_ratio and before and after > self.args.rss_ratio * before:
                failures.append(f"{name} RSS {after:.0f} MiB in the last window > "
                                f"{self.args.rss_ratio}x {before:.0f} MiB")
        return failures

    # --- clean-up ---------------------------------------------------------------------------
    def stop(self) -> None:
        for child in (self.watcher, self.daemon):  # the watcher first: nothing comes back
            if child is not None and child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                child.wait(60)
        StreamingJob(self.settings).stop()
        if self.args.keep:
            return
        reset_spark_client()
        spark = spark_session(self.settings)
        for path, database in self.databases.items():
            spark.sql(f"DROP DATABASE IF EXISTS `{database}` CASCADE")
            self.ledgers[path].reset()
        KafkaResource().admin().delete_topics([self.name])
        self._restore_reference()

    def _restore_reference(self) -> None:
        """The reference tables of the data set the environment names, back in MySQL: the
        soak loaded its own data's over them, and records of the usual set would then be
        quarantined as unknown accounts (bench_latency after a soak)."""
        usual = Path(self.args.usual_data_dir)
        if usual != Path(self.settings.data_dir) and usual.is_dir():
            Pipeline(self.settings, usual, topic=self.name,
                     hive_database=self.databases["sensor"]).load_reference()


def soak_data(records: float) -> Path:
    """The shipped sample if it holds `records` transactions, else a synthetic set of the
    scale needed (generated once, then reused: the same scale and seed give the same files)."""
    sample = Path(get_settings().data_dir)
    if _records_in(sample) >= records:
        return sample
    scale = math.ceil(records * 1.1 / FULL_SCALE_RECORDS * 10) / 10
    folder = var_dir() / "soak-data" / f"scale-{scale:g}"
    if not (folder / "trans.asc").exists():
        partial = folder.with_name(folder.name + ".partial")
        print(f"generating a synthetic Berka set, scale {scale:g}, into {folder}", flush=True)
        subprocess.run([str(Path(sys.executable).with_name("berka-generate")), "--scale",
                        f"{scale:g}", "--seed", "0", "--out", str(partial)], check=True)
        partial.rename(folder)
    return folder


def _records_in(folder: Path) -> int:
    files = [f for f in folder.iterdir() if f.stem.lower() in ("trans", "trans_prefix")]
    if not files:
        return 0
    with files[0].open("rb") as lines:
        return sum(1 for _ in lines) - 1  # the header


def _recovery_text(fault: Injected) -> str:
    return "NOT recovered" if fault.recovered_in is None else f"{fault.recovered_in:.0f} s"


def main() -> int:
    args = parse_args()
    load_secrets_into_environment()
    args.usual_data_dir = get_settings().data_dir  # its reference tables are put back at the end
    # The reference load, the replay and the oracle all read this folder.
    records = args.rate * (args.minutes * 60 + STARTUP_SECONDS)  # the replay starts before
    os.environ["BERKA_DATA_DIR"] = str(args.data or soak_data(records))
    soak = Soak(args)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; {args.minutes:g} min at "
          f"{args.rate:g} msg/s, faults {'on' if args.faults else 'off'}; data "
          f"{os.environ['BERKA_DATA_DIR']}")
    # Started in the background (nohup ... &) it inherits SIGINT ignored: Ctrl-C, kill -INT
    # and kill (TERM) all end the run and clean up (daemon, watcher, job, databases, topic).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        return soak.run()
    except KeyboardInterrupt:
        print("interrupted: stopping and cleaning up", flush=True)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut it short
            signal.signal(sig, signal.SIG_IGN)
        soak.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
