"""`berka-demo`: the whole pipeline on the embedded defaults, bounded, saying what it does.

Stack up -> the shipped real sample into the local S3 store -> reference tables from it -> the
replay job sends N transactions from it at random intervals while the Kafka sensor launches
micro-batches -> checks -> the three trend tables read through HiveServer2 (PyHive). Runs are
recorded in the Dagster instance under var/dagster-home, so `make dev` shows them in the UI
afterwards (or pass --ui).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from berka_core.config import REPO_ROOT, get_settings, load_secrets_into_environment, var_dir


class DemoStepError(RuntimeError):
    pass


# The demo prints its own summary; Dagster's per-event console log stays for warnings.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def dagster_home() -> str:
    """var/dagster-home with the repo's dagster.yaml: the instance `make dev` also uses."""
    from berka_stack.dev import default_dagster_home, prepare_dagster_home

    home = default_dagster_home()
    prepare_dagster_home(home)
    return str(home)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.steps = 8

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def step(self, number: int, title: str, action: Callable[[], Any]) -> Any:
        self.say(f"step {number}/{self.steps}: {title}")
        try:
            return action()
        except Exception as error:
            raise DemoStepError(f"step {number} ({title}) failed: {error}") from error

    # -- the steps ---------------------------------------------------------------------------
    def stack_up(self) -> None:
        from berka_stack import cli
        from berka_stack.kafka import ensure_topics

        cli.up(echo=lambda line: self.say(line))
        load_secrets_into_environment()
        kafka = get_settings().kafka  # BERKA_KAFKA_TOPIC may name another topic than the stack's
        ensure_topics(kafka.bootstrap_servers, {kafka.topic: kafka.partitions,
                                                kafka.dlq_topic: 1},
                      replication_factor=kafka.replication_factor)

    def source_in_s3(self) -> None:
        """The shipped sample into the local S3-compatible store; the reference tables and the
        replay job then read it from S3 (BERKA_SOURCE_KIND=s3), as a deployment reads its
        bucket. Uploaded on every demo: the local store keeps its objects in memory."""
        from berka_assets.resources.berka_source import upload_folder
        from berka_assets.resources.s3 import s3_resource
        from berka_stack.s3 import local_s3_endpoint

        if self.args.source == "folder":
            self.say(f"  --source folder: the files are read from {get_settings().data_dir}")
            return
        os.environ.update(BERKA_SOURCE_KIND="s3", BERKA_S3_ENDPOINT_URL=local_s3_endpoint())
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(variable, "local")  # the local store accepts any key
        settings = get_settings().s3
        folder = get_settings().data_dir
        uploaded = upload_folder(s3_resource(settings).get_client(), folder, settings.bucket,
                                 settings.prefix)
        self.say(f"  {len(uploaded)} files of {folder} uploaded to "
                 f"s3://{settings.bucket}/{settings.prefix} at {settings.endpoint_url}")

    def load_reference(self) -> None:
        import dagster as dg

        from berka_assets.assets.reference import reference_tables
        from berka_assets.checks.reference import REFERENCE_CHECKS
        from berka_assets.resources.factory import build_resources

        result = dg.materialize([reference_tables, *REFERENCE_CHECKS],
                                resources=build_resources(), instance=self.instance,
                                run_config=QUIET)
        for event in result.get_asset_materialization_events():
            metadata = event.materialization.metadata
            self.say(f"  {event.asset_key.to_user_string():<16} "
                     f"{metadata['dagster/row_count'].value:>6,} rows  from "
                     f"{metadata['source_uri'].value}")
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        if failed:
            raise DemoStepError(f"reference checks failed: {failed}")
        self.say(f"  {len(result.get_asset_check_evaluations())} asset checks passed")

    def replay_and_process(self) -> None:
        from berka_assets.definitions import defs
        from berka_assets.sensors.kafka_offsets import kafka_trans_sensor

        microbatch_job = defs.resolve_job_def("microbatch_job")
        sensor = defs.resolve_sensor_def(kafka_trans_sensor.name)  # named after the topic
        config = var_dir() / "demo-replay.yaml"
        config.write_text(json.dumps({"ops": {"replay_trans": {"config": {
            "pacing": "rate", "rate": self.args.rate, "jitter": "exponential",
            "max_messages": self.args.transactions, "start": "resume",
        }}}}))
        log_path = var_dir() / "logs" / "demo-replay.log"
        self.say(f"  replay: {self.args.transactions:,} transactions at ~{self.args.rate:g}/s "
                 "(exponential inter-arrival times) into Kafka topic "
                 f"{get_settings().kafka.topic}; "
                 f"its log: {log_path}")
        # Its own process, as the daemon would launch it: two in-process runs in one process
        # would fight over the captured stdout.
        with log_path.open("w") as log:
            replay = subprocess.Popen(
                [sys.executable, "-m", "dagster", "job", "execute", "-m",
                 "berka_assets.definitions", "-j", "s3_replay_job", "-c", str(config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            )
            cursor, batches = None, 0
            while True:
                replay_done = replay.poll() is not None
                result = self._tick(sensor, cursor)
                cursor = result.cursor
                for run_request in result.run_requests:
                    # A micro-batch, or the Delta maintenance the sensor asks for every N batches.
                    job = defs.resolve_job_def(run_request.job_name or microbatch_job.name)
                    run = job.execute_in_process(
                        run_config={**run_request.run_config, **QUIET},
                        instance=self.instance, tags=run_request.tags)
                    if job.name == microbatch_job.name:
                        batches += 1
                        self._report_batch(run)
                    else:
                        self._report_maintenance(run)
                if replay_done and not result.run_requests:
                    break
                if not result.run_requests:
                    time.sleep(self.args.tick_seconds)
        summary = [line for line in log_path.read_text().splitlines()
                   if "messages delivered to" in line]
        if replay.returncode != 0 or not summary:
            raise DemoStepError(f"the replay job failed (exit {replay.returncode}); see "
                                f"{log_path}")
        self.say("  replay: " + summary[-1].split(" - replay_trans - ", 1)[-1])
        self.say(f"  {batches} micro-batch runs; the sensor sees no new offsets")

    def _tick(self, sensor, cursor):
        import dagster as dg

        from berka_assets.resources.factory import build_resources

        with dg.build_sensor_context(instance=self.instance, cursor=cursor,
                                     resources=build_resources()) as context:
            return sensor(context)

    def _report_maintenance(self, run) -> None:
        if not run.success:
            raise DemoStepError(f"Delta maintenance run {run.run_id} failed")
        for event in run.get_asset_observation_events():
            metadata = event.asset_observation_data.asset_observation.metadata
            self.say(f"  Delta maintenance: {metadata['files_compacted'].value} files "
                     f"compacted, {metadata['data_files'].value} left, in "
                     f"{metadata['maintenance_seconds'].value} s")

    def _report_batch(self, run) -> None:
        if not run.success:
            raise DemoStepError(f"micro-batch run {run.run_id} failed")
        for event in run.get_asset_materialization_events():
            metadata = event.materialization.metadata
            if "records" in metadata:
                self.say(
                    f"  batch {metadata['processed_offsets'].value:<22} "
                    f"{metadata['enriched_rows'].value:>6,} enriched "
                    f"{metadata['records'].value - metadata['enriched_rows'].value:>4,} "
                    f"quarantined, lag {metadata['consumer_lag'].value:,}"
                )

    def checks(self) -> None:
        from berka_assets.definitions import defs

        result = defs.resolve_job_def("streaming_checks_job").execute_in_process(
            instance=self.instance, raise_on_error=False, run_config=QUIET)
        evaluations = result.get_asset_check_evaluations()
        for evaluation in evaluations:
            state = "passed" if evaluation.passed else "FAILED"
            self.say(f"  {state:<6} {evaluation.asset_key.to_user_string()} "
                     f"{evaluation.check_name}")
        if not evaluations or not all(e.passed for e in evaluations):
            raise DemoStepError("a streaming check failed")

    def report(self) -> None:
        import dagster as dg

        from berka_assets.assets.reports import trends_report
        from berka_assets.resources.factory import build_resources

        result = dg.materialize([trends_report], resources=build_resources(),
                                instance=self.instance, run_config=QUIET)
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        self.say(f"  trends report with chart: {metadata['chart_path'].value}")

    def print_trends(self) -> None:
        from berka_assets.assets.reports import fetch_trends, markdown_table
        from berka_assets.resources.hive import HiveResource

        trends = fetch_trends(HiveResource(), get_settings().spark.hive_database)
        for table, (columns, rows) in trends.items():
            print(f"\n{table} ({len(rows)} rows, read through HiveServer2 with PyHive)")
            print(markdown_table(columns, rows))
        print()

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> int:
        os.environ["DAGSTER_HOME"] = dagster_home()
        try:
            self.step(1, "start the local stack", self.stack_up)
            import dagster as dg

            self.instance = dg.DagsterInstance.get()
            self.step(2, "put the source files in S3", self.source_in_s3)
            self.step(3, "load the reference tables into MySQL", self.load_reference)
            self.step(4, "replay transactions into Kafka; the sensor launches micro-batches",
                      self.replay_and_process)
            self.step(5, "check the Hive tables against the ledger", self.checks)
            self.step(6, "materialize the trends report (PyHive + chart)", self.report)
            self.step(7, "the three trend tables", self.print_trends)
        except DemoStepError as error:
            self.say(f"FAILED: {error}")
            return 1
        self.say(f"step 8/{self.steps}: done in {time.monotonic() - self.started:.0f} s. "
                 f"Runs are in the Dagster instance at {os.environ['DAGSTER_HOME']}.")
        if self.args.ui:
            from berka_stack.dev import main as dev

            return dev(["--port", str(self.args.port)])
        self.say("Open the Dagster UI with `make dev` (http://127.0.0.1:3000); "
                 "stop the stack with `.venv/bin/berka-stack down`.")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="berka-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=5_000,
                        help="how many transactions to replay (continues after the last run)")
    parser.add_argument("--rate", type=float, default=1_000.0, help="mean messages per second")
    parser.add_argument("--tick-seconds", type=float, default=2.0,
                        help="seconds between sensor evaluations while waiting for data")
    parser.add_argument("--source", choices=("s3", "folder"), default="s3",
                        help="replay and load from the local S3 store (the sample uploaded "
                        "there first) or straight from the sample folder")
    parser.add_argument("--ui", action="store_true",
                        help="afterwards keep the Dagster UI running with the sensors on")
    parser.add_argument("--port", type=int, default=3000, help="port of the UI with --ui")
    args = parser.parse_args(argv)
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main())
