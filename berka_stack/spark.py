"""Spark from the pip pyspark: one configuration, a Spark Connect server, a Thrift Server.

- `spark-defaults.conf` in var/spark-conf serves every Spark process alike (pyspark, spark-submit,
  the Connect server, the Thrift Server): the Hive metastore in MariaDB, the Kafka connector and
  JDBC driver jars, the warehouse folder.
- The Spark Connect server is the long-running Spark that Dagster runs talk to: a session costs
  ~1 s instead of the 7-12 s of a new JVM (measured figures in the README).
- The Thrift Server speaks HiveServer2 for PyHive and beeline.

Both servers use the same metastore; the Connect server starts first and creates the metastore
schema alone, because two processes creating it at once deadlock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from berka_core.config import MySQLSettings, Settings, SparkSettings, get_settings, secret, var_dir
from berka_stack import prereqs, process
from berka_stack.service import Service

METASTORE_MODEL_CLASSES = [
    f"org.apache.hadoop.hive.metastore.model.{name}"
    for name in (
        "MDatabase MFieldSchema MType MTable MConstraint MSerDeInfo MOrder MColumnDescriptor "
        "MStringList MStorageDescriptor MPartition MIndex MRole MRoleMap MGlobalPrivilege "
        "MDBPrivilege MTablePrivilege MPartitionPrivilege MTableColumnPrivilege "
        "MPartitionColumnPrivilege MPartitionEvent MMasterKey MDelegationToken "
        "MTableColumnStatistics MPartitionColumnStatistics MVersionTable MResourceUri MFunction "
        "MNotificationLog MNotificationNextId"
    ).split()
]

# The start of every log4j2.properties of the Spark jars (here, and the image's Hive metastore):
# warnings and up on stderr; what follows it raises chosen loggers to info.
CONSOLE_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""

SPARK_LOG4J2 = CONSOLE_LOG4J2 + """\
logger.connect.name = org.apache.spark.sql.connect
logger.connect.level = info
logger.thrift.name = org.apache.spark.sql.hive.thriftserver
logger.thrift.level = info
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = error
logger.hive.name = org.apache.hadoop.hive
logger.hive.level = error
"""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_conf_dir() -> Path:
    return var_dir() / "spark-conf"


def spark_defaults(settings: Settings | None = None) -> dict[str, str]:
    """The configuration every Spark process of the pipeline shares."""
    settings = settings or get_settings()
    mysql: MySQLSettings = settings.mysql
    spark: SparkSettings = settings.spark
    extra_jars = prereqs.jars("spark")
    extra_classpath = str(prereqs.jar_dir("spark") / "*")
    warehouse = (
        spark.warehouse_dir if "://" in spark.warehouse_dir
        else Path(spark.warehouse_dir).resolve().as_uri()
    )
    common = {
        "spark.master": spark.master,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": warehouse,
        "spark.hadoop.hive.metastore.warehouse.dir": warehouse,
        # DataNucleus finds JDBC drivers through DriverManager: spark.jars alone is not enough.
        "spark.driver.extraClassPath": extra_classpath,
        "spark.executor.extraClassPath": extra_classpath,
        "spark.jars": ",".join(str(jar) for jar in extra_jars),
        # The pipeline's tables are Delta tables in the Hive metastore (spark_jobs/hive_tables).
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Rebuilding a table's log snapshot takes 50 tasks by default: on 2 cores that made a
        # commit of a tiny table cost seconds (bench/RESULTS.md).
        "spark.databricks.delta.snapshotPartitions": str(spark.shuffle_partitions),
        # VACUUM lists a table's files with this many tasks (default 10,000): 30-48 s for a
        # tiny table on 2 cores, 2.5 s with 4 (bench/RESULTS.md).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(spark.shuffle_partitions),
        # Small batches on 2 cores: 200 shuffle partitions cost more than they give.
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # Several Spark processes write the same tables: a long-lived reader (Thrift Server,
        # Connect server) must not keep serving a file listing another process replaced.
        "spark.sql.filesourceTableRelationCacheSize": "0",
        # Long-lived servers: Kafka's fetched-data pool keeps each batch read's last poll
        # (up to 10,000 records per task) for 5 minutes by default, for a next read that only
        # a stream continues. The Connect server's heap filled with half a million of them and
        # G1 ran a concurrent cycle per second. A stream's next trigger comes within seconds.
        "spark.kafka.consumer.fetchedData.cache.timeout": "30s",
        "spark.kafka.consumer.fetchedData.cache.evictorThreadRunInterval": "15s",
        # The UI's history of every job, stage, task and SQL statement: the defaults (1,000
        # SQL executions, 100,000 tasks) grew the live heap of a server up for an hour.
        "spark.sql.ui.retainedExecutions": "100",
        "spark.ui.retainedJobs": "200",
        "spark.ui.retainedStages": "200",
        "spark.ui.retainedTasks": "20000",
    }
    if spark.metastore_uris:
        return {**common, "spark.hadoop.hive.metastore.uris": spark.metastore_uris}
    return {
        **common,
        "spark.hadoop.javax.jdo.option.ConnectionURL": mysql.metastore_jdbc_url(),
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.mariadb.jdbc.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": mysql.metastore_user,
        "spark.hadoop.javax.jdo.option.ConnectionPassword": secret(mysql.metastore_password_env),
        # No pool: the metastore's transaction handler shares this setting, and its DBCP pool
        # lends connections a MariaDB restart closed (the next DROP fails with "socket was
        # closed by server"); HikariCP instead blocks each call 30 s x 10 retries while MariaDB
        # is down. A fresh local connection per metastore call costs about a millisecond.
        "spark.hadoop.datanucleus.connectionPoolingType": "None",
        # Hive retries a failed metastore call inside a retried call (attempts squared): with
        # its defaults (10 x 2 s) a stopped MariaDB holds a query for over three minutes. 3 x 2 s
        # rides through a MariaDB restart and fails a run in under 20 s when it stays down.
        "spark.hadoop.hive.hmshandler.retry.attempts": "3",
        "spark.hadoop.hive.hmshandler.retry.interval": "2000ms",
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        # Create every metastore table at start: lazy creation deadlocks on the first CREATE TABLE.
        "spark.hadoop.datanucleus.autoStartMechanism": "Classes",
        "spark.hadoop.datanucleus.autoStartClassNames": ",".join(METASTORE_MODEL_CLASSES),
    }


def write_spark_conf(settings: Settings | None = None) -> Path:
    """Write var/spark-conf (0600: it holds the metastore password) and return the folder."""
    conf_dir = spark_conf_dir()
    conf_dir.mkdir(parents=True, exist_ok=True)
    defaults = conf_dir / "spark-defaults.conf"
    defaults.touch(mode=0o600)
    defaults.chmod(0o600)
    defaults.write_text(
        "# Written by berka-stack from the environment; edit berka_core/config.py instead.\n"
        + "".join(f"{key} {value}\n" for key, value in spark_defaults(settings).items())
    )
    (conf_dir / "log4j2.properties").write_text(SPARK_LOG4J2)
    return conf_dir


def spark_env() -> dict[str, str]:
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(spark_conf_dir()),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", _venv_python()),
    }


def _venv_python() -> str:
    import sys

    return sys.executable


def spark_submit(*args: str) -> list[str]:
    return [str(spark_home() / "bin" / "spark-submit"), *args]


def server_driver_memory(memory: str) -> list[str]:
    """spark-submit's driver memory for a long-lived server: the heap committed and touched at
    start (-Xms as -Xmx, as Kafka's and Elasticsearch's guides advise), so the process's
    resident memory is what it was given from its first minute on; a heap that grows into its
    limit over a quarter of an hour is otherwise hard to tell from a leak (the soak's rule)."""
    return ["--driver-memory", memory,
            "--driver-java-options", f"-Xms{memory} -XX:+AlwaysPreTouch"]


def connect_server_arguments(
    settings: Settings, bind_host: str, port: int, extra: Sequence[str] = ()
) -> list[str]:
    """spark-submit's arguments for the Connect server (here and in the Docker image).

    The driver is spark_connect_main.py, not Spark's SparkConnectServer: it shares generated
    code between sessions (see there), so the pipeline's functions are on its class path.
    """
    return [
        "--name", "berka-spark-connect",
        *server_driver_memory(settings.spark.connect_memory),
        "--conf", f"spark.connect.grpc.binding.address={bind_host}",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.port=4040",
        # spark.jars from spark-defaults.conf, and this server's copy of the functions' jar.
        "--conf", "spark.jars=" + ",".join(
            str(jar) for jar in [*prereqs.jars("spark"), server_udf_jar()]),
        *extra,
        str(Path(__file__).with_name("spark_connect_main.py")),
    ]  # fmt: skip


def server_udf_jar() -> Path:
    """A copy of the jvm/udf jar named by its content, for a server's class path, in the
    writable spark-conf folder: a rebuild then writes a new file instead of changing the one a
    running server reads its classes from. Older copies go."""
    jar = prereqs.ensure_udf_jar()
    copy = spark_conf_dir() / f"{jar.stem}-{hashlib.sha256(jar.read_bytes()).hexdigest()[:16]}.jar"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        temporary = copy.with_suffix(".tmp")
        shutil.copyfile(jar, temporary)
        temporary.replace(copy)
    for old in copy.parent.glob(f"{jar.stem}-*.jar"):
        if old != copy:
            old.unlink(missing_ok=True)  # a server still running keeps reading its open file
    return copy


class _SparkSubmitServer(Service):
    """A long-running Spark server under spark-submit, reading the shared spark-defaults.conf."""

    settings: Settings

    @abstractmethod
    def _submit_arguments(self) -> list[str]:
        """spark-submit's arguments; asked for once spark-defaults.conf is written."""

    def _launch(self) -> int:
        prereqs.check_java()
        write_spark_conf(self.settings)
        return process.start_daemon(
            self.name, spark_submit(*self._submit_arguments()), env=spark_env()
        )


class SparkConnectServer(_SparkSubmitServer):
    name = "spark-connect"
    start_timeout = 120.0

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        remote = self.settings.spark.remote.removeprefix("sc://").split("/")[0]
        self.host, port = remote.split(":") if ":" in remote else (remote, "15002")
        self.port = int(port)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _submit_arguments(self) -> list[str]:
        return connect_server_arguments(self.settings, self.host, self.port)

    def is_healthy(self) -> bool:
        return process.port_open(self.host, self.port)

    def version(self) -> str:
        import pyspark

        return f"Spark Connect {pyspark.__version__}"

    def after_start(self) -> None:
        # The first metastore call creates the metastore schema; doing it here, before the
        # Thrift Server starts, keeps a single process doing so.
        from pyspark.sql import SparkSession

        # A new session: a cached one in this process may belong to a server that was restarted.
        session = SparkSession.builder.remote(self.settings.spark.remote).create()
        try:
            session.sql(f"CREATE DATABASE IF NOT EXISTS `{self.settings.spark.hive_database}`")
        finally:
            session.stop()


class ThriftServer(_SparkSubmitServer):
    name = "thrift-server"
    start_timeout = 120.0

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    @property
    def address(self) -> str:
        return f"{self.settings.hive.host}:{self.settings.hive.port}"

    def _submit_arguments(self) -> list[str]:
        hive = self.settings.hive
        return [
            "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "--name", "berka-thrift-server",
            *server_driver_memory(self.settings.spark.thrift_server_memory),
            "--conf", "spark.ui.port=4041",
            "spark-internal",
            "--hiveconf", f"hive.server2.thrift.port={hive.port}",
            "--hiveconf", f"hive.server2.thrift.bind.host={hive.host}",
            "--hiveconf", f"hive.server2.authentication={hive.auth}",
        ]

    def is_healthy(self) -> bool:
        return process.port_open(self.settings.hive.host, self.settings.hive.port)

    def version(self) -> str:
        import pyspark

        return f"Spark Thrift Server {pyspark.__version__} (HiveServer2)"


class StreamingJob(Service):
    """spark_streaming/job.py under spark-submit: opt-in (`berka-stack up streaming-job`)."""

    name = "streaming-job"
    # Ready means its query started: after a crash that is after finishing the crashed batch
    # and loading the committed state. The soak measured more than 180 s for that on a loaded
    # 2-core machine, and a watcher that gives up kills the start and begins it again, forever.
    start_timeout = 600.0

    def __init__(self, settings: Settings | None = None, *extra_args: str) -> None:
        self.settings = settings or get_settings()
        self.extra_args = list(extra_args) or streaming_args_from_env()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{STREAMING_UI_PORT}"  # its Spark UI

    def check_port_free(self) -> None:
        """Spark moves its UI to the next free port by itself."""

    def _launch(self) -> int:
        prereqs.check_java()
        write_spark_conf(self.settings)
        from berka_core.config import REPO_ROOT

        log = self.log_path()
        self._log_offset = log.stat().st_size if log.exists() else 0

        return process.start_daemon(
            self.name,
            streaming_job_submit(self.extra_args, settings=self.settings),
            env={**spark_env(), "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
        )

    def stop(self) -> bool:
        """Graceful: SIGTERM the Python driver first, so it stops the query between batches;
        a SIGTERM to the JVM would stop Spark under the running batch."""
        pid = self.pid()
        if pid is None:
            return False
        for child in process.children(pid):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
        process.wait_for_exit(pid, timeout=90)
        process.stop_daemon(self.name)  # whatever is left of the group, and the pid file
        return True

    def is_healthy(self) -> bool:
        """Alive, and its query started (since this launch, when we launched it)."""
        if self.pid() is None:
            return False
        with self.log_path().open("rb") as handle:
            handle.seek(getattr(self, "_log_offset", 0))
            return b"streaming query started" in handle.read()

    def version(self) -> str:
        import pyspark

        return f"Structured Streaming {pyspark.__version__}"


STREAMING_UI_PORT = 4042


def streaming_job_submit(job_args: list[str], spark_args: tuple[str, ...] = (),
                         settings: Settings | None = None) -> list[str]:
    """spark-submit of spark_streaming/job.py: for `berka-stack up streaming-job` and the
    image's streaming-job role (run with PYTHONPATH at the repository root)."""
    from berka_core.config import REPO_ROOT

    return spark_submit(
        "--name", "berka-streaming",
        *server_driver_memory((settings or get_settings()).spark.streaming_memory),
        "--conf", f"spark.ui.port={STREAMING_UI_PORT}",
        *spark_args,
        str(REPO_ROOT / "spark_streaming" / "job.py"),
        *job_args,
    )


def streaming_args_from_env() -> list[str]:
    """BERKA_STREAMING_ARGS, e.g. "--trigger-seconds 1 --max-offsets-per-trigger 50000"."""
    import shlex

    return shlex.split(os.environ.get("BERKA_STREAMING_ARGS", ""))
