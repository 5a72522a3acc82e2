"""The maintenance's OPTIMIZE as the table grows, per compaction threshold
(HiveTables.maintain with BERKA_DELTA_COMPACT_BELOW_MB's value).

For each `--thresholds` value a scratch database receives `--cycles` cycles of `--batches`
appended micro-batches of `--batch` enriched rows (the sensor's cadence: a maintenance every
32 batches), each cycle followed by a maintenance (OPTIMIZE only, no VACUUM). Prints every
maintenance's seconds, the files it rewrote and the table's files and size after it, then per
threshold the last maintenance's seconds against the first: a compaction that rewrites its own
earlier output grows with the table, one that reads only the new small files stays near 1.
The generated rows compress to ~6.7 bytes each, the real enriched ones to ~33: 25,000-row
batches bring a cycle the ~5 MB a sensor maintenance finds at 200 msg/s. Needs the local stack
(`berka-stack up`).

    python bench/bench_compaction.py --thresholds 16 4 --cycles 4 --batch 25000
"""

from __future__ import annotations

import argparse
import platform
import time
import uuid

import psutil
from bench_trends import enriched_rows
from common import cpu_model
from pyspark.sql import SparkSession

from berka_core.config import get_settings
from berka_core.spark_jobs.hive_tables import HiveTables


def maintenance_seconds(spark: SparkSession, threshold_mb: int, cycles: int, batches: int,
                        batch: int) -> list[float]:
    tables = HiveTables(f"bench_compaction_{uuid.uuid4().hex[:8]}")
    seconds = []
    try:
        tables.ensure(spark)
        next_id = 0
        for cycle in range(cycles):
            for number in range(batches):
                tables.append_batch(spark, enriched_rows(spark, next_id, batch),
                                    f"c{cycle}b{number}", quarantine=False)
                next_id += batch
            started = time.monotonic()
            done = tables.maintain(spark, vacuum=False, compact_below_mb=threshold_mb)
            seconds.append(time.monotonic() - started)
            detail = spark.sql(f"DESCRIBE DETAIL {tables.enriched}").first()
            print(f"  {threshold_mb:>4} MB, cycle {cycle + 1}: {seconds[-1]:5.2f} s, rewrote "
                  f"{done.compacted[tables.enriched]:>3} files; table {next_id:,} rows in "
                  f"{detail.numFiles} files, {detail.sizeInBytes / 2**20:.1f} MiB", flush=True)
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholds", type=int, nargs="+", default=[16, 4],
                        help="BERKA_DELTA_COMPACT_BELOW_MB values to compare, in MB")
    parser.add_argument("--cycles", type=int, default=4, help="maintenances per threshold")
    parser.add_argument("--batches", type=int, default=32, help="batches between two")
    parser.add_argument("--batch", type=int, default=6_000, help="rows per batch")
    args = parser.parse_args()

    spark = SparkSession.builder.remote(get_settings().spark.remote).getOrCreate()
    results = {}
    try:
        for threshold in args.thresholds:
            results[threshold] = maintenance_seconds(spark, threshold, args.cycles,
                                                     args.batches, args.batch)
    finally:
        spark.stop()
    print(f"machine: {platform.node()}, {psutil.cpu_count()} cores, {cpu_model()}")
    for threshold, seconds in results.items():
        print(f"threshold {threshold} MB: maintenance {', '.join(f'{s:.2f}' for s in seconds)} s;"
              f" last / first = {seconds[-1] / seconds[0]:.2f}x")


if __name__ == "__main__":
    main()
