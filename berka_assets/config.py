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
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Folder for all local state: data dirs, logs, pid files, downloaded jars, secrets."""
    return Path(os.environ.get("BERKA_VAR_DIR", REPO_ROOT / "var")).resolve()


def secrets_file() -> Path:
    return Path(os.environ.get("BERKA_SECRETS_FILE", REPO_ROOT / ".env")).resolve()


def _read_secrets_file() -> dict[str, str]:
    path = secrets_file()
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def load_secrets_into_environment() -> None:
    """Export the secrets file's values that the environment does not set (as dagster dev does).

    Lets `EnvVar("BERKA_MYSQL_PASSWORD")` resolve in processes not started by `dagster dev`.
    """
    for key, value in _read_secrets_file().items():
        os.environ.setdefault(key, value)


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


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


@dataclass(frozen=True)
class MySQLSettings:
    host: str = field(default_factory=lambda: env("BERKA_MYSQL_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(env("BERKA_MYSQL_PORT", "3307")))
    database: str = field(default_factory=lambda: env("BERKA_MYSQL_DATABASE", "berka"))
    user: str = field(default_factory=lambda: env("BERKA_MYSQL_USER", "berka_app"))
    password_env: str = "BERKA_MYSQL_PASSWORD"
    # The Hive metastore lives in the same server, in its own database and with its own user.
    metastore_database: str = field(
        default_factory=lambda: env("BERKA_METASTORE_DATABASE", "metastore")
    )
    metastore_user: str = field(default_factory=lambda: env("BERKA_METASTORE_USER", "hive"))
    metastore_password_env: str = "BERKA_METASTORE_PASSWORD"

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


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = field(
        default_factory=lambda: env("BERKA_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    topic: str = field(default_factory=lambda: env("BERKA_KAFKA_TOPIC", "trans"))
    dlq_topic: str = field(default_factory=lambda: env("BERKA_KAFKA_DLQ_TOPIC", "trans.dlq"))
    partitions: int = field(default_factory=lambda: int(env("BERKA_KAFKA_PARTITIONS", "3")))
    # security.protocol etc. for real clusters; PLAINTEXT locally. The SASL password is a
    # secret: it is read through EnvVar("BERKA_KAFKA_SASL_PASSWORD") in the definitions.
    security_protocol: str = field(
        default_factory=lambda: env("BERKA_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    )
    sasl_mechanism: str = field(default_factory=lambda: env("BERKA_KAFKA_SASL_MECHANISM", ""))
    sasl_username: str = field(default_factory=lambda: env("BERKA_KAFKA_SASL_USERNAME", ""))
    sasl_password_env: str = "BERKA_KAFKA_SASL_PASSWORD"
    ssl_ca_location: str = field(default_factory=lambda: env("BERKA_KAFKA_SSL_CA_LOCATION", ""))
    replication_factor: int = field(
        default_factory=lambda: int(env("BERKA_KAFKA_REPLICATION_FACTOR", "1"))
    )


@dataclass(frozen=True)
class SparkSettings:
    # A long-running Spark Connect endpoint serves the short Dagster runs (see README, "Spark").
    remote: str = field(default_factory=lambda: env("BERKA_SPARK_REMOTE", "sc://127.0.0.1:15002"))
    # Retries of a Spark Connect call whose server is gone, with back-off doubling up to 5 s:
    # 6 is about 15 s. The client's default (15, for at least 10 minutes) held a failing run
    # and its concurrency slot that long; Dagster's run retries and the sensor take over here.
    client_max_retries: int = field(
        default_factory=lambda: int(env("BERKA_SPARK_CLIENT_MAX_RETRIES", "6")))
    master: str = field(default_factory=lambda: env("BERKA_SPARK_MASTER", "local[2]"))
    warehouse_dir: str = field(
        default_factory=lambda: env("BERKA_SPARK_WAREHOUSE", str(var_dir() / "warehouse"))
    )
    hive_database: str = field(default_factory=lambda: env("BERKA_HIVE_DATABASE", "berka"))
    # Every this many batches a micro-batch compacts its Delta tables (OPTIMIZE) and removes
    # files no version within the retention reads any more (VACUUM): spark_jobs/hive_tables.py.
    maintain_every_batches: int = field(
        default_factory=lambda: int(env("BERKA_DELTA_MAINTAIN_EVERY_BATCHES", "32"))
    )
    # How far back time travel reaches, and how long a reader's snapshot stays readable:
    # Delta's log and deleted-file retention of the pipeline's tables.
    delta_retention_hours: int = field(
        default_factory=lambda: int(env("BERKA_DELTA_RETENTION_HOURS", "24"))
    )
    # The streaming job writes its own database, so it never double-counts with Dagster's path.
    stream_hive_database: str = field(
        default_factory=lambda: env("BERKA_STREAM_HIVE_DATABASE", "berka_stream")
    )
    # Empty: the metastore lives in MySQL (embedded client). Set to thrift://host:9083 to use a
    # remote Hive metastore service instead; then no metastore password is needed.
    metastore_uris: str = field(default_factory=lambda: env("BERKA_HIVE_METASTORE_URIS", ""))
    shuffle_partitions: int = field(
        default_factory=lambda: int(env("BERKA_SPARK_SHUFFLE_PARTITIONS", "4"))
    )
    connect_memory: str = field(default_factory=lambda: env("BERKA_SPARK_CONNECT_MEMORY", "2g"))
    thrift_server_memory: str = field(
        default_factory=lambda: env("BERKA_THRIFT_SERVER_MEMORY", "1g")
    )


@dataclass(frozen=True)
class HiveServerSettings:
    host: str = field(default_factory=lambda: env("BERKA_HIVE_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(env("BERKA_HIVE_PORT", "10000")))
    username: str = field(default_factory=lambda: env("BERKA_HIVE_USER", "berka"))
    auth: str = field(default_factory=lambda: env("BERKA_HIVE_AUTH", "NONE"))


@dataclass(frozen=True)
class SensorSettings:
    interval_seconds: int = field(default_factory=lambda: int(env("BERKA_SENSOR_INTERVAL_S", "2")))
    max_records_per_batch: int = field(
        default_factory=lambda: int(env("BERKA_SENSOR_MAX_RECORDS", "200000"))
    )
    # "partition": one run per partition range (run key <topic>-<partition>-<start>-<end>);
    # "tick": one run per tick over every partition's range: fewer runs, lower latency.
    run_per: str = field(default_factory=lambda: env("BERKA_SENSOR_RUN_PER", "tick"))
    freshness_minutes: float = field(
        default_factory=lambda: float(env("BERKA_FRESHNESS_MINUTES", "10"))
    )
    # Dagster's run monitoring fails a micro-batch run that has not finished after this long,
    # and run retries then run it again. It is how a run whose process died (kill -9, out of
    # memory) is noticed: the default run launcher cannot check its workers' health. Long
    # enough for a legitimate batch on a cold or just-restarted server that waits out an
    # outage (bench/RESULTS.md, soak): a shorter bound interrupts such batches.
    microbatch_max_runtime_s: int = field(
        default_factory=lambda: int(env("BERKA_MICROBATCH_MAX_RUNTIME_S", "600"))
    )
    # Declarative automation (berka_assets/automation.py): cron schedules of the streaming
    # checks and of the trends report; each runs once per tick, and only after new batches.
    checks_cron: str = field(default_factory=lambda: env("BERKA_CHECKS_CRON", "*/15 * * * *"))
    report_cron: str = field(default_factory=lambda: env("BERKA_REPORT_CRON", "0 * * * *"))


@dataclass(frozen=True)
class S3Settings:
    # "folder" reads Settings.data_dir; "s3" reads s3://bucket/prefix.
    source_kind: str = field(default_factory=lambda: env("BERKA_SOURCE_KIND", "folder"))
    endpoint_url: str = field(default_factory=lambda: env("BERKA_S3_ENDPOINT_URL", ""))
    bucket: str = field(default_factory=lambda: env("BERKA_S3_BUCKET", "berka"))
    prefix: str = field(default_factory=lambda: env("BERKA_S3_PREFIX", "raw/"))
    region: str = field(default_factory=lambda: env("AWS_REGION", "us-east-1"))


@dataclass(frozen=True)
class Settings:
    mysql: MySQLSettings = field(default_factory=MySQLSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    hive: HiveServerSettings = field(default_factory=HiveServerSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    sensor: SensorSettings = field(default_factory=SensorSettings)
    # The embedded default source: the real Berka sample shipped in the repo.
    data_dir: str = field(
        default_factory=lambda: env("BERKA_DATA_DIR", str(REPO_ROOT / "data" / "berka"))
    )


def load_settings() -> Settings:
    return Settings()
