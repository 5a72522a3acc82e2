"""The Kafka sensor: new offsets on the topic become bounded, deterministic micro-batch runs."""

import json

import dagster as dg

from berka_assets.assets.streaming import (
    MICROBATCH_TAG,
    microbatch_job,
    microbatch_run_config,
    topic_key,
)
from berka_assets.config import KafkaSettings, SensorSettings, SparkSettings
from berka_assets.resources.kafka import KafkaResource, PartitionOffsets
from berka_assets.resources.mysql import MySQLResource
from berka_assets.spark_jobs.kafka_source import OffsetRange
from berka_assets.spark_jobs.ledger import BatchLedger


def plan_ranges(
    topic: str,
    next_offsets: dict[int, int],
    partitions: list[PartitionOffsets],
    max_records: int,
) -> list[OffsetRange]:
    """Cut each partition's new offsets into ranges of at most `max_records`.

    Pure and deterministic: the same cursor and end offsets always give the same ranges, so a
    repeated evaluation produces the same run keys and Dagster launches each range once.
    """
    ranges = []
    for partition in partitions:
        start = max(next_offsets.get(partition.partition, partition.low), partition.low)
        while start < partition.high:
            end = min(start + max_records, partition.high)
            ranges.append(OffsetRange(topic, partition.partition, start, end))
            start = end
    return ranges


def run_key(ranges: list[OffsetRange]) -> str:
    """`<topic>-<partition>-<start>-<end>`; a per-tick batch joins its partitions with `_`."""
    return f"{ranges[0].topic}-" + "_".join(f"{r.partition}-{r.start}-{r.end}" for r in ranges)


def group_runs(ranges: list[OffsetRange], run_per: str) -> list[list[OffsetRange]]:
    """One run per range ("partition"), or the i-th range of every partition together ("tick":
    fewer, larger runs, so lower latency when runs are serialized)."""
    if run_per == "partition":
        return [[r] for r in ranges]
    by_partition: dict[int, list[OffsetRange]] = {}
    for offset_range in ranges:
        by_partition.setdefault(offset_range.partition, []).append(offset_range)
    rounds = max((len(v) for v in by_partition.values()), default=0)
    return [
        [chunks[i] for chunks in by_partition.values() if i < len(chunks)]
        for i in range(rounds)
    ]


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def run_in_flight(instance: dg.DagsterInstance, hive_database: str) -> dg.DagsterRun | None:
    """A micro-batch run of this Hive database that is queued or running, if any."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={MICROBATCH_TAG: hive_database}, statuses=IN_FLIGHT), limit=1
    )
    return runs[0] if runs else None


def build_kafka_sensor(
    topic: str | None = None,
    hive_database: str | None = None,
    *,
    max_records_per_batch: int | None = None,
    minimum_interval_seconds: int | None = None,
    run_per: str | None = None,
) -> dg.SensorDefinition:
    """A sensor over `topic`; its cursor is {"partition": next offset} as JSON."""
    topic = topic or KafkaSettings().topic
    hive_database = hive_database or SparkSettings().hive_database
    sensor_settings = SensorSettings()
    max_records = max_records_per_batch or sensor_settings.max_records_per_batch
    interval = minimum_interval_seconds or sensor_settings.interval_seconds
    run_per = run_per or sensor_settings.run_per
    if run_per not in ("partition", "tick"):
        raise ValueError(f"run_per must be 'partition' or 'tick', not {run_per!r}")

    @dg.sensor(
        name=f"kafka_{topic.replace('.', '_')}_sensor",
        job=microbatch_job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Watches the end offsets of Kafka topic {topic!r} and launches one "
        f"micro-batch run per partition range of at most {max_records:,} records.",
    )
    def kafka_sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, mysql: MySQLResource
    ) -> dg.SensorResult:
        # Backpressure: while a run of this database is queued or running, new offsets wait
        # and the next run takes them all (up to the batch limit). Launching a run per tick
        # regardless would queue runs faster than they finish, and latency would grow without
        # bound; the cursor only moves when runs are requested, so nothing is skipped.
        busy = run_in_flight(context.instance, hive_database)
        if busy is not None:
            return dg.SensorResult(skip_reason=(
                f"micro-batch run {busy.run_id[:8]} of Hive database {hive_database!r} is "
                f"{busy.status.value.lower()}; new offsets go into the next run"
            ))
        partitions = kafka.partition_offsets(topic)
        if context.cursor:
            next_offsets = {int(p): o for p, o in json.loads(context.cursor).items()}
        else:
            # First evaluation: continue from what is already committed to Hive, if anything.
            ledger = BatchLedger(mysql.connect, hive_database)
            ledger.ensure_table()
            next_offsets = ledger.frontiers(topic)
        ranges = plan_ranges(topic, next_offsets, partitions, max_records)
        for offset_range in ranges:
            next_offsets[offset_range.partition] = offset_range.end
        lag = {p.partition: p.high - next_offsets.get(p.partition, p.low) for p in partitions}
        observation = dg.AssetObservation(
            asset_key=topic_key(topic),
            metadata={
                "end_offsets": dg.MetadataValue.json({p.partition: p.high for p in partitions}),
                "messages_in_topic": sum(p.high - p.low for p in partitions),
                "scheduled_up_to": dg.MetadataValue.json(next_offsets),
                "unscheduled_lag": sum(lag.values()),
                "new_runs": len(ranges),
            },
        )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=run_key(group),
                    run_config=microbatch_run_config(group, hive_database),
                    tags={
                        MICROBATCH_TAG: hive_database,
                        "berka/kafka-partitions": ",".join(str(r.partition) for r in group),
                        "berka/records": str(sum(r.count for r in group)),
                    },
                )
                for group in group_runs(ranges, run_per)
            ],
            cursor=json.dumps({str(p): o for p, o in sorted(next_offsets.items())}),
            asset_events=[observation] if ranges or not context.cursor else [],
        )

    return kafka_sensor


kafka_trans_sensor = build_kafka_sensor()
