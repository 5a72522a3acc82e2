"""Checks that the Hive tables and the batch ledger agree: nothing lost, nothing counted twice."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster_pyspark import PySparkResource

from berka_assets.assets.streaming import TREND_TABLES, hive_key, require_spark_endpoint
from berka_assets.automation import checks_condition
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_core.config import get_settings
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.ledger import BatchLedger

TOTAL_COLUMNS = {
    "monthly_trend": ("transaction_count", "transaction_amount"),
    "yearly_trend": ("transaction_count", "transaction_amount"),
    "trans_by_age_gender": ("transaction_count", "total_amount"),
}



def _streaming_check(table: str, description: str, **kwargs: Any) -> Callable:
    """An asset check of a Hive table, evaluated on the checks' cron after new batches."""
    return dg.asset_check(asset=hive_key(table), automation_condition=checks_condition(),
                          description=description, **kwargs)

def _tables() -> HiveTables:
    require_spark_endpoint()  # the checks use Spark: fail clearly, not after minutes of retries
    return HiveTables(get_settings().spark.hive_database)


@_streaming_check(
    "enriched_transactions",
    "Offsets consumed (ledger) = enriched rows + quarantined rows, and both tables hold "
    "exactly the rows the ledger committed.",
)
def offsets_add_up(pyspark: PySparkResource, mysql: MySQLResource) -> dg.AssetCheckResult:
    tables = _tables()
    spark = pyspark.spark_session
    totals = BatchLedger(mysql.connect, tables.database).totals(get_settings().kafka.topic)
    enriched = spark.table(tables.enriched).count()
    quarantined = spark.table(tables.quarantine).count()
    return dg.AssetCheckResult(
        passed=totals.consumed == enriched + quarantined
        and totals.enriched == enriched
        and totals.quarantined == quarantined,
        metadata={
            "offsets_consumed": totals.consumed,
            "enriched_rows": enriched,
            "quarantined_rows": quarantined,
            "ledger_enriched": totals.enriched,
            "ledger_quarantined": totals.quarantined,
            "batches": totals.batches,
        },
    )


@_streaming_check("enriched_transactions", "Every trans_id appears at most once.")
def no_duplicate_trans_id(pyspark: PySparkResource) -> dg.AssetCheckResult:
    spark = pyspark.spark_session
    duplicates = spark.sql(
        f"SELECT trans_id FROM {_tables().enriched} GROUP BY trans_id HAVING COUNT(*) > 1"
    )
    count = duplicates.count()
    sample = [row.trans_id for row in duplicates.limit(10).collect()] if count else []
    return dg.AssetCheckResult(
        passed=count == 0, metadata={"duplicate_trans_ids": count, "sample": str(sample)}
    )


def _trend_totals_check(table: str) -> dg.AssetChecksDefinition:
    count_column, amount_column = TOTAL_COLUMNS[table]

    @_streaming_check(table, f"{table}'s count and amount add up to enriched_transactions'.",
                      name="totals_match_enriched")
    def totals_match_enriched(pyspark: PySparkResource) -> dg.AssetCheckResult:
        spark = pyspark.spark_session
        tables = _tables()
        trend = spark.sql(
            f"SELECT COALESCE(SUM({count_column}), 0) AS n, "
            f"COALESCE(SUM({amount_column}), 0) AS amount FROM {tables.trend(table)}"
        ).first()
        enriched = spark.sql(
            f"SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM {tables.enriched}"
        ).first()
        return dg.AssetCheckResult(
            passed=trend.n == enriched.n and trend.amount == enriched.amount,
            metadata={"trend_count": trend.n, "enriched_count": enriched.n,
                      "trend_amount": str(trend.amount), "enriched_amount": str(enriched.amount)},
        )

    return totals_match_enriched


@_streaming_check(
    "monthly_trend",
    "Trends are fresh: either every offset in the topic is committed, or the last batch "
    "committed less than BERKA_FRESHNESS_MINUTES (default 10) ago.",
)
def trends_fresh(kafka: KafkaResource, mysql: MySQLResource) -> dg.AssetCheckResult:
    # The ledger and the topic only: no Spark, so it also tells the truth while Spark is down.
    topic = get_settings().kafka.topic
    ledger = BatchLedger(mysql.connect, get_settings().spark.hive_database)
    partitions = kafka.partition_offsets(topic)
    frontiers = ledger.frontiers(topic, [p.partition for p in partitions])
    lag = sum(p.high - frontiers.get(p.partition, p.low) for p in partitions)
    last_commit = ledger.last_commit()
    limit = dt.timedelta(minutes=get_settings().sensor.freshness_minutes)
    age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - last_commit) if last_commit else None
    fresh = lag == 0 or (age is not None and age <= limit)
    return dg.AssetCheckResult(
        passed=fresh,
        metadata={
            "uncommitted_offsets": lag,
            "last_commit_utc": str(last_commit) if last_commit else "never",
            "minutes_since_last_commit": round(age.total_seconds() / 60, 2) if age else -1.0,
        },
    )


STREAMING_CHECKS = [
    offsets_add_up,
    no_duplicate_trans_id,
    trends_fresh,
    *[_trend_totals_check(table) for table in TREND_TABLES],
]
