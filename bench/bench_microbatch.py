"""Throughput of one micro-batch: read + validate + enrich + aggregate + write, on real servers.

For each scale: generate a synthetic Berka set (scale 1 = ~1.06M transactions), load its
reference tables into a throw-away MySQL database, replay every transaction into a fresh Kafka
topic at full speed, then time ONE batch over all offsets through the Spark Connect server, and
check the result against the ledger. Prints rows/s per stage and the time ratio between scales.

    python bench/bench_microbatch.py --scales 1 10

Needs the local stack (`berka-stack up`).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from berka_assets.assets.reference import reference_tables
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.factory import build_resources
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_core import transformations as T
from berka_core.config import get_settings, load_secrets_into_environment, secret
from berka_core.dataset.generator import generate
from berka_core.producer.options import ReplayOptions
from berka_core.producer.position import MemoryPositionStore
from berka_core.producer.replay import run_replay
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.kafka_source import OffsetRange, read_offset_ranges
from berka_core.spark_jobs.ledger import BatchLedger
from berka_core.spark_jobs.microbatch import read_reference, run_batch
from berka_stack.kafka import ensure_topics


@dataclass
class Dataset:
    """A synthetic Berka set in Kafka (a topic of its own) and MySQL (a database of its own)."""

    name: str
    rows: int
    mysql: MySQLResource
    kafka: KafkaResource
    ranges: list[OffsetRange]


def prepare_dataset(scale: float, workdir: Path) -> Dataset:
    """Generate a set, load its reference tables, replay every transaction at full speed."""
    settings = get_settings()
    name = f"bench_{str(scale).replace('.', '_')}_{uuid.uuid4().hex[:6]}"
    out = workdir / name
    started = time.monotonic()
    generated = generate(out, scale=scale, seed=11)
    rows = generated.rows["trans"]
    print(f"  generated {rows:,} transactions in {time.monotonic() - started:.1f} s")

    mysql_db = f"berka_test_{name}"
    with _admin().connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{mysql_db}`")
    mysql = MySQLResource(database=mysql_db, password=secret(settings.mysql.password_env))
    resources = {**build_resources(settings), "mysql": mysql,
                 "berka_source": BerkaSourceResource(folder=str(out),
                                                     s3=build_resources(settings)["s3"])}
    assert dg.materialize([reference_tables], resources=resources).success

    kafka = KafkaResource()
    ensure_topics(settings.kafka.bootstrap_servers, {name: 3})
    started = time.monotonic()
    result = run_replay(
        ReplayOptions(topic=name, pacing="full", start="beginning"),
        kafka=kafka, source=resources["berka_source"], positions=MemoryPositionStore(),
    )
    produce_seconds = time.monotonic() - started
    assert result.ok and result.delivered == rows, result.summary()
    print(f"  replayed into Kafka in {produce_seconds:.1f} s ({rows / produce_seconds:,.0f} msg/s)")
    ranges = [OffsetRange(name, p.partition, p.low, p.high)
              for p in kafka.partition_offsets(name)]
    return Dataset(name, rows, mysql, kafka, ranges)


def prepare_tables(spark: SparkSession, dataset: Dataset, database: str) -> tuple:
    """The Hive tables and the ledger of a batch into `database`: they exist before the batch,
    as for every batch but a deployment's first (their one-time DDL is timed apart)."""
    tables = HiveTables(database)
    ledger = BatchLedger(dataset.mysql.connect, database)
    ledger.ensure_table()
    tables.ensure(spark)
    return tables, ledger


def timed_batch(spark: SparkSession, dataset: Dataset, tables: HiveTables,
                ledger: BatchLedger) -> tuple[float, object]:
    """One batch over every offset of the set (reference read included); seconds, result."""
    mysql = dataset.mysql
    started = time.monotonic()
    reference = read_reference(spark, mysql.jdbc_url(), mysql.jdbc_properties())
    batch = run_batch(spark, kafka_options=dataset.kafka.spark_options(),
                      requested=dataset.ranges, reference=reference, tables=tables,
                      ledger=ledger)
    seconds = time.monotonic() - started
    assert batch.enriched_rows == dataset.rows and batch.quarantined_rows == 0, batch
    return seconds, batch


def drop_tables(spark: SparkSession, database: str, ledger: BatchLedger) -> None:
    spark.sql(f"DROP DATABASE IF EXISTS `{database}` CASCADE")
    ledger.reset()


def drop_dataset(dataset: Dataset) -> None:
    dataset.kafka.admin().delete_topics([dataset.name])
    with _admin().connect(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{dataset.mysql.database}`")


def _admin() -> MySQLResource:
    return MySQLResource(password=secret(get_settings().mysql.password_env))


def bench_scale(scale: float, workdir: Path, spark: SparkSession) -> dict[str, float]:
    dataset = prepare_dataset(scale, workdir)
    rows = dataset.rows
    started = time.monotonic()
    tables, ledger = prepare_tables(spark, dataset, dataset.name)
    print(f"  created the Hive tables and the ledger in {time.monotonic() - started:.1f} s "
          "(once per deployment, not part of the batch below)")
    seconds, batch = timed_batch(spark, dataset, tables, ledger)
    print(f"  one batch of {rows:,} records in {seconds:.1f} s = {rows / seconds:,.0f} rows/s; "
          f"{batch.write_path}; stages: "
          + ", ".join(f"{k} {v:.1f}s" for k, v in batch.seconds.items()))

    # The floor on this machine: the same records read, parsed, validated and enriched into
    # Spark's noop sink: no write, no read-back, no ledger, no trends.
    reference = read_reference(spark, dataset.mysql.jdbc_url(), dataset.mysql.jdbc_properties())
    started = time.monotonic()
    records = read_offset_ranges(spark, dataset.kafka.spark_options(), dataset.ranges)
    T.classify(records, reference).write.format("noop").mode("overwrite").save()
    floor = time.monotonic() - started
    print(f"  the same records into Spark's noop sink (read + parse + validate + enrich, nothing "
          f"written): {floor:.1f} s = {rows / floor:,.0f} rows/s; the batch took "
          f"{seconds / floor:.2f}x that")

    drop_tables(spark, dataset.name, ledger)
    drop_dataset(dataset)
    return {"rows": rows, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    # The batch's own step timings (staging vs de-duplication and copies) go to this log.
    logging.basicConfig(level=logging.WARNING, format="  %(message)s")
    logging.getLogger("berka_core.spark_jobs.hive_tables").setLevel(logging.INFO)
    load_secrets_into_environment()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; Spark Connect local[2], 4 shuffle partitions")
    spark = SparkSession.builder.remote(get_settings().spark.remote).getOrCreate()
    results = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as workdir:
        for scale in args.scales:
            print(f"scale {scale:g}:")
            results[scale] = bench_scale(scale, Path(workdir), spark)
    spark.stop()  # release the server's session now, not after its idle timeout
    if len(results) > 1:
        (small, a), (large, b) = sorted(results.items())[0], sorted(results.items())[-1]
        print(f"scale {large:g} vs {small:g}: {b['rows'] / a['rows']:.2f}x rows, "
              f"{b['seconds'] / a['seconds']:.2f}x time")


if __name__ == "__main__":
    main()
