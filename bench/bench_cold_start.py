"""The first micro-batch after a Spark Connect server (re)start, against a warm one.

Each round restarts the Connect server (`berka-stack` down and up of spark-connect), then runs
one batch over a synthetic set (scale 1 = ~1.06M records) into Hive tables created before the
restart (cold), and the same records into a second such database (warm). Prints both with
their stages and the cold/warm ratio ([latency]: within 1.5x is the goal).

    python bench/bench_cold_start.py --scale 1 --rounds 2

Needs the local stack (`berka-stack up`); it restarts its Spark Connect server.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench_microbatch import (
    Dataset,
    drop_dataset,
    drop_tables,
    prepare_dataset,
    prepare_tables,
    timed_batch,
)
from pyspark.sql import SparkSession

from berka_core.config import get_settings, load_secrets_into_environment
from berka_stack import cli


def connect() -> SparkSession:
    return SparkSession.builder.remote(get_settings().spark.remote).create()


def restart_server() -> float:
    """Restart the Connect server; seconds until `berka-stack up` returned."""
    cli.down(["spark-connect"], echo=lambda line: None)
    started = time.monotonic()
    cli.up(["spark-connect"], echo=lambda line: None)
    return time.monotonic() - started


def one_round(dataset: Dataset) -> dict[str, float]:
    databases = [f"{dataset.name}_{kind}_{uuid.uuid4().hex[:4]}" for kind in ("cold", "warm")]
    spark = connect()
    prepared = [prepare_tables(spark, dataset, database) for database in databases]
    spark.stop()
    figures = {"ready": restart_server()}
    spark = connect()
    for kind, (tables, ledger) in zip(("cold", "warm"), prepared, strict=True):
        seconds, batch = timed_batch(spark, dataset, tables, ledger)
        figures[kind] = seconds
        print(f"    {kind}: {seconds:5.1f} s  ("
              + ", ".join(f"{k} {v:.1f}" for k, v in batch.seconds.items()) + ")")
    for database, (_, ledger) in zip(databases, prepared, strict=True):
        drop_tables(spark, database, ledger)
    spark.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    load_secrets_into_environment()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; Spark Connect local[2]")
    rounds = []
    with tempfile.TemporaryDirectory() as workdir:
        dataset = prepare_dataset(args.scale, Path(workdir))
        try:
            for number in range(1, args.rounds + 1):
                print(f"  round {number}:")
                rounds.append(one_round(dataset))
        finally:
            drop_dataset(dataset)
    cold = statistics.median(r["cold"] for r in rounds)
    warm = statistics.median(r["warm"] for r in rounds)
    ready = statistics.median(r["ready"] for r in rounds)
    print(f"\n{dataset.rows:,} records per batch, medians of {args.rounds} rounds: server up in "
          f"{ready:.1f} s, first batch {cold:.1f} s, next {warm:.1f} s, "
          f"cold/warm {cold / warm:.2f}x")


if __name__ == "__main__":
    main()
