#!/usr/bin/env python3
"""Entrypoint of the berka-stream image: `berka-container ROLE [EXTRA ARGS...]`.

One image, one role per container. Every role reads the same BERKA_* variables as the local stack
(berka_core/config.py) and reuses its code: spark-defaults.conf comes from
berka_stack.spark.spark_defaults(), so a container runs Spark exactly as `berka-stack up`
does, except that servers bind 0.0.0.0 and the Spark processes use a standalone cluster and a
remote Hive metastore (the compose file passes `--conf spark.hadoop.hive.metastore.uris=...`).

Roles (extra arguments go to the underlying program):
  spark-master       Spark standalone master on the host:port of BERKA_SPARK_MASTER
  spark-worker       Spark standalone worker registered with BERKA_SPARK_MASTER
  hive-metastore     Hive metastore thrift server (Spark's own Hive 2.3.10 jars) on 9083,
                     its database in MySQL (BERKA_MYSQL_HOST/PORT, BERKA_METASTORE_*)
  spark-connect      Spark Connect server on the port of BERKA_SPARK_REMOTE
  thrift-server      Spark Thrift Server (HiveServer2) on BERKA_HIVE_PORT
  dagster-webserver  Dagster UI on 3000, code location from workspace.yaml
  dagster-daemon     Dagster daemon (sensors, run queue), same code location
  init               one-off, idempotent: Kafka topics, S3 bucket, Hive database
  health [KIND ...]  exit 0 when the role of this container is healthy (used by HEALTHCHECK)
Anything else is executed as a command (e.g. `berka-container bash`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from berka_core.config import get_settings

THRIFT_MAIN = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
MASTER_MAIN = "org.apache.spark.deploy.master.Master"
WORKER_MAIN = "org.apache.spark.deploy.worker.Worker"
METASTORE_MAIN = "org.apache.hadoop.hive.metastore.HiveMetaStore"
METASTORE_PORT = 9083
MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
DAGSTER_WEBSERVER_PORT = 3000
# Spark rewrites BoneCP (Hive 2.3's default, not shipped with Spark) to HikariCP in its embedded
# metastore client; a standalone metastore on the same jars needs the same setting.
METASTORE_POOLING = "HikariCP"

# Appended to berka_stack.spark.CONSOLE_LOG4J2 (imported where it is written, as everything of
# berka_stack here).
METASTORE_LOGGERS = """\
logger.metastore.name = org.apache.hadoop.hive.metastore.HiveMetaStore
logger.metastore.level = info
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = error
"""


# ---- configuration derived from berka_assets ---------------------------------------------------


def _settings():

    return get_settings()


def master_address(master_url: str) -> tuple[str, int]:
    """(host, port) of a `spark://host:port` master URL."""
    if not master_url.startswith("spark://"):
        raise SystemExit(
            f"BERKA_SPARK_MASTER must be a spark://host:port URL for this role, got {master_url!r}"
        )
    host, _, port = master_url.removeprefix("spark://").split(",")[0].partition(":")
    return host, int(port or 7077)


def metastore_properties(settings=None) -> dict[str, str]:
    """hive-site.xml of the standalone metastore: the `spark.hadoop.*` part of spark_defaults()."""
    from berka_stack.spark import spark_defaults

    prefix = "spark.hadoop."
    properties = {
        key.removeprefix(prefix): value
        for key, value in spark_defaults(settings or _settings()).items()
        if key.startswith(prefix)
    }
    url = properties["javax.jdo.option.ConnectionURL"]
    # MySQL 8.4 authenticates with caching_sha2_password: over a non-TLS connection the driver
    # must fetch the server's RSA key (the app's own MySQL URL sets the same option).
    if "allowPublicKeyRetrieval" not in url:
        url += ("&" if "?" in url else "?") + "allowPublicKeyRetrieval=true"
    properties["javax.jdo.option.ConnectionURL"] = url
    properties["datanucleus.connectionPoolingType"] = METASTORE_POOLING
    # This process IS the metastore: it must not look for another one.
    properties.pop("hive.metastore.uris", None)
    return properties


def hive_site_xml(properties: dict[str, str]) -> str:
    body = "".join(
        f"  <property>\n    <name>{escape(name)}</name>\n    <value>{escape(value)}</value>\n"
        "  </property>\n"
        for name, value in sorted(properties.items())
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


# ---- the command of each role ------------------------------------------------------------------


def spark_master_command(extra: list[str]) -> tuple[list[str], dict]:
    from berka_stack.spark import spark_home

    host, port = master_address(_settings().spark.master)
    command = [str(spark_home() / "bin" / "spark-class"), MASTER_MAIN,
               "--host", host, "--port", str(port), "--webui-port", str(MASTER_UI_PORT), *extra]
    return command, {"kind": "tcp", "host": host, "port": port}


def spark_worker_command(extra: list[str]) -> tuple[list[str], dict]:
    from berka_core.config import var_dir
    from berka_stack.spark import spark_home

    master_url = _settings().spark.master
    master_host, _ = master_address(master_url)
    host = socket.gethostname()
    command = [str(spark_home() / "bin" / "spark-class"), WORKER_MAIN,
               "--host", host, "--webui-port", str(WORKER_UI_PORT),
               "--work-dir", str(var_dir() / "spark-work"), *extra, master_url]
    health = {"kind": "spark-worker", "host": host,
              "master_ui": f"http://{master_host}:{MASTER_UI_PORT}/json/"}
    return command, health


def hive_metastore_command(extra: list[str]) -> tuple[list[str], dict]:
    from berka_core.config import var_dir
    from berka_stack import prereqs
    from berka_stack.spark import CONSOLE_LOG4J2, spark_home

    conf_dir = var_dir() / "hive-conf"
    _write_private(conf_dir / "hive-site.xml", hive_site_xml(metastore_properties()))
    (conf_dir / "log4j2.properties").write_text(CONSOLE_LOG4J2 + METASTORE_LOGGERS)
    classpath = ":".join(
        [str(conf_dir), str(spark_home() / "jars" / "*"), str(prereqs.jar_dir("spark") / "*")]
    )
    command = [prereqs.java_binary(), "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
               f"-Dlog4j.configurationFile={conf_dir / 'log4j2.properties'}",
               "-cp", classpath, METASTORE_MAIN, "-p", str(METASTORE_PORT), *extra]
    return command, {"kind": "tcp", "host": "127.0.0.1", "port": METASTORE_PORT}


def _driver_options() -> list[str]:
    # Executors on the workers connect back to the driver by this container's hostname.
    return ["--conf", f"spark.driver.host={socket.gethostname()}",
            "--conf", "spark.driver.bindAddress=0.0.0.0"]


def spark_connect_command(extra: list[str]) -> tuple[list[str], dict]:
    from berka_stack.spark import (
        SparkConnectServer,
        connect_server_arguments,
        spark_submit,
        write_spark_conf,
    )

    settings = _settings()
    write_spark_conf(settings)
    port = SparkConnectServer(settings).port
    command = spark_submit(
        *connect_server_arguments(settings, "0.0.0.0", port, [*_driver_options(), *extra])
    )
    return command, {"kind": "tcp", "host": "127.0.0.1", "port": port}


def thrift_server_command(extra: list[str]) -> tuple[list[str], dict]:
    from berka_stack.spark import server_driver_memory, spark_submit, write_spark_conf

    settings = _settings()
    write_spark_conf(settings)
    hive = settings.hive
    command = spark_submit(
        "--class", THRIFT_MAIN,
        "--name", "berka-thrift-server",
        *server_driver_memory(settings.spark.thrift_server_memory),
        "--conf", "spark.ui.port=4041",
        *_driver_options(),
        *extra,
        "spark-internal",
        "--hiveconf", f"hive.server2.thrift.port={hive.port}",
        "--hiveconf", "hive.server2.thrift.bind.host=0.0.0.0",
        "--hiveconf", f"hive.server2.authentication={hive.auth}",
    )
    return command, {"kind": "tcp", "host": "127.0.0.1", "port": hive.port}


def streaming_job_command(extra: list[str]) -> tuple[list[str], dict]:
    """The continuous Structured Streaming job (spark_streaming/job.py) on the cluster; its
    options after the role, or from BERKA_STREAMING_ARGS."""
    from berka_stack.spark import (
        STREAMING_UI_PORT,
        streaming_args_from_env,
        streaming_job_submit,
        write_spark_conf,
    )

    settings = _settings()
    write_spark_conf(settings)
    command = streaming_job_submit(extra or streaming_args_from_env(), tuple(_driver_options()),
                                   settings)
    return command, {"kind": "tcp", "host": "127.0.0.1", "port": STREAMING_UI_PORT}


S3_PORT = 9000


def s3_command(extra: list[str]) -> tuple[list[str], dict]:
    """The S3-compatible store of the compose stack: moto's server, the same as the local
    stack's (`berka-stack up s3`), from this image. It keeps objects in memory; `init` puts
    the shipped sample back after a restart."""
    command = [sys.executable, "-m", "moto.server", "-H", "0.0.0.0", "-p", str(S3_PORT), *extra]
    return command, {"kind": "http", "url": f"http://127.0.0.1:{S3_PORT}/moto-api/"}


def _workspace() -> str:
    from berka_core.config import REPO_ROOT

    return str(REPO_ROOT / "workspace.yaml")


def dagster_webserver_command(extra: list[str]) -> tuple[list[str], dict]:
    command = ["dagster-webserver", "-h", "0.0.0.0", "-p", str(DAGSTER_WEBSERVER_PORT),
               "-w", _workspace(), *extra]
    url = f"http://127.0.0.1:{DAGSTER_WEBSERVER_PORT}/server_info"
    return command, {"kind": "http", "url": url}


def dagster_daemon_command(extra: list[str]) -> tuple[list[str], dict]:
    command = ["dagster-daemon", "run", "-w", _workspace(), *extra]
    return command, {"kind": "command", "argv": ["dagster-daemon", "liveness-check"]}


ROLES = {
    "spark-master": spark_master_command,
    "spark-worker": spark_worker_command,
    "hive-metastore": hive_metastore_command,
    "spark-connect": spark_connect_command,
    "thrift-server": thrift_server_command,
    "streaming-job": streaming_job_command,
    "s3": s3_command,
    "dagster-webserver": dagster_webserver_command,
    "dagster-daemon": dagster_daemon_command,
}


def role_file() -> Path:
    from berka_core.config import var_dir

    return var_dir() / "run" / "container-role.json"


def run_role(role: str, extra: list[str]) -> None:
    """Record the role's health check, then replace this process with the role's program."""
    command, health = ROLES[role](extra)
    env = dict(os.environ)
    if role not in ("dagster-webserver", "dagster-daemon", "s3"):
        from berka_stack.spark import spark_env

        env.update(spark_env())
        if role in ("spark-master", "spark-worker"):
            # Master and worker need no spark-defaults (it holds the metastore password).
            env.pop("SPARK_CONF_DIR", None)
        if role == "streaming-job":
            from berka_core.config import REPO_ROOT

            env["PYTHONPATH"] = str(REPO_ROOT)  # spark_streaming/ beside the package
    path = role_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"role": role, **health}))
    print(f"berka-container: starting {role}: {' '.join(command)}", file=sys.stderr, flush=True)
    os.execvpe(command[0], command, env)


# ---- health ------------------------------------------------------------------------------------


def http_ok(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def worker_registered(master_ui: str, host: str, timeout: float = 5.0) -> bool:
    """The master lists this worker as ALIVE (a real registration, not just an open port)."""
    try:
        with urllib.request.urlopen(master_ui, timeout=timeout) as response:
            workers = json.load(response).get("workers", [])
    except (OSError, ValueError):
        return False
    return any(w.get("host") == host and w.get("state") == "ALIVE" for w in workers)


def check(health: dict) -> bool:
    kind = health.get("kind")
    if kind == "tcp":
        from berka_stack.process import port_open

        return port_open(health["host"], int(health["port"]), timeout=3.0)
    if kind == "http":
        return http_ok(health["url"])
    if kind == "spark-worker":
        return worker_registered(health["master_ui"], health["host"])
    if kind == "command":
        return subprocess.run(health["argv"], capture_output=True, check=False).returncode == 0
    raise ValueError(f"unknown health check kind {kind!r}")


def health(args: list[str]) -> int:
    """`health` checks this container's role; `health tcp HOST PORT` / `health http URL` too."""
    if args:
        kind, *rest = args
        spec = ({"kind": "tcp", "host": rest[0], "port": int(rest[1])} if kind == "tcp"
                else {"kind": "http", "url": rest[0]})
    else:
        path = role_file()
        if not path.exists():
            print("no role started in this container", file=sys.stderr)
            return 1
        spec = json.loads(path.read_text())
    healthy = check(spec)
    print("healthy" if healthy else f"unhealthy: {spec}")
    return 0 if healthy else 1


# ---- init: idempotent one-off set-up -----------------------------------------------------------


def _retry(what: str, action, attempts: int = 10, delay: float = 6.0) -> None:
    for attempt in range(1, attempts + 1):
        try:
            action()
            print(f"init: {what}: done", flush=True)
            return
        except Exception as error:  # retried, then re-raised
            if attempt == attempts:
                raise
            print(f"init: {what}: attempt {attempt} failed ({error}); retrying", flush=True)
            time.sleep(delay)


def create_topics() -> None:
    from berka_stack.kafka import ensure_topics

    kafka = _settings().kafka
    ensure_topics(kafka.bootstrap_servers, {kafka.topic: kafka.partitions, kafka.dlq_topic: 1},
                  replication_factor=kafka.replication_factor)


def create_bucket() -> None:
    import boto3

    s3 = _settings().s3
    client = boto3.client("s3", endpoint_url=s3.endpoint_url or None, region_name=s3.region)
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if s3.bucket not in existing:
        if s3.region == "us-east-1":
            client.create_bucket(Bucket=s3.bucket)
        else:
            client.create_bucket(
                Bucket=s3.bucket, CreateBucketConfiguration={"LocationConstraint": s3.region}
            )
    # An empty prefix gets the shipped sample, so the S3 source works out of the box; a
    # prefix that holds files (yours) is left alone.
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix, MaxKeys=1)
    if not listed.get("KeyCount"):
        from berka_assets.resources.berka_source import upload_folder

        upload_folder(client, get_settings().data_dir, s3.bucket, s3.prefix)


def create_hive_database() -> None:
    from pyspark.sql import SparkSession

    spark = _settings().spark
    session = SparkSession.builder.remote(spark.remote).getOrCreate()
    session.sql(f"CREATE DATABASE IF NOT EXISTS `{spark.hive_database}`").collect()


def init(_: list[str]) -> int:
    _retry("Kafka topics", create_topics)
    if _settings().s3.endpoint_url:
        _retry("S3 bucket", create_bucket)
    _retry("Hive database", create_hive_database)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    role, extra = argv[0], argv[1:]
    if role == "health":
        return health(extra)
    if role == "init":
        return init(extra)
    if role in ROLES:
        run_role(role, extra)
    os.execvp(role, argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
