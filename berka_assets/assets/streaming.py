"""Kafka topic -> enriched_transactions / quarantine -> the three trend tables, one micro-batch.

The sensor in berka_assets/sensors/kafka_offsets.py launches one run per offset range; each run
materializes all five Hive tables together, because they are written in one exactly-once step
(see berka_core/spark_jobs/microbatch.py).
"""

import time
from collections.abc import Iterator

import dagster as dg
from dagster_pyspark import PySparkResource
from pydantic import Field

from berka_assets.assets.catalog import OWNERS, hive_table_metadata, streaming_spec
from berka_assets.assets.reference import reference_key
from berka_assets.assets.source import SOURCE_FILES_KEY
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.spark import connect_endpoint_reachable
from berka_core.config import get_settings
from berka_core.offset_planning import catch_up_ranges
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.ledger import BatchLedger
from berka_core.spark_jobs.microbatch import (
    ENRICHMENT_TABLES,
    BatchResult,
    from_frontier,
    read_reference,
    run_batch,
)
from berka_core.topic_incarnation import follow_topic

TREND_TABLES = ("monthly_trend", "yearly_trend", "trans_by_age_gender")
MICROBATCH_TAG = "berka/microbatch"
# A run in one of these is queued or running (the sensor's backpressure, one maintenance at a time).
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
WRITER = "dagster-microbatch"


def topic_key(topic: str | None = None) -> dg.AssetKey:
    return dg.AssetKey(["kafka", topic or get_settings().kafka.topic])


def hive_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["hive", table])


kafka_topic = streaming_spec(
    topic_key(),
    "The Kafka topic the replay job writes Berka transactions to (one JSON message "
    "per transaction, key = account_id). Materialized by each replay run (messages sent, "
    "offsets, dead letters); observed by the Kafka sensor (end offsets and lag).",
    kinds={"kafka"},
    deps=[SOURCE_FILES_KEY],
)


class PartitionRange(dg.Config):
    """Offsets [start_offset, end_offset) of one partition."""

    partition: int
    start_offset: int
    end_offset: int


class MicrobatchConfig(dg.Config):
    """The offset ranges of one micro-batch: one partition's (the default), or every
    partition's when the sensor runs one batch per tick (BERKA_SENSOR_RUN_PER=tick)."""

    topic: str = get_settings().kafka.topic
    ranges: list[PartitionRange] = Field(
        default_factory=list,
        description="Empty (a Materialize click): catch up from the ledger's frontier, at most "
        "BERKA_SENSOR_MAX_RECORDS per partition. The sensor names its ranges.")
    hive_database: str = get_settings().spark.hive_database

    def offset_ranges(self) -> list[OffsetRange]:
        return [OffsetRange(self.topic, r.partition, r.start_offset, r.end_offset)
                for r in self.ranges]


_ENRICHMENT_DEPS = [reference_key(table) for table in ENRICHMENT_TABLES]
_HIVE_DATABASE = get_settings().spark.hive_database


@dg.multi_asset(
    name="microbatch",
    specs=[
        dg.AssetSpec(
            hive_key("enriched_transactions"),
            description="Valid transactions enriched with district and the OWNER client's "
            "gender and age band: a Delta table, one commit per micro-batch, compacted and "
            "vacuumed every BERKA_DELTA_MAINTAIN_EVERY_BATCHES batches by delta_maintenance_job.",
            group_name="streaming",
            kinds={"spark", "delta", "hive"},
            owners=OWNERS,
            deps=[topic_key(), *_ENRICHMENT_DEPS],
            metadata=hive_table_metadata("enriched_transactions", _HIVE_DATABASE),
        ),
        dg.AssetSpec(
            hive_key("quarantine"),
            description="Records that could not be enriched, with raw payload, offset and reason.",
            group_name="streaming",
            kinds={"spark", "delta", "hive"},
            owners=OWNERS,
            deps=[topic_key()],
            metadata=hive_table_metadata("quarantine", _HIVE_DATABASE),
        ),
        *[
            dg.AssetSpec(
                hive_key(table),
                description=f"{table}: an aggregate of enriched_transactions (a view over "
                "trend_cube, which each micro-batch rebuilds).",
                group_name="trends",
                kinds={"spark", "delta", "hive"},
                owners=OWNERS,
                deps=[hive_key("enriched_transactions")],
                metadata=hive_table_metadata(table, _HIVE_DATABASE),
            )
            for table in TREND_TABLES
        ],
    ],
    op_tags={"kind": "spark"},
    # A trend can be materialized on its own: it is then rebuilt from the committed data.
    can_subset=True,
)
def microbatch(
    context: dg.AssetExecutionContext,
    config: MicrobatchConfig,
    pyspark: PySparkResource,
    kafka: KafkaResource,
    mysql: MySQLResource,
):
    """Enrich one Kafka offset range exactly once and refresh the trend tables; with no
    ranges, catch up from the ledger's frontier; with only trends selected, rebuild them."""
    started = time.monotonic()
    ledger = BatchLedger(mysql.connect, config.hive_database)
    ledger.ensure_table()  # a clear "cannot reach MySQL" before any Spark JDBC stack trace
    ledger.claim(WRITER)
    selected = context.selected_asset_keys
    trends_only = not selected & {hive_key("enriched_transactions"), hive_key("quarantine")}
    pending = ledger.pending()
    if not config.offset_ranges() and pending is None:  # catching up, as the sensor would
        follow_topic(kafka, ledger, config.topic, context.log.warning)
    partitions = kafka.partition_offsets(config.topic)
    frontiers = ledger.frontiers(config.topic, [p.partition for p in partitions])
    lows = {p.partition: p.low for p in partitions}
    requested = config.offset_ranges() or catch_up_ranges(
        config.topic, frontiers, partitions, get_settings().sensor.max_records_per_batch)
    if (not trends_only and pending is None and not from_frontier(requested, frontiers, lows)
            and not ledger.invisible_batches()):
        # A retry of a run that failed after its commit, or a repeated click: committed and
        # in the trends already, so no Spark work at all (a cold server took ~25 s for it).
        context.log.info(f"{_describe(requested)} of {config.topic} is committed and visible")
        yield from (dg.MaterializeResult(asset_key=key, metadata={
            "batch_id": "(already committed)", "requested_offsets": _describe(requested),
            "write_path": "(nothing written)"})
            for key in sorted(selected))
        return
    require_spark_endpoint()
    spark = pyspark.spark_session
    spark_settings = get_settings().spark
    tables = HiveTables(config.hive_database, spark_settings.delta_retention_hours)
    # A batch a crash left planned is finished first (by run_batch): trends never show it half.
    if trends_only and pending is None:
        yield from _rebuild_trends_only(context, spark, tables, ledger)
        return
    reference = read_reference(spark, mysql.jdbc_url(), mysql.jdbc_properties())
    result = run_batch(
        spark,
        kafka_options=kafka.spark_options(),
        requested=requested,
        reference=reference,
        tables=tables,
        ledger=ledger,
        low_offsets=lows,
    )
    elapsed = time.monotonic() - started
    lag = _lag(kafka, config.topic, requested)
    context.log.info(
        f"{config.topic} requested {_describe(requested)}, processed "
        f"{_describe(result.processed) or 'none (committed)'}: {result.enriched_rows:,} "
        f"enriched, {result.quarantined_rows:,} quarantined in {elapsed:.1f} s; lag {lag:,}"
    )
    results = _materializations(requested, result, elapsed, lag)
    yield from (r for r in results if r.asset_key in selected)


def _lag(kafka: KafkaResource, topic: str, requested: list[OffsetRange]) -> int:
    """Records on the topic after the requested ranges, now."""
    end_offsets = {p.partition: p.high for p in kafka.partition_offsets(topic)}
    return sum(end_offsets.get(r.partition, 0) - r.end for r in requested)


def _materializations(requested: list[OffsetRange], result: BatchResult, elapsed: float,
                      lag: int) -> list[dg.MaterializeResult]:
    """One per table of the batch, with what the UI shows of it (offsets, counts, lag,
    seconds per step, the Delta versions that time travel reads)."""
    batch_metadata = {
        "batch_id": result.batch_id or "(nothing new)",
        "kafka_partitions": ", ".join(str(r.partition) for r in requested),
        "requested_offsets": _describe(requested),
        "processed_offsets": _describe(result.processed) or "none (committed)",
        "records": result.records,
        "consumer_lag": lag,
        "rows_per_second": round(result.records / elapsed, 1) if elapsed else 0.0,
        "write_path": result.write_path or "(nothing written)",
        "finished_plan": result.finished_plan or "(none pending)",
        "seconds": dg.MetadataValue.json({k: round(v, 3) for k, v in result.seconds.items()}),
    }
    results = [dg.MaterializeResult(
        asset_key=hive_key("enriched_transactions"),
        metadata={**batch_metadata, "dagster/row_count": result.enriched_rows,
                  "enriched_rows": result.enriched_rows,
                  "delta_version": result.delta_versions.get("enriched_transactions", -1)},
    ), dg.MaterializeResult(
        asset_key=hive_key("quarantine"),
        metadata={
            "batch_id": result.batch_id or "(nothing new)",
            "quarantined_rows": result.quarantined_rows,
            "reasons": dg.MetadataValue.json(result.reasons),
        },
    )]
    return results + [
        dg.MaterializeResult(
            asset_key=hive_key(table),
            metadata={"rebuilt_after_batch": batch_metadata["batch_id"],
                      # The trend views read the cube: `VERSION AS OF` this shows these trends.
                      "trend_cube_version": result.delta_versions.get("trend_cube", -1)},
        )
        for table in TREND_TABLES
    ]


def _rebuild_trends_only(context: dg.AssetExecutionContext, spark, tables: HiveTables,
                         ledger: BatchLedger) -> Iterator[dg.MaterializeResult]:
    """The selected trends from the committed data (one commit of the trend cube); nothing is
    read from Kafka."""
    started = time.monotonic()
    tables.ensure(spark)
    tables.rebuild_trends(spark)
    ledger.mark_visible()
    version = tables.version(spark, tables.cube)
    context.log.info(f"trends of {tables.database} rebuilt from the committed data in "
                     f"{time.monotonic() - started:.1f} s (trend_cube version {version})")
    for key in sorted(context.selected_asset_keys):
        yield dg.MaterializeResult(asset_key=key, metadata={
            "rebuilt_after_batch": "(trends only: rebuilt from the committed data)",
            "trend_cube_version": version})


def require_spark_endpoint() -> None:
    """Fail fast and clearly: the Connect client would otherwise retry for minutes."""
    remote = get_settings().spark.remote
    if not remote:
        return
    if not connect_endpoint_reachable(remote):
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
    # Retried by the daemon (run_retries in dagster.yaml): a batch is exactly once, so safe.
    tags={MICROBATCH_TAG: "hive", "dagster/max_retries": "2",
          "dagster/max_runtime": str(get_settings().sensor.microbatch_max_runtime_s)},
)
