"""The Kafka sensor: new offsets on the topic become bounded, deterministic micro-batch runs."""

import time

import dagster as dg

from berka_assets.assets.streaming import (
    IN_FLIGHT,
    MICROBATCH_TAG,
    microbatch_job,
    microbatch_run_config,
    topic_key,
)
from berka_assets.jobs.maintenance import delta_maintenance_job, maintenance_request
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.resources.spark import connect_endpoint_reachable
from berka_core.clients.kafka import PartitionOffsets
from berka_core.config import get_settings
from berka_core.offset_planning import (
    Reconciled,
    SensorCursor,
    group_runs,
    plan_ranges,
    reconcile,
    run_key,
)
from berka_core.spark_jobs.kafka_source import OffsetRange
from berka_core.spark_jobs.ledger import BatchLedger
from berka_core.topic_incarnation import follow_topic


def run_in_flight(instance: dg.DagsterInstance, hive_database: str) -> dg.DagsterRun | None:
    """A micro-batch run of this Hive database that is queued or running, or that failed and
    that the daemon is about to retry (run_retries in dagster.yaml), if any."""
    tags = {MICROBATCH_TAG: hive_database}
    runs = instance.get_runs(filters=dg.RunsFilter(tags=tags, statuses=IN_FLIGHT), limit=1)
    if runs:
        return runs[0]
    failed = instance.get_runs(
        filters=dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.FAILURE]), limit=5)
    return next((run for run in failed if run.is_complete_and_waiting_to_retry), None)


def build_kafka_sensor(
    topic: str | None = None,
    hive_database: str | None = None,
    *,
    max_records_per_batch: int | None = None,
    minimum_interval_seconds: int | None = None,
    run_per: str | None = None,
) -> dg.SensorDefinition:
    """A sensor over `topic`; its cursor is {"partition": next offset} as JSON."""
    topic = topic or get_settings().kafka.topic
    hive_database = hive_database or get_settings().spark.hive_database
    sensor_settings = get_settings().sensor
    max_records = max_records_per_batch or sensor_settings.max_records_per_batch
    interval = minimum_interval_seconds or sensor_settings.interval_seconds
    run_per = run_per or sensor_settings.run_per
    maintain_every = get_settings().spark.maintain_every_batches
    if run_per not in ("partition", "tick"):
        raise ValueError(f"run_per must be 'partition' or 'tick', not {run_per!r}")

    @dg.sensor(
        name=f"kafka_{topic.replace('.', '_')}_sensor",
        jobs=[microbatch_job, delta_maintenance_job],
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Watches the end offsets of Kafka topic {topic!r} and launches "
        f"micro-batch runs (one per {run_per}) of at most {max_records:,} records per partition, "
        f"and a Delta maintenance run every {maintain_every} batches.",
    )
    def kafka_sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, mysql: MySQLResource
    ) -> dg.SensorResult:
        busy = _busy(context.instance, hive_database)
        if busy is not None:
            return busy
        partitions = kafka.partition_offsets(topic)
        ledger = BatchLedger(mysql.connect, hive_database)
        ledger.ensure_table()
        cursor = SensorCursor.parse(context.cursor)
        if follow_topic(kafka, ledger, topic, context.log.warning):
            cursor = None  # it counted offsets of the earlier topic
        # No run in flight: everything scheduled has committed or failed, so the ledger's
        # frontier is where to continue; the cursor tells which of the two happened.
        now = time.time()
        state = reconcile(cursor, ledger.frontiers(topic), partitions, now=now,
                          interval=interval)
        waiting = _replan_waiting(context, state, cursor, hive_database)
        if waiting is not None:
            return waiting
        replans = _count_replans(context, state, cursor)
        next_offsets = dict(state.next_offsets)
        ranges = plan_ranges(topic, next_offsets, partitions, max_records)
        for offset_range in ranges:
            next_offsets[offset_range.partition] = offset_range.end
        new_cursor = SensorCursor(next_offsets, replans, now if state.replan else 0.0).dump()
        if not ranges and ledger.invisible_batches():
            context.log.warning("committed batches are not in the trends yet (a run stopped "
                                "after its commit); requesting a trends-only run")
            return dg.SensorResult(
                run_requests=[_trends_only_run(topic, hive_database, next_offsets,
                                               f"{replans}-{int(now)}")],
                cursor=new_cursor)
        observation = _observation(topic, partitions, state.next_offsets, next_offsets,
                                   len(ranges))
        # Beside the batches, never inside one; also when no new offsets came (an idle topic's
        # last batches get compacted too).
        maintenance = maintenance_request(context.instance, hive_database, ledger.batch_seq(),
                                          maintain_every)
        if not ranges:
            return dg.SensorResult(
                run_requests=[maintenance] if maintenance else None,
                skip_reason=None if maintenance else (
                    f"no new offsets on {topic!r}; all committed up to {state.next_offsets}"),
                cursor=new_cursor,
                asset_events=[observation] if state.warnings or not context.cursor else [],
            )
        # Failed offsets planned again go in one run: after an outage, catching up should not
        # wait for a run start per partition.
        groups = group_runs(ranges, "tick" if state.replan else run_per)
        return dg.SensorResult(
            run_requests=[_run_request(group, hive_database, replans) for group in groups]
            + ([maintenance] if maintenance else []),
            cursor=new_cursor,
            asset_events=[observation],
        )

    return kafka_sensor


def _busy(instance: dg.DagsterInstance, hive_database: str) -> dg.SensorResult | None:
    """Backpressure: while a run of this database is queued or running, new offsets wait and
    the next run takes them all (up to the batch limit). Launching a run per tick regardless
    would queue runs faster than they finish, and latency would grow without bound. Nothing
    is skipped: planning starts at the ledger's frontier, not the cursor."""
    busy = run_in_flight(instance, hive_database)
    if busy is None:
        return None
    status = ("failed and is about to be retried" if busy.is_complete_and_waiting_to_retry
              else busy.status.value.lower())
    return dg.SensorResult(skip_reason=(
        f"micro-batch run {busy.run_id[:8]} of Hive database {hive_database!r} is "
        f"{status}; new offsets go into the next run"
    ))


def _replan_waiting(context: dg.SensorEvaluationContext, state: Reconciled,
                    cursor: SensorCursor | None, hive_database: str) -> dg.SensorResult | None:
    """A skip while a failed run's offsets must wait (Spark down, or the back-off), else None;
    logs the reconciliation's warnings."""
    if state.replan:
        # Kafka and MySQL answered this tick; a failed run's usual cause is Spark.
        remote = get_settings().spark.remote
        if remote and not connect_endpoint_reachable(remote, timeout=1.0):
            return dg.SensorResult(skip_reason=(
                f"offsets of a failed run wait for the Spark Connect server at {remote}, "
                "which does not answer; planned again as soon as it does (a down server "
                "adds no back-off: the back-off only spaces failures with it up)"))
    for warning in state.warnings:
        context.log.warning(warning)
    if state.wait_seconds > 0:
        return dg.SensorResult(skip_reason=(
            f"the last micro-batch of {hive_database!r} failed; planning its offsets again "
            f"in {state.wait_seconds:.0f} s (attempt {cursor.replans + 1 if cursor else 1})"))
    return None


def _count_replans(context: dg.SensorEvaluationContext, state: Reconciled,
                   cursor: SensorCursor | None) -> int:
    """How many times in a row failed offsets are planned again (0: none are)."""
    replans = (cursor.replans + 1) if (state.replan and cursor) else 0
    if state.replan:
        context.log.warning(
            f"offsets scheduled up to {cursor.scheduled if cursor else {}} were not "
            f"committed (a failed run); planning them again from {state.next_offsets} "
            f"(attempt {replans})")
    return replans


def _observation(topic: str, partitions: list[PartitionOffsets], committed: dict[int, int],
                 scheduled: dict[int, int], new_runs: int) -> dg.AssetObservation:
    """The topic's offsets, what is committed and scheduled, and the lag, for the UI."""
    lag = {p.partition: p.high - scheduled.get(p.partition, p.low) for p in partitions}
    return dg.AssetObservation(
        asset_key=topic_key(topic),
        metadata={
            "end_offsets": dg.MetadataValue.json({p.partition: p.high for p in partitions}),
            "messages_in_topic": sum(p.high - p.low for p in partitions),
            "committed_up_to": dg.MetadataValue.json(committed),
            "scheduled_up_to": dg.MetadataValue.json(scheduled),
            "unscheduled_lag": sum(lag.values()),
            "new_runs": new_runs,
        },
    )


def _run_request(group: list[OffsetRange], hive_database: str, replans: int) -> dg.RunRequest:
    return dg.RunRequest(
        job_name=microbatch_job.name,
        run_key=run_key(group, replans),
        run_config=microbatch_run_config(group, hive_database),
        tags={
            MICROBATCH_TAG: hive_database,
            "berka/kafka-partitions": ",".join(str(r.partition) for r in group),
            "berka/records": str(sum(r.count for r in group)),
        },
    )


def _trends_only_run(topic: str, hive_database: str, next_offsets: dict[int, int],
                     suffix: str) -> dg.RunRequest:
    """A run died between its ledger commit and its trends: with no new data no batch would
    ever show it, so a run with empty ranges rebuilds the trends."""
    at_frontier = [OffsetRange(topic, p, o, o) for p, o in sorted(next_offsets.items())]
    return dg.RunRequest(
        job_name=microbatch_job.name,
        run_key=f"{run_key(at_frontier)}-trends-{suffix}",
        run_config=microbatch_run_config(at_frontier, hive_database),
        tags={MICROBATCH_TAG: hive_database, "berka/records": "0"})


kafka_trans_sensor = build_kafka_sensor()
