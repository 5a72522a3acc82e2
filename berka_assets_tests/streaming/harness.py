"""A small harness around the real pipeline for the streaming tests.

Each Pipeline has its own Kafka topic, Hive database and (optionally) MySQL database, so tests
never see each other's data. Runs go through the real sensor and the real Dagster job.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from berka_assets.assets.reference import reference_tables
from berka_assets.assets.streaming import TREND_TABLES, microbatch, microbatch_job
from berka_assets.jobs.maintenance import delta_maintenance_job
from berka_assets.resources.berka_source import BerkaSourceResource
from berka_assets.resources.factory import build_resources
from berka_assets.resources.kafka import KafkaResource
from berka_assets.resources.mysql import MySQLResource
from berka_assets.sensors.kafka_offsets import build_kafka_sensor
from berka_core.config import Settings, secret
from berka_core.dataset.reader import read_table
from berka_core.messages import trans_message
from berka_core.spark_jobs.hive_tables import HiveTables
from berka_core.spark_jobs.jvm_functions import register_jvm_functions
from berka_core.spark_jobs.ledger import BatchLedger
from berka_stack.kafka import ensure_topics


def spark_session(settings: Settings) -> SparkSession:
    spark = SparkSession.builder.remote(settings.spark.remote).getOrCreate()
    register_jvm_functions(spark)
    return spark


def reset_spark_client() -> None:
    """Forget the cached Connect session (after the server was restarted)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.getActiveSession()
    if session is not None:
        try:
            session.stop()
        except Exception:  # noqa: BLE001 - the server it talked to may be gone
            pass


@dataclass
class Pipeline:
    settings: Settings
    data_dir: Path
    mysql_database: str = "berka"
    partitions: int = 3
    max_records: int = 20_000
    run_per: str = "partition"
    topic: str = field(default_factory=lambda: f"t_{uuid.uuid4().hex[:10]}")
    hive_database: str = field(default_factory=lambda: f"t_{uuid.uuid4().hex[:10]}")
    cursor: str | None = None
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)
    # How each executed batch was written (microbatch.WRITE_*), in order.
    write_paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mysql = MySQLResource(database=self.mysql_database,
                                   password=secret(self.settings.mysql.password_env))
        self.kafka = KafkaResource()
        resources = build_resources(self.settings)
        self.resources = {
            **resources,
            "mysql": self.mysql,
            "berka_source": BerkaSourceResource(folder=str(self.data_dir), s3=resources["s3"]),
        }
        self.sensor = build_kafka_sensor(self.topic, self.hive_database,
                                         max_records_per_batch=self.max_records,
                                         run_per=self.run_per)
        definitions = dg.Definitions(assets=[microbatch],
                                     jobs=[microbatch_job, delta_maintenance_job],
                                     resources=self.resources)
        self.jobs = {job.name: definitions.resolve_job_def(job.name)
                     for job in (microbatch_job, delta_maintenance_job)}
        self.job = self.jobs[microbatch_job.name]
        ensure_topics(self.settings.kafka.bootstrap_servers, {self.topic: self.partitions})

    # -- set-up ------------------------------------------------------------------------------
    def load_reference(self) -> None:
        if self.mysql_database != "berka":
            with MySQLResource(database="berka", password=self.mysql.password).connect(
                autocommit=True
            ) as connection, connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{self.mysql_database}`")
        result = dg.materialize([reference_tables], resources=self.resources,
                                instance=self.instance)
        assert result.success

    def produce_file(self, trans_file: Path, limit: int | None = None, skip: int = 0) -> int:
        """Send the file's transactions as the replay job would (same encoder, same key): its
        records `skip` up to `limit` (counted from the file's first record)."""
        producer = self.kafka.producer(**{"linger.ms": 20})
        sent = skip
        for index, record in enumerate(read_table(trans_file, "trans")):
            if index < skip:
                continue
            producer.produce(self.topic, key=trans_message.key(record["account_id"]),
                             value=encode(record))
            sent += 1
            if sent % 10_000 == 0:
                producer.poll(0)
            if limit is not None and sent >= limit:
                break
        assert producer.flush(60) == 0
        return sent - skip

    def produce_raw(self, values: list[bytes | None], key: bytes = b"poison") -> None:
        producer = self.kafka.producer(**{"message.max.bytes": 4 * 2**20})
        for value in values:
            producer.produce(self.topic, key=key, value=value)
        assert producer.flush(30) == 0

    # -- running -----------------------------------------------------------------------------
    def tick(self, cursor: str | None = ...) -> dg.SensorResult:  # type: ignore[assignment]
        """Evaluate the sensor (from the stored cursor unless one is given)."""
        with dg.build_sensor_context(
            instance=self.instance, resources=self.resources,
            cursor=self.cursor if cursor is ... else cursor,
        ) as context:
            result = self.sensor(context)
        return result

    def execute(self, run_request: dg.RunRequest, *, raise_on_error: bool = True):
        """Run the request's job (a micro-batch, or the sensor's Delta maintenance) in process."""
        job = self.jobs[run_request.job_name or microbatch_job.name]
        result = job.execute_in_process(
            run_config=run_request.run_config, instance=self.instance, tags=run_request.tags,
            raise_on_error=raise_on_error,
        )
        self.write_paths.extend(
            event.materialization.metadata["write_path"].value
            for event in result.get_asset_materialization_events()
            if event.asset_key.path[-1] == "enriched_transactions"
        )
        return result

    def drain(self) -> list[dg.RunRequest]:
        """Tick and run every requested range until the sensor asks for nothing more."""
        executed = []
        while True:
            result = self.tick()
            self.cursor = result.cursor
            if not result.run_requests:
                return executed
            for run_request in result.run_requests:
                assert self.execute(run_request).success
                executed.append(run_request)

    # -- reading -----------------------------------------------------------------------------
    def trends(self, spark: SparkSession) -> dict[str, list[tuple]]:
        tables = HiveTables(self.hive_database)
        order = {"monthly_trend": "year, month", "yearly_trend": "year",
                 "trans_by_age_gender": "age_band, gender"}
        return {
            table: [tuple(row) for row in spark.sql(
                f"SELECT * FROM {tables.trend(table)} ORDER BY {order[table]}").collect()]
            for table in TREND_TABLES
        }

    def counts(self, spark: SparkSession) -> tuple[int, int]:
        tables = HiveTables(self.hive_database)
        return (spark.table(tables.enriched).count(), spark.table(tables.quarantine).count())

    def ledger(self) -> BatchLedger:
        return BatchLedger(self.mysql.connect, self.hive_database)

    def drop(self, spark: SparkSession) -> None:
        spark.sql(f"DROP DATABASE IF EXISTS `{self.hive_database}` CASCADE")
        self.ledger().reset()


def encode(record: dict) -> bytes:
    return trans_message.encode(
        trans_id=record["trans_id"], account_id=record["account_id"], date=record["date"],
        type=record["type"], operation=record["operation"] or None, amount=record["amount"],
        balance=record["balance"], k_symbol=record["k_symbol"], bank=record["bank"],
        account=record["account"], sent_at_ms=int(time.time() * 1000),
    )


def as_plain(trends: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """Normalise Spark rows (Decimal, int) for comparison with the independent computation."""
    return {
        table: [tuple(Decimal(v) if isinstance(v, Decimal) else v for v in row) for row in rows]
        for table, rows in trends.items()
    }
