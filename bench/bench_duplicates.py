"""The micro-batch's duplicate check as the enriched table grows: a batch's ids against every
committed trans_id (transformations.duplicate_reasons over HiveTables.committed_trans_ids).

For each `--rows` a scratch database gets that many enriched rows in `--files` Delta commits;
then `--repeat` batches of `--batch` ids, half of them already committed, are checked, each
counted once (the duplicates found must be that half). Prints the median per table size and
the ratio of the largest to the smallest: a check that does not grow with the table stays
near 1. For an A/B, run it from a worktree of the other commit with `PYTHONPATH` set to it.
Needs the local stack (`berka-stack up`).

    python bench/bench_duplicates.py --rows 100000 1000000 3000000 --batch 4000
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid

import psutil
from bench_trends import enriched_rows
from common import cpu_model
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from berka_core import transformations as T
from berka_core.config import get_settings
from berka_core.spark_jobs.hive_tables import HiveTables


def batch_ids(spark: SparkSession, first_id: int, count: int) -> DataFrame:
    """Valid staged records (the check's narrow columns) with ids first_id.. first_id+count."""
    return spark.range(first_id, first_id + count).select(
        F.col("id").alias("trans_id"), F.lit(0).alias("kafka_partition"),
        F.col("id").alias("kafka_offset"), F.lit(None).cast("string").alias("reason"))


def seconds_per_check(spark: SparkSession, rows: int, files: int, batch: int,
                      repeat: int) -> list[float]:
    tables = HiveTables(f"bench_duplicates_{uuid.uuid4().hex[:8]}")
    seconds = []
    try:
        tables.ensure(spark)
        per_file = rows // files
        for number in range(files):
            tables.append_batch(spark, enriched_rows(spark, number * per_file, per_file),
                                f"initial{number}", quarantine=False)
        committed = per_file * files
        for round_number in range(repeat + 1):  # the first one warms up
            first = committed - batch // 2 - round_number
            staged = batch_ids(spark, first, batch).persist()
            staged.count()
            started = time.monotonic()
            found = T.duplicate_reasons(
                staged, tables.committed_trans_ids(spark, but_batch="bench")).count()
            if round_number:
                seconds.append(time.monotonic() - started)
            staged.unpersist()
            assert found == committed - first, (found, committed - first)
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000],
                        help="committed rows, one table per figure")
    parser.add_argument("--files", type=int, default=20, help="commits the rows arrive in")
    parser.add_argument("--batch", type=int, default=4_000, help="ids per checked batch")
    parser.add_argument("--repeat", type=int, default=5, help="checks per table size")
    args = parser.parse_args()

    spark = SparkSession.builder.remote(get_settings().spark.remote).getOrCreate()
    medians = {}
    try:
        for rows in args.rows:
            seconds = seconds_per_check(spark, rows, args.files, args.batch, args.repeat)
            medians[rows] = statistics.median(seconds)
            print(f"  {rows:>10,} committed rows: median {medians[rows]:5.2f} s  "
                  f"({', '.join(f'{s:.2f}' for s in seconds)})", flush=True)
    finally:
        spark.stop()
    print(f"machine: {platform.node()}, {psutil.cpu_count()} cores, {cpu_model()}")
    smallest, largest = min(medians), max(medians)
    print(f"batches of {args.batch:,} ids, {args.repeat} checks each: "
          f"{largest:,} rows / {smallest:,} rows = {medians[largest] / medians[smallest]:.2f}x")


if __name__ == "__main__":
    main()
