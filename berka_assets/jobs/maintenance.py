"""delta_maintenance_job: OPTIMIZE and VACUUM of a micro-batch database in a run of its own.

The Kafka sensor requests it every BERKA_DELTA_MAINTAIN_EVERY_BATCHES batches of its database,
beside the micro-batches rather than inside one: a maintenance took 33-44 s in the soak, and
inside a batch it delayed that batch's records and every record waiting behind it (one batch
at a time per database). Delta keeps both safe together: an append never conflicts with a
compaction, and the trend cube, rewritten by every batch, is only vacuumed, never compacted.
It can also be launched by hand from the UI's launchpad.

Every run compacts; VACUUM runs only when the last run that vacuumed is
BERKA_DELTA_VACUUM_EVERY_HOURS old (the run carries a tag saying it vacuumed), and only on
tables older than the retention (HiveTables.maintain).
"""

import time

import dagster as dg
from dagster_pyspark import PySparkResource

from berka_assets.assets.streaming import IN_FLIGHT, hive_key, require_spark_endpoint
from berka_core.config import get_settings
from berka_core.spark_jobs.hive_tables import HiveTables

MAINTENANCE_TAG = "berka/maintenance"
# The database's batch number when the maintenance was requested: the next one is due
# BERKA_DELTA_MAINTAIN_EVERY_BATCHES batches later.
AFTER_BATCH_TAG = "berka/maintained-after-batch"
# Set on a maintenance run once it has vacuumed: the next VACUUM is due so long after it.
VACUUMED_TAG = "berka/vacuumed"


class MaintenanceConfig(dg.Config):
    hive_database: str = get_settings().spark.hive_database


@dg.op(tags={"kind": "spark"}, description="Compact (OPTIMIZE) the appended Delta tables and "
       "delete the files no version within the retention reads (VACUUM, at most every "
       "BERKA_DELTA_VACUUM_EVERY_HOURS).")
def maintain_delta_tables(context: dg.OpExecutionContext, config: MaintenanceConfig,
                          pyspark: PySparkResource) -> None:
    require_spark_endpoint()
    spark = pyspark.spark_session
    settings = get_settings().spark
    tables = HiveTables(config.hive_database, settings.delta_retention_hours)
    vacuum = vacuum_due(context.instance, config.hive_database, settings.vacuum_every_hours)
    started = time.monotonic()
    done = tables.maintain(spark, vacuum=vacuum, compact_below_mb=settings.compact_below_mb)
    seconds = time.monotonic() - started
    if done.vacuumed:
        context.instance.add_run_tags(context.run_id, {VACUUMED_TAG: "true"})
    files = tables.file_count(spark, tables.enriched)
    context.log.info(f"{config.hive_database}: {done.describe()} in {seconds:.1f} s "
                     f"(VACUUM {'due' if vacuum else 'not due'}); enriched_transactions now "
                     f"has {files} data files")
    context.log_event(dg.AssetObservation(asset_key=hive_key("enriched_transactions"), metadata={
        "hive_database": config.hive_database,
        "files_compacted": sum(done.compacted.values()),
        "tables_vacuumed": len(done.vacuumed),
        "data_files": files,
        "maintenance_seconds": round(seconds, 1),
    }))


def vacuum_due(instance: dg.DagsterInstance, hive_database: str, every_hours: float) -> bool:
    """True unless a maintenance run of the database vacuumed less than `every_hours` ago."""
    if every_hours <= 0:
        return True
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={MAINTENANCE_TAG: hive_database, VACUUMED_TAG: "true"}),
        limit=1)
    if not records:
        return True
    last = records[0]
    vacuumed_at = last.end_time or last.create_timestamp.timestamp()
    return time.time() - vacuumed_at >= every_hours * 3600


@dg.job(
    description="OPTIMIZE and VACUUM the Delta tables of one micro-batch database (requested "
    "by the Kafka sensor every BERKA_DELTA_MAINTAIN_EVERY_BATCHES batches).",
    executor_def=dg.in_process_executor,
    # A worker that died stays STARTED without a bound, and no maintenance would follow it.
    tags={MAINTENANCE_TAG: "hive",
          "dagster/max_runtime": str(get_settings().sensor.microbatch_max_runtime_s)},
)
def delta_maintenance_job() -> None:
    maintain_delta_tables()


def maintenance_request(instance: dg.DagsterInstance, hive_database: str, batch_seq: int,
                        every: int) -> dg.RunRequest | None:
    """A maintenance run when `every` batches were planned since the last one requested (and
    none is queued or running), else None. The run key makes a repeated tick harmless."""
    if every <= 0 or batch_seq < every:
        return None
    runs = instance.get_runs(filters=dg.RunsFilter(tags={MAINTENANCE_TAG: hive_database}),
                             limit=1)
    last = runs[0] if runs else None
    if last is not None and last.status in IN_FLIGHT:
        return None
    after = int(last.tags.get(AFTER_BATCH_TAG, 0)) if last is not None else 0
    if after > batch_seq:  # the database's ledger was reset: its batches count from 1 again
        after = 0
    if batch_seq - after < every:
        return None
    return dg.RunRequest(
        job_name=delta_maintenance_job.name,
        run_key=f"maintain-{hive_database}-{batch_seq}",
        run_config={"ops": {"maintain_delta_tables": {"config": {
            "hive_database": hive_database}}}},
        tags={MAINTENANCE_TAG: hive_database, AFTER_BATCH_TAG: str(batch_seq)},
    )
