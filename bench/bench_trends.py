"""The micro-batch's trend step as the enriched table grows: the trend cube updated from the
table's change data feed (HiveTables.update_trends, what a batch runs) vs aggregated from the
whole table (rebuild_trends, what every batch ran before).

A scratch database gets `--rows` enriched rows in one commit, then batches of `--batch` rows,
one Delta commit each, as micro-batches append them; after each append one of the two ways
brings the cube up to date, alternating, so both see the same table sizes. The cube is checked
against a fresh aggregate at the end. Prints the medians and their ratio. Needs the local stack
(`berka-stack up`).

    python bench/bench_trends.py --rows 1000000 --batch 6000 --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid

import psutil
from common import cpu_model
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from berka_core import transformations as T
from berka_core.config import get_settings
from berka_core.spark_jobs.hive_tables import HiveTables

# Enriched rows spread over the cube's cells as the Berka years, months and bands are.
CELLS = {
    "year": "1993 + CAST(id % 6 AS INT)", "month": "1 + CAST(id % 12 AS INT)",
    "age_band": "element_at(array('<25', '25-34', '35-44', '45-54', '55-64', '65+'), "
                "CAST(1 + id % 6 AS INT))",
    "gender": "IF(id % 2 = 0, 'F', 'M')", "amount": "CAST((id % 100000) / 100 AS DECIMAL(15,2))",
}


def enriched_rows(spark: SparkSession, first_id: int, count: int) -> DataFrame:
    ids = spark.range(first_id, first_id + count)
    return ids.select(*(
        F.col("id").cast(kind).alias(name) if name == "trans_id"
        else F.expr(CELLS[name]).cast(kind).alias(name) if name in CELLS
        else F.lit(0).cast(kind).alias(name) if name in ("kafka_partition", "kafka_offset")
        else F.lit(None).cast(kind).alias(name)
        for name, kind in T.ENRICHED_TYPES.items()), F.lit(None).cast("string").alias("reason"))


def timed(tables: HiveTables, spark: SparkSession, way: str) -> float:
    started = time.monotonic()
    getattr(tables, way)(spark)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows before the batches")
    parser.add_argument("--batch", type=int, default=6_000, help="rows per appended batch")
    parser.add_argument("--repeat", type=int, default=5, help="batches per way")
    args = parser.parse_args()

    spark = SparkSession.builder.remote(get_settings().spark.remote).getOrCreate()
    tables = HiveTables(f"bench_trends_{uuid.uuid4().hex[:8]}")
    seconds: dict[str, list[float]] = {"update_trends": [], "rebuild_trends": []}
    try:
        tables.ensure(spark)
        tables.append_batch(spark, enriched_rows(spark, 0, args.rows), "initial",
                            quarantine=False)
        tables.rebuild_trends(spark)
        next_id = args.rows
        for round_number in range(2 * args.repeat):
            tables.append_batch(spark, enriched_rows(spark, next_id, args.batch),
                                f"b{round_number}", quarantine=False)
            next_id += args.batch
            way = "update_trends" if round_number % 2 == 0 else "rebuild_trends"
            seconds[way].append(timed(tables, spark, way))
            print(f"  {next_id:>10,} rows  {way:<15} {seconds[way][-1]:6.2f} s", flush=True)
        cube = sorted(tuple(r) for r in spark.table(tables.cube).collect())
        fresh = sorted(tuple(r) for r in T.trend_cube(spark.table(tables.enriched)).collect())
        assert cube == fresh, "the cube differs from an aggregate of the table"
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS `{tables.database}` CASCADE")
        spark.stop()

    update, rebuild = (statistics.median(seconds[w]) for w in ("update_trends", "rebuild_trends"))
    print(f"machine: {platform.node()}, {psutil.cpu_count()} cores, {cpu_model()}")
    print(f"{args.rows:,} rows + batches of {args.batch:,}, {args.repeat} each, median:")
    print(f"  update_trends  (change feed) {update:6.2f} s")
    print(f"  rebuild_trends (whole table) {rebuild:6.2f} s")
    print(f"  ratio rebuild/update         {rebuild / update:6.2f}x")


if __name__ == "__main__":
    main()
