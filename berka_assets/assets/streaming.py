"""Kafka topic -> enriched_transactions / quarantine -> the three trend tables, one micro-batch.

The sensor in berka_assets/sensors/kafka_offsets.py launches one run per offset range; each run
materializes all five Hive tables together, because they are written in one exactly-once step
(see berka_assets/spark_jobs/microbatch.py).
"""

import time

import dagster as dg
from dagster_pyspark import PySparkResource

from berka_assets.assets.reference import reference_key
from berka_assets.config import KafkaSettings, SparkSettings
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.spark_jobs.hive_tables import HiveTables
from berka_assets.spark_jobs.kafka_source import OffsetRange
from berka_assets.spark_jobs.ledger import BatchLedger
from berka_assets.spark_jobs.microbatch import REFERENCE_TABLES, read_reference, run_batch
from berka_assets.stack.process import port_open

TREND_TABLES = ("monthly_trend", "yearly_trend", "trans_by_age_gender")
MICROBATCH_TAG = "berka/microbatch"
WRITER = "dagster-microbatch"


def topic_key(topic: str | None = None) -> dg.AssetKey:
    return dg.AssetKey(["kafka", topic or KafkaSettings().topic])


def hive_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["hive", table])


kafka_topic = dg.AssetSpec(
    key=topic_key(),
    description="The Kafka topic the replay job writes Berka transactions to (one JSON message "
    "per transaction, key = account_id). Observed by the Kafka sensor: end offsets and lag.",
    group_name="streaming",
    kinds={"kafka"},
)


class PartitionRange(dg.Config):
    """Offsets [start_offset, end_offset) of one partition."""

    partition: int
    start_offset: int
    end_offset: int


class MicrobatchConfig(dg.Config):
    """The offset ranges of one micro-batch: one partition's (the default), or every
    partition's when the sensor runs one batch per tick (BERKA_SENSOR_RUN_PER=tick)."""

    topic: str = KafkaSettings().topic
    ranges: list[PartitionRange]
    hive_database: str = SparkSettings().hive_database

    def offset_ranges(self) -> list[OffsetRange]:
        return [OffsetRange(self.topic, r.partition, r.start_offset, r.end_offset)
                for r in self.ranges]


_ENRICHMENT_DEPS = [reference_key(table) for table in REFERENCE_TABLES]


@dg.multi_asset(
    name="microbatch",
    specs=[
        dg.AssetSpec(
            hive_key("enriched_transactions"),
            description="Valid transactions enriched with district and the OWNER client's "
            "gender and age band; one partition per committed micro-batch, merged once more "
            "than BERKA_COMPACT_AFTER_BATCHES exist.",
            group_name="streaming",
            kinds={"spark", "hive"},
            deps=[topic_key(), *_ENRICHMENT_DEPS],
        ),
        dg.AssetSpec(
            hive_key("quarantine"),
            description="Records that could not be enriched, with raw payload, offset and reason.",
            group_name="streaming",
            kinds={"spark", "hive"},
            deps=[topic_key()],
        ),
        *[
            dg.AssetSpec(
                hive_key(table),
                description=f"{table}: an aggregate of enriched_transactions (a view over "
                "trend_cube, which each micro-batch rebuilds).",
                group_name="trends",
                kinds={"spark", "hive"},
                deps=[hive_key("enriched_transactions")],
            )
            for table in TREND_TABLES
        ],
    ],
    op_tags={"kind": "spark"},
)
def microbatch(
    context: dg.AssetExecutionContext,
    config: MicrobatchConfig,
    pyspark: PySparkResource,
    kafka: KafkaResource,
    mysql: MySQLResource,
):
    """Enrich one Kafka offset range exactly once and refresh the trend tables."""
    requested = config.offset_ranges()
    started = time.monotonic()
    ledger = BatchLedger(mysql.connect, config.hive_database)
    ledger.ensure_table()  # a clear "cannot reach MySQL" before any Spark JDBC stack trace
    ledger.claim(WRITER)
    require_spark_endpoint()
    spark = pyspark.spark_session
    reference = read_reference(spark, mysql.jdbc_url(), mysql.jdbc_properties())
    result = run_batch(
        spark,
        kafka_options=kafka.spark_options(),
        requested=requested,
        reference=reference,
        tables=HiveTables(config.hive_database),
        ledger=ledger,
        compact_after=SparkSettings().compact_after_batches,
    )
    elapsed = time.monotonic() - started
    end_offsets = {p.partition: p.high for p in kafka.partition_offsets(config.topic)}
    lag = sum(end_offsets.get(r.partition, 0) - r.end for r in requested)
    requested_text = _describe(requested)
    processed = _describe(result.processed) or "none (committed)"
    context.log.info(
        f"{config.topic} requested {requested_text}, processed {processed}: "
        f"{result.enriched_rows:,} enriched, {result.quarantined_rows:,} quarantined in "
        f"{elapsed:.1f} s; lag {lag:,}"
    )
    batch_metadata = {
        "batch_id": result.batch_id or "(nothing new)",
        "kafka_partitions": ", ".join(str(r.partition) for r in requested),
        "requested_offsets": requested_text,
        "processed_offsets": processed,
        "records": result.records,
        "consumer_lag": lag,
        "rows_per_second": round(result.records / elapsed, 1) if elapsed else 0.0,
        "write_path": result.write_path or "(nothing written)",
        "compacted_into": result.compacted_into or "(no compaction due)",
        "seconds": dg.MetadataValue.json({k: round(v, 3) for k, v in result.seconds.items()}),
    }
    yield dg.MaterializeResult(
        asset_key=hive_key("enriched_transactions"),
        metadata={**batch_metadata, "dagster/row_count": result.enriched_rows,
                  "enriched_rows": result.enriched_rows},
    )
    yield dg.MaterializeResult(
        asset_key=hive_key("quarantine"),
        metadata={
            "batch_id": result.batch_id or "(nothing new)",
            "quarantined_rows": result.quarantined_rows,
            "reasons": dg.MetadataValue.json(result.reasons),
        },
    )
    for table in TREND_TABLES:
        yield dg.MaterializeResult(
            asset_key=hive_key(table), metadata={"rebuilt_after_batch": batch_metadata["batch_id"]}
        )


def require_spark_endpoint() -> None:
    """Fail fast and clearly: the Connect client would otherwise retry for minutes."""
    remote = SparkSettings().remote
    if not remote:
        return
    host, _, port = remote.removeprefix("sc://").split("/")[0].partition(":")
    if not port_open(host, int(port or 15002), timeout=3):
        raise dg.Failure(
            description=f"The Spark Connect server at {remote} is not reachable. Start it "
            "(`berka-stack up spark-connect`) or set BERKA_SPARK_REMOTE; nothing was processed."
        )


def _describe(ranges: list[OffsetRange]) -> str:
    return ", ".join(f"p{r.partition} [{r.start}, {r.end})" for r in ranges)


def microbatch_run_config(ranges: list[OffsetRange], hive_database: str) -> dict:
    """Run config naming only offsets: payloads never travel in run config (64 KB cap)."""
    return {
        "ops": {
            "microbatch": {
                "config": {
                    "topic": ranges[0].topic,
                    "ranges": [
                        {"partition": r.partition, "start_offset": r.start, "end_offset": r.end}
                        for r in ranges
                    ],
                    "hive_database": hive_database,
                }
            }
        }
    }


microbatch_job = dg.define_asset_job(
    "microbatch_job",
    # Checks run in their own job: each costs a Spark scan, and batches should stay short.
    selection=dg.AssetSelection.assets(microbatch).without_checks(),
    description="One Kafka offset range through Spark into the Hive tables (launched by the "
    "Kafka sensor).",
    # One process: the multiprocess default would start a Spark client per step.
    executor_def=dg.in_process_executor,
    tags={MICROBATCH_TAG: "hive"},
)
