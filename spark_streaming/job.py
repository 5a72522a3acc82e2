"""The continuous, low-latency path: Spark Structured Streaming over topic `trans`.

Run with spark-submit (or `berka-stack up streaming-job`):

    spark-submit spark_streaming/job.py --trigger-seconds 2

It applies the same functions as the Dagster micro-batches (berka_core.transformations) and
commits through the same batch ledger (spark_streaming/stream_batch.py run_stream_batch):
foreachBatch hands each trigger's records to it, the ledger in MySQL trims anything already
committed, so a batch replayed after a crash replaces and never adds. For latency it keeps the
committed trans_ids and the trend cube in memory (rebuilt from the tables at start) instead of
re-reading the enriched table in every batch. It writes its own Hive
database (BERKA_STREAM_HIVE_DATABASE, default `berka_stream`) and claims it in the ledger, so the
two paths can never double-count into one set of tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from berka_core import transformations as T
from berka_core.clients.kafka import KafkaClient
from berka_core.clients.mysql import MySQLClient
from berka_core.config import Settings, get_settings, load_secrets_into_environment, var_dir
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.jvm_functions import register_jvm_functions
from berka_core.spark_jobs.ledger import BatchLedger
from berka_core.spark_jobs.microbatch import finish_plan, read_reference
from berka_core.spark_jobs.stream_metrics import StreamMetrics
from spark_streaming.maintenance import DeltaMaintenance
from spark_streaming.metrics import progress_listener
from spark_streaming.reference_cache import ReferenceCache
from spark_streaming.stream_batch import CommittedState, load_committed_state, run_stream_batch

WRITER = "spark-streaming"
log = logging.getLogger("berka.streaming")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="berka-streaming", description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default=settings.kafka.topic)
    parser.add_argument("--hive-database", default=settings.spark.stream_hive_database)
    parser.add_argument("--checkpoint", default=str(var_dir() / "checkpoints" / "streaming"))
    parser.add_argument("--trigger-seconds", type=float, default=2.0)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=100_000,
                        help="backpressure: at most this many records per batch")
    parser.add_argument("--reference-refresh-seconds", type=float, default=300.0,
                        help="re-read the MySQL reference tables this often, without a restart")
    parser.add_argument("--starting-offsets", default="earliest")
    # Each trigger appends a file: at the soak's pace (a trigger every 2-4 s) 10 minutes
    # let the table reach ~300 files between two compactions.
    parser.add_argument("--maintenance-minutes", type=float, default=5.0,
                        help="compact (OPTIMIZE) the Delta tables this often, beside the stream "
                        "(VACUUM every BERKA_DELTA_VACUUM_EVERY_HOURS); 0: never")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    load_secrets_into_environment()
    args = parse_args(argv)
    job = _prepare(args, get_settings())
    query = _start_query(job, args)
    log.info("streaming query started: topic %s -> Hive database %s, checkpoint %s",
             args.topic, args.hive_database, args.checkpoint)
    _run_until_stopped(query)
    job.maintenance.stop()
    exception = query.exception()
    job.spark.stop()
    if exception is not None:
        log.error("streaming query failed: %s", exception)
        return 1
    log.info("streaming query stopped")
    return 0


@dataclass
class _Job:
    """What every batch of the query uses, prepared once at start."""

    spark: SparkSession
    tables: HiveTables
    ledger: BatchLedger
    reference: ReferenceCache
    kafka_options: dict[str, str]
    maintenance: DeltaMaintenance
    state: CommittedState


def _prepare(args: argparse.Namespace, settings: Settings) -> _Job:
    """Claims the writer role, finishes a crashed batch and loads the committed state."""
    mysql = MySQLClient.from_settings(settings.mysql)
    kafka = KafkaClient.from_settings(settings.kafka)  # with the SASL password, if any
    tables = HiveTables(args.hive_database, settings.spark.delta_retention_hours)
    ledger = BatchLedger(mysql.connect, args.hive_database)
    ledger.ensure_table()
    ledger.claim(WRITER)

    spark = SparkSession.builder.appName("berka-streaming").getOrCreate()
    register_jvm_functions(spark)  # the message parser of transformations.parse_messages
    tables.ensure(spark)
    metrics = StreamMetrics(mysql.connect, args.hive_database)
    metrics.ensure_table()
    spark.streams.addListener(progress_listener(metrics))
    reference = ReferenceCache(
        read_reference(spark, mysql.jdbc_url(), mysql.jdbc_properties()),
        refresh_seconds=args.reference_refresh_seconds,
    )
    kafka_options = kafka.spark_options()
    # This job holds the writer claim: a batch left planned can only be its own, crashed one,
    # so it is looked for once here rather than in every batch.
    pending = ledger.pending()
    if pending is not None:
        log.warning("finishing batch %s, planned and not committed (a crash): %s",
                    pending.batch_id, pending.ranges)
        started = time.monotonic()
        finish_plan(spark, kafka_options, pending, reference.data, tables, ledger)
        log.info("crashed batch %s finished in %.1f s", pending.batch_id,
                 time.monotonic() - started)
    retention = dt.timedelta(hours=settings.spark.delta_retention_hours)
    maintenance = DeltaMaintenance(spark, tables, args.maintenance_minutes * 60,
                                   settings.spark.vacuum_every_hours * 3600,
                                   also=lambda: metrics.prune(retention),
                                   compact_below_mb=settings.spark.compact_below_mb)
    maintenance.start()

    started = time.monotonic()
    state = load_committed_state(spark, tables, ledger)
    log.info("committed state loaded: %s trend cube rows, in %.1f s", len(state.cube),
             time.monotonic() - started)
    return _Job(spark, tables, ledger, reference, kafka_options, maintenance, state)


def _start_query(job: _Job, args: argparse.Namespace) -> StreamingQuery:
    def process(batch: DataFrame, epoch_id: int) -> None:
        started = time.monotonic()
        # The batch lives in a cloned session; its temp views must be made there too.
        result = run_stream_batch(batch.sparkSession, classified=batch, topic=args.topic,
                                  tables=job.tables, ledger=job.ledger, state=job.state)
        job.reference.refresh_if_due()  # after the batch: the next one plans with the new data
        if result is None:
            return
        log.info(
            "epoch %s: %s records, %s enriched, %s quarantined, batch %s in %.2f s (%s)",
            epoch_id, result.records, result.enriched_rows, result.quarantined_rows,
            result.batch_id or "(already committed)", time.monotonic() - started,
            ", ".join(f"{step} {s:.2f}" for step, s in result.seconds.items()),
        )

    records = (
        job.spark.readStream.format("kafka")
        .options(**job.kafka_options)
        .option("subscribe", args.topic)
        .option("startingOffsets", args.starting_offsets)
        .option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
        .option("failOnDataLoss", "true")
        .load()
    )
    Path(args.checkpoint).mkdir(parents=True, exist_ok=True)
    # Parse, validate and enrich are part of the stream's plan, analyzed once here rather than
    # in every batch.
    classified = T.classify(records, job.reference.data)
    return (
        classified.writeStream.queryName(f"berka_{args.hive_database}")
        .foreachBatch(process)
        .option("checkpointLocation", args.checkpoint)
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .start()
    )


def _run_until_stopped(query: StreamingQuery) -> None:
    """Until the query fails or a SIGTERM/SIGINT asks to stop (then after the current batch)."""
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        # Graceful: let the running batch finish, then stop; the checkpoint has the position.
        log.info("signal %s: stopping the query after the current batch", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while query.isActive and not stopping.is_set():
        stopping.wait(1.0)
    if stopping.is_set():
        _stop_between_batches(query)


def _stop_between_batches(query: StreamingQuery, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()


if __name__ == "__main__":
    sys.exit(main())
