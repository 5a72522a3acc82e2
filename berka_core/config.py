"""Every host, port, name and credential of the pipeline, read from the environment.

Local defaults describe the embedded stack that `berka-stack up` starts on 127.0.0.1. Pointing the
pipeline at real clusters means setting these variables, nothing else (see README, "Running on
real clusters").

Secrets are never defaults in code: each password comes from its environment variable, or else
from the git-ignored `.env` file at the repo root, which `berka-stack up` writes once with random
values (mode 0600). `dagster dev` and `dg` load that same `.env` into the code location.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Folder for all local state: data dirs, logs, pid files, downloaded jars, secrets."""
    return Path(os.environ.get("BERKA_VAR_DIR", REPO_ROOT / "var")).resolve()


def secrets_file() -> Path:
    return Path(os.environ.get("BERKA_SECRETS_FILE", REPO_ROOT / ".env")).resolve()


def _read_secrets_file() -> dict[str, str]:
    """The secrets file's values, parsed as dagster and docker read .env files (quotes,
    `export`, comments), by python-dotenv."""
    path = secrets_file()
    if not path.exists():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def load_secrets_into_environment() -> None:
    """Export the secrets file's values that the environment does not set (as dagster dev does).

    Lets `EnvVar("BERKA_MYSQL_PASSWORD")` resolve in processes not started by `dagster dev`.
    """
    for key, value in _read_secrets_file().items():
        os.environ.setdefault(key, value)


def secret(name: str) -> str:
    """A credential from the environment, else from the local stack's secrets file.

    Raises a clear error rather than falling back to a password written in code.
    """
    value = os.environ.get(name) or _read_secrets_file().get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set. Export it, or run `berka-stack up` once to create "
            f"local credentials in {secrets_file()}."
        )
    return value


class _Section(BaseSettings):
    """Settings read from BERKA_* variables when created. A bad value fails with pydantic's
    error, which names the variable and the value (BERKA_MYSQL_PORT='abc': not an integer).
    Fields can also be given by name: MySQLSettings(port=3417)."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore")


def _from(variable: str, default: Any = None, *, factory: Any = None) -> Any:
    """A field read from the environment variable `variable`."""
    if factory is not None:
        return Field(default_factory=factory, validation_alias=variable)
    return Field(default=default, validation_alias=variable)


class MySQLSettings(_Section):
    host: str = _from("BERKA_MYSQL_HOST", "127.0.0.1")
    port: int = _from("BERKA_MYSQL_PORT", 3307)
    database: str = _from("BERKA_MYSQL_DATABASE", "berka")
    user: str = _from("BERKA_MYSQL_USER", "berka_app")
    password_env: ClassVar[str] = "BERKA_MYSQL_PASSWORD"
    # The Hive metastore lives in the same server, in its own database and with its own user.
    metastore_database: str = _from("BERKA_METASTORE_DATABASE", "metastore")
    metastore_user: str = _from("BERKA_METASTORE_USER", "hive")
    metastore_password_env: ClassVar[str] = "BERKA_METASTORE_PASSWORD"

    def jdbc_url(self, database: str | None = None) -> str:
        """JDBC URL without credentials: user and password travel as connection properties."""
        db = database or self.database
        return (
            f"jdbc:mysql://{self.host}:{self.port}/{db}"
            "?useSSL=false&allowPublicKeyRetrieval=true&serverTimezone=UTC"
        )

    def metastore_jdbc_url(self) -> str:
        # The MariaDB driver with MySQL metadata: the combination DataNucleus handles correctly.
        return (
            f"jdbc:mariadb://{self.host}:{self.port}/{self.metastore_database}"
            "?useMysqlMetadata=true"
        )


class KafkaSettings(_Section):
    bootstrap_servers: str = _from("BERKA_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    topic: str = _from("BERKA_KAFKA_TOPIC", "trans")
    dlq_topic: str = _from("BERKA_KAFKA_DLQ_TOPIC", "trans.dlq")
    partitions: int = _from("BERKA_KAFKA_PARTITIONS", 3)
    # security.protocol etc. for real clusters; PLAINTEXT locally. The SASL password is a
    # secret: it is read through EnvVar("BERKA_KAFKA_SASL_PASSWORD") in the definitions.
    security_protocol: str = _from("BERKA_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    sasl_mechanism: str = _from("BERKA_KAFKA_SASL_MECHANISM", "")
    sasl_username: str = _from("BERKA_KAFKA_SASL_USERNAME", "")
    sasl_password_env: ClassVar[str] = "BERKA_KAFKA_SASL_PASSWORD"
    ssl_ca_location: str = _from("BERKA_KAFKA_SSL_CA_LOCATION", "")
    replication_factor: int = _from("BERKA_KAFKA_REPLICATION_FACTOR", 1)


class SparkSettings(_Section):
    # A long-running Spark Connect endpoint serves the short Dagster runs (see README, "Spark").
    remote: str = _from("BERKA_SPARK_REMOTE", "sc://127.0.0.1:15002")
    # Retries of a Spark Connect call whose server is gone, with back-off doubling up to 5 s:
    # 6 is about 15 s. The client's default (15, for at least 10 minutes) held a failing run
    # and its concurrency slot that long; Dagster's run retries and the sensor take over here.
    client_max_retries: int = _from("BERKA_SPARK_CLIENT_MAX_RETRIES", 6)
    master: str = _from("BERKA_SPARK_MASTER", "local[2]")
    warehouse_dir: str = _from("BERKA_SPARK_WAREHOUSE",
                               factory=lambda: str(var_dir() / "warehouse"))
    hive_database: str = _from("BERKA_HIVE_DATABASE", "berka")
    # Every this many batches of a database the Kafka sensor requests a maintenance run that
    # compacts its Delta tables (OPTIMIZE) and removes files no version within the retention
    # reads any more (VACUUM): berka_assets/jobs/maintenance.py. 0: never.
    maintain_every_batches: int = _from("BERKA_DELTA_MAINTAIN_EVERY_BATCHES", 32)
    # VACUUM at most this often (maintenance runs OPTIMIZE each time): files only become
    # deletable BERKA_DELTA_RETENTION_HOURS after they are replaced, so vacuuming at every
    # compaction mostly lists files it must keep. 0: at every maintenance.
    vacuum_every_hours: float = _from("BERKA_DELTA_VACUUM_EVERY_HOURS", 6.0)
    # OPTIMIZE rewrites only data files smaller than this: below one compaction's output, so
    # the next one does not rewrite it. Delta's own threshold (1 GB), and 16, rewrote the
    # whole table at every maintenance, a cost that grew with it (bench/RESULTS.md, 19-20).
    compact_below_mb: int = _from("BERKA_DELTA_COMPACT_BELOW_MB", 4)
    # How far back time travel reaches, and how long a reader's snapshot stays readable:
    # Delta's log and deleted-file retention of the pipeline's tables.
    delta_retention_hours: int = _from("BERKA_DELTA_RETENTION_HOURS", 24)
    # The streaming job writes its own database, so it never double-counts with Dagster's path.
    stream_hive_database: str = _from("BERKA_STREAM_HIVE_DATABASE", "berka_stream")
    # Empty: the metastore lives in MySQL (embedded client). Set to thrift://host:9083 to use a
    # remote Hive metastore service instead; then no metastore password is needed.
    metastore_uris: str = _from("BERKA_HIVE_METASTORE_URIS", "")
    shuffle_partitions: int = _from("BERKA_SPARK_SHUFFLE_PARTITIONS", 4)
    connect_memory: str = _from("BERKA_SPARK_CONNECT_MEMORY", "2g")
    thrift_server_memory: str = _from("BERKA_THRIFT_SERVER_MEMORY", "1g")
    streaming_memory: str = _from("BERKA_STREAMING_MEMORY", "1g")


class HiveServerSettings(_Section):
    host: str = _from("BERKA_HIVE_HOST", "127.0.0.1")
    port: int = _from("BERKA_HIVE_PORT", 10000)
    username: str = _from("BERKA_HIVE_USER", "berka")
    auth: str = _from("BERKA_HIVE_AUTH", "NONE")


class SensorSettings(_Section):
    interval_seconds: int = _from("BERKA_SENSOR_INTERVAL_S", 2)
    max_records_per_batch: int = _from("BERKA_SENSOR_MAX_RECORDS", 200000)
    # "partition": one run per partition range (run key <topic>-<partition>-<start>-<end>);
    # "tick": one run per tick over every partition's range: fewer runs, lower latency.
    run_per: str = _from("BERKA_SENSOR_RUN_PER", "tick")
    freshness_minutes: float = _from("BERKA_FRESHNESS_MINUTES", 10)
    # Dagster's run monitoring fails a micro-batch run that has not finished after this long,
    # and run retries then run it again. It is how a run whose process died (kill -9, out of
    # memory) is noticed: the default run launcher cannot check its workers' health. Long
    # enough for a legitimate batch on a cold or just-restarted server that waits out an
    # outage (bench/RESULTS.md, soak): a shorter bound interrupts such batches.
    microbatch_max_runtime_s: int = _from("BERKA_MICROBATCH_MAX_RUNTIME_S", 600)
    # Declarative automation (berka_assets/automation.py): cron schedules of the streaming
    # checks and of the trends report; each runs once per tick, and only after new batches.
    checks_cron: str = _from("BERKA_CHECKS_CRON", "*/15 * * * *")
    report_cron: str = _from("BERKA_REPORT_CRON", "0 * * * *")


class S3Settings(_Section):
    # "folder" reads Settings.data_dir; "s3" reads s3://bucket/prefix.
    source_kind: str = _from("BERKA_SOURCE_KIND", "folder")
    endpoint_url: str = _from("BERKA_S3_ENDPOINT_URL", "")
    bucket: str = _from("BERKA_S3_BUCKET", "berka")
    prefix: str = _from("BERKA_S3_PREFIX", "raw/")
    region: str = _from("AWS_REGION", "us-east-1")


class _SourceSettings(_Section):
    # The embedded default source: the real Berka sample shipped in the repo.
    data_dir: str = _from("BERKA_DATA_DIR", factory=lambda: str(REPO_ROOT / "data" / "berka"))


class Settings(BaseModel):
    """All sections, each read from the environment when the Settings is created."""

    model_config = ConfigDict(frozen=True)


    mysql: MySQLSettings = Field(default_factory=MySQLSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    hive: HiveServerSettings = Field(default_factory=HiveServerSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    sensor: SensorSettings = Field(default_factory=SensorSettings)
    data_dir: str = Field(default_factory=lambda: _SourceSettings().data_dir)


_built: tuple[tuple[tuple[str, str], ...], Settings] | None = None


def get_settings() -> Settings:
    """This process's settings, built once at first use (an entry point's start) and shared by
    everything the process runs. Built again only when the environment has changed since:
    tests change it; a running service does not."""
    global _built
    environment = tuple(sorted(os.environ.items()))
    built = _built
    if built is None or built[0] != environment:
        built = _built = (environment, Settings())
    return built[1]


def variable_defaults() -> dict[str, str]:
    """Every variable the settings read, with the default it has here and now (as text)."""
    defaults = {}
    for section in (MySQLSettings, KafkaSettings, SparkSettings, HiveServerSettings,
                    SensorSettings, S3Settings, _SourceSettings):
        for info in section.model_fields.values():
            if isinstance(info.validation_alias, str):
                defaults[info.validation_alias] = str(info.get_default(call_default_factory=True))
    return defaults
