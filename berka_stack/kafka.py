"""Apache Kafka 4 in KRaft mode: one combined broker+controller run from Maven Central's jars.

By default a single node with a dynamic quorum of itself (`berka-stack up`). The keyword
arguments of `Kafka` make it one node of a multi-node cluster instead (see the tests'
berka_assets_tests/cluster/clusters.py): its own name (pid and log file) and folder, a static
quorum of voters shared by every node, one cluster id, and extra broker properties.
"""

from __future__ import annotations

import base64
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from berka_core.config import KafkaSettings, get_settings, var_dir
from berka_stack import prereqs, process
from berka_stack.service import Service

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# Sized for a 2-core, 24 GB machine that also runs Spark and MariaDB.
JVM_OPTIONS = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-Djava.awt.headless=true"]

LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {server_log}
appender.file.filePattern = {server_log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class Kafka(Service):
    name = "kafka"
    start_timeout = 90.0
    # A broker with hundreds of partitions on a busy machine needs more than 30 s to shut
    # down cleanly, and a killed one recovers its logs at the next start.
    stop_timeout = 90.0

    def __init__(self, settings: KafkaSettings | None = None, *, node_id: int = 1,
                 port: int | None = None, controller_port: int | None = None,
                 name: str | None = None, home: Path | None = None,
                 quorum_voters: str | None = None, cluster_id: str | None = None,
                 extra_properties: Mapping[str, object] | None = None,
                 jvm_options: Sequence[str] | None = None) -> None:
        """One combined broker+controller; the defaults are the local stack's single node.

        For a node of a multi-node cluster: `name` (pid/log file, default "kafka"), `home`
        (config and data, default var/kafka), `quorum_voters` ("1@host:port,2@host:port,...":
        a static quorum, formatted without --standalone), `cluster_id` (the same for every
        node), `extra_properties` (override the broker properties, e.g. replication factors of
        the internal topics) and `jvm_options` (heap size).
        """
        self.settings = settings or get_settings().kafka
        host, default_port = self.settings.bootstrap_servers.split(",")[0].rsplit(":", 1)
        self.host = host
        self.port = port or int(default_port)
        self.controller_port = controller_port or self.port + 1
        self.node_id = node_id
        if name is not None:
            self.name = name
        self.home = home or var_dir() / "kafka"
        self.data_dir = self.home / "data"
        self.config = self.home / "server.properties"
        self.log4j = self.home / "log4j2.properties"
        self.quorum_voters = quorum_voters
        self.cluster_id = cluster_id
        self.extra_properties = dict(extra_properties or {})
        self.jvm_options = list(jvm_options) if jvm_options is not None else JVM_OPTIONS

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def classpath(self) -> str:
        return str(prereqs.ensure_jars("kafka-broker") / "*")

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        quorum = (
            {"controller.quorum.voters": self.quorum_voters} if self.quorum_voters
            else {"controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}"}
        )
        properties = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            **quorum,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port},"
                                    f"CONTROLLER://{self.host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": self.settings.partitions,
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 3,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            # Two cores: few threads.
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "log.retention.hours": 168,
            # Oversized poison records must reach the consumer to be quarantined, not bounce.
            "message.max.bytes": 4 * 2**20,
            "log.segment.bytes": 256 * 2**20,
            **self.extra_properties,
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        self.log4j.write_text(LOG4J2_PROPERTIES.format(server_log=self.server_log_path()))

    def server_log_path(self) -> Path:
        """The broker's own log (var/logs/kafka-server.log for the default node)."""
        return process.log_dir() / f"{self.name}-server.log"

    def _java(self, main: str, *args: str) -> list[str]:
        return [prereqs.java_binary(), *self.jvm_options,
                f"-Dlog4j2.configurationFile={self.log4j}",
                "-cp", self.classpath(), main, *args]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id_file = self.home / "cluster.id"
        if self.cluster_id:
            cluster_id_file.write_text(self.cluster_id)
        if not cluster_id_file.exists():
            cluster_id_file.write_text(new_cluster_id())
        # A dynamic quorum of this one node needs --standalone; a static quorum must not have it.
        standalone = [] if self.quorum_voters else ["--standalone"]
        process.run_setup_command(
            "Kafka storage format",
            [prereqs.java_binary(), "-Xmx256m", f"-Dlog4j2.configurationFile={self.log4j}",
             "-cp", self.classpath(), STORAGE_TOOL, "format", *standalone,
             # `=` form: a cluster id may start with "-", which would read as an option.
             f"--cluster-id={cluster_id_file.read_text().strip()}", "-c", str(self.config),
             "--ignore-formatted"],
        )

    def _launch(self) -> int:
        prereqs.check_java()
        self._write_config()
        self._format_storage()
        return process.start_daemon(self.name, self._java(BROKER_MAIN, str(self.config)))

    def _admin(self):  # -> confluent_kafka.admin.AdminClient
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": 3000})

    def is_healthy(self) -> bool:
        if not process.port_open(self.host, self.port):
            return False
        metadata = self._admin().list_topics(timeout=3)
        return len(metadata.brokers) > 0

    def version(self) -> str:
        jar = next(prereqs.jar_dir("kafka-broker").glob("kafka_2.13-*.jar"), None)
        return "Kafka " + (jar.stem.split("-", 1)[1] if jar else "?") + " (KRaft)"

    def after_start(self) -> None:
        ensure_topics(self.address, {self.settings.topic: self.settings.partitions,
                                     self.settings.dlq_topic: 1},
                      replication_factor=self.settings.replication_factor)

    def wipe(self) -> None:
        if self.pid() is not None:
            raise process.StackError("Stop Kafka before wiping its data.")
        if self.home.exists():
            shutil.rmtree(self.home)


def new_cluster_id() -> str:
    """A KRaft cluster id: a base64 UUID, what `StorageTool random-uuid` prints."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def ensure_topics(bootstrap_servers: str, partitions_by_topic: dict[str, int],
                  replication_factor: int = 1) -> None:
    """Create missing topics; existing ones are left as they are."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(topic, num_partitions=count, replication_factor=replication_factor)
        for topic, count in partitions_by_topic.items()
        if topic not in existing
    ]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
        except Exception as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                message = f"Could not create Kafka topic {topic}: {error}"
                raise process.StackError(message) from error
