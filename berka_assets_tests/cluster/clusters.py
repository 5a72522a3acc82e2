"""Real multi-process clusters on one machine: a Spark standalone cluster, a Kafka KRaft cluster.

They show that the pipeline scales out by configuration alone: point BERKA_SPARK_MASTER (and
BERKA_SPARK_REMOTE, for a Spark Connect server running on the cluster) and
BERKA_KAFKA_BOOTSTRAP_SERVERS at them, and the same code runs on several processes.

    with isolated_var_dir(REPO_ROOT / "var" / "cluster"), \\
            spark_standalone_cluster(workers=2) as spark, kafka_cluster(nodes=3) as kafka:
        os.environ.update({**spark.environment(), **kafka.environment()})
        ...  # SparkConnectServer(Settings()), StreamingJob(Settings(), ...), the Dagster jobs

- Spark: one master and N workers from the pip pyspark (`spark-class`), each a service with its
  own pid file; ready when the master's UI JSON lists every worker ALIVE.
- Kafka: N combined broker+controller nodes with a static quorum (`controller.quorum.voters`),
  one cluster id, internal topics replicated 3 times, topics created with a replication factor
  and min.insync.replicas; kill, restart and partition state (leader, ISR) for failover tests.

Every service keeps its pid and log files under the current var dir (BERKA_VAR_DIR). Use
`isolated_var_dir` to give the clusters (and the Spark drivers started against them, which write
their own spark-conf) a folder apart from the local stack's: the jars are shared through a link.
Leaving a context manager stops what it started, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berka_core.config import KafkaSettings, Settings, var_dir
from berka_stack import prereqs, process
from berka_stack.kafka import Kafka, new_cluster_id
from berka_stack.service import Service
from berka_stack.spark import spark_conf_dir, spark_env, spark_home, write_spark_conf

HOST = "127.0.0.1"
SPARK_MASTER_PORT = 17077
SPARK_MASTER_UI_PORT = 18080
SPARK_WORKER_PORT = 17078  # worker i (from 1) uses SPARK_WORKER_PORT + i - 1
SPARK_WORKER_UI_PORT = 18081  # worker i uses SPARK_WORKER_UI_PORT + i - 1
SPARK_DAEMON_MEMORY = "256m"  # heap of the master and worker daemons (not of executors)
KAFKA_PORT = 19092  # node i (from 1) listens on KAFKA_PORT + i - 1
KAFKA_CONTROLLER_PORT = 19192  # node i's controller listener: KAFKA_CONTROLLER_PORT + i - 1
KAFKA_NODE_JVM_OPTIONS = ["-Xms128m", "-Xmx256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                          "-Djava.awt.headless=true"]
APPLICATION_UI_PORTS = range(4040, 4072)  # where a driver's UI ends up (spark.ui.port + retries)


# -- shared helpers --------------------------------------------------------------------------
@contextlib.contextmanager
def isolated_var_dir(path: Path | str) -> Iterator[Path]:
    """BERKA_VAR_DIR=path in this process (and the processes it starts) while inside.

    Pid files, logs, spark-conf, warehouse and checkpoints then live under `path`, apart from
    the local stack's; `path/jars` links to the current var dir's jars, so nothing is fetched
    again. This sets a process-wide environment variable: use it around whole test modules or
    scripts, not concurrently with code that needs the previous var dir.
    """
    previous = os.environ.get("BERKA_VAR_DIR")
    shared_jars = var_dir() / "jars"
    target = Path(path).resolve()
    target.mkdir(parents=True, exist_ok=True)
    link = target / "jars"
    if target != var_dir() and shared_jars.exists() and not link.exists():
        if link.is_symlink():  # a dangling link from an older var dir
            link.unlink()
        link.symlink_to(shared_jars, target_is_directory=True)
    os.environ["BERKA_VAR_DIR"] = str(target)
    try:
        yield target
    finally:
        if previous is None:
            os.environ.pop("BERKA_VAR_DIR", None)
        else:
            os.environ["BERKA_VAR_DIR"] = previous


def _ensure_ports_free(name: str, host: str, ports: Mapping[str, int], hint: str) -> None:
    for what, port in ports.items():
        if process.port_open(host, port):
            raise process.StackError(
                f"{name}: {what} port {host}:{port} is already in use by another process. "
                f"Stop it, or {hint}."
            )


def get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _start_together(services: list[Service], timeout: float) -> dict[str, float]:
    """Launch every service, then wait for each: members that need each other (a quorum, a
    master's workers) come up together. On failure everything launched is stopped again."""
    launched: list[Service] = []
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            pids = list(pool.map(lambda service: service._launch(), services))
            launched = list(services)
        seconds = {}
        for service, pid in zip(services, pids, strict=True):
            process.wait_until(service.name, service.is_healthy, timeout=timeout, pid=pid)
            service.after_start()
            seconds[service.name] = time.monotonic() - started
        return seconds
    except BaseException:
        with contextlib.suppress(Exception):
            _stop_together(launched or services)
        raise


def _stop_together(services: list[Service]) -> None:
    """Stop the services in parallel; raise the first error after trying every one."""
    if not services:
        return
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        futures = [pool.submit(service.stop) for service in services]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]


# -- Spark standalone ------------------------------------------------------------------------
def _spark_daemon_env(host: str) -> dict[str, str]:
    local_dir = var_dir() / "spark-local"
    local_dir.mkdir(parents=True, exist_ok=True)
    return {
        **spark_env(),
        "SPARK_DAEMON_MEMORY": SPARK_DAEMON_MEMORY,
        "SPARK_LOCAL_IP": host,
        "SPARK_LOCAL_DIRS": str(local_dir),
    }


def _spark_class(main: str, *args: str) -> list[str]:
    return [str(spark_home() / "bin" / "spark-class"), main, *args]


class SparkMaster(Service):
    """org.apache.spark.deploy.master.Master; healthy when its UI JSON says ALIVE."""

    start_timeout = 60.0

    def __init__(self, *, host: str = HOST, port: int = SPARK_MASTER_PORT,
                 webui_port: int = SPARK_MASTER_UI_PORT, name: str = "spark-master") -> None:
        self.name = name
        self.host = host
        self.port = port
        self.webui_port = webui_port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    def check_port_free(self) -> None:
        _ensure_ports_free(self.name, self.host, {"RPC": self.port, "web UI": self.webui_port},
                           "pass other ports to spark_standalone_cluster(port=, webui_port=)")

    def _launch(self) -> int:
        prereqs.check_java()
        return process.start_daemon(
            self.name,
            _spark_class("org.apache.spark.deploy.master.Master", "--host", self.host,
                         "--port", str(self.port), "--webui-port", str(self.webui_port)),
            env=_spark_daemon_env(self.host),
        )

    def state(self) -> dict[str, Any]:
        """The master UI's JSON: workers, cores, memory, active and completed applications."""
        return get_json(f"{self.ui_url}/json/")

    def is_healthy(self) -> bool:
        return self.state().get("status") == "ALIVE"

    def version(self) -> str:
        import pyspark

        return f"Spark standalone master {pyspark.__version__}"


class SparkWorker(Service):
    """org.apache.spark.deploy.worker.Worker; healthy when the master lists it ALIVE."""

    start_timeout = 60.0

    def __init__(self, index: int, master: SparkMaster, *, host: str = HOST,
                 port: int | None = None, webui_port: int | None = None, cores: int = 1,
                 memory: str = "1g", name: str | None = None) -> None:
        self.index = index
        self.master = master
        self.name = name or f"spark-worker-{index}"
        self.host = host
        self.port = port or SPARK_WORKER_PORT + index - 1
        self.webui_port = webui_port or SPARK_WORKER_UI_PORT + index - 1
        self.cores = cores
        self.memory = memory
        self.work_dir = var_dir() / "spark-work" / self.name

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    def check_port_free(self) -> None:
        _ensure_ports_free(
            self.name, self.host, {"RPC": self.port, "web UI": self.webui_port},
            "pass other ports to spark_standalone_cluster(worker_port=, worker_webui_port=)",
        )

    def _launch(self) -> int:
        prereqs.check_java()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return process.start_daemon(
            self.name,
            _spark_class("org.apache.spark.deploy.worker.Worker", self.master.url,
                         "--host", self.host, "--port", str(self.port),
                         "--webui-port", str(self.webui_port), "--cores", str(self.cores),
                         "--memory", self.memory, "--work-dir", str(self.work_dir)),
            env=_spark_daemon_env(self.host),
        )

    def state(self) -> dict[str, Any]:
        """The worker UI's JSON: its id, cores and memory used, the executors it runs."""
        return get_json(f"{self.ui_url}/json/")

    def is_healthy(self) -> bool:
        worker_id = self.state()["id"]
        return any(worker["id"] == worker_id and worker["state"] == "ALIVE"
                   for worker in self.master.state()["workers"])

    def version(self) -> str:
        import pyspark

        return f"Spark standalone worker {pyspark.__version__}"


@dataclass
class SparkStandaloneCluster:
    master: SparkMaster
    workers: list[SparkWorker]

    @property
    def master_url(self) -> str:
        return self.master.url

    def environment(self) -> dict[str, str]:
        """What points the pipeline's Spark processes at this cluster."""
        return {"BERKA_SPARK_MASTER": self.master_url}

    def alive_workers(self) -> list[dict[str, Any]]:
        return [w for w in self.master.state()["workers"] if w["state"] == "ALIVE"]

    def wait_for_workers(self, count: int, timeout: float = 60.0) -> None:
        process.wait_until(self.master.name, lambda: len(self.alive_workers()) >= count,
                           timeout=timeout, pid=self.master.pid())

    def application(self, name: str) -> dict[str, Any] | None:
        """The running application of that name (the newest), as the master lists it."""
        apps = [a for a in self.master.state()["activeapps"] if a["name"] == name]
        return max(apps, key=lambda a: a["starttime"]) if apps else None

    def executors_by_worker(self, app_id: str) -> dict[str, list[str]]:
        """worker id -> ids of the application's executors running there."""
        placement: dict[str, list[str]] = {}
        for worker in self.workers:
            state = worker.state()
            placement[state["id"]] = [str(e["id"]) for e in state["executors"]
                                      if e["appid"] == app_id]
        return placement

    def completed_tasks_by_worker(self, app_id: str) -> dict[str, int]:
        """worker id -> tasks the application's executors on that worker completed."""
        executors = application_executors(app_id)
        tasks = {e["id"]: e["completedTasks"] for e in executors}
        return {worker: sum(tasks.get(executor, 0) for executor in ids)
                for worker, ids in self.executors_by_worker(app_id).items()}

    def stop(self) -> None:
        _stop_together(self.workers)
        self.master.stop()


def application_ui(app_id: str, host: str = HOST, ports=APPLICATION_UI_PORTS,
                   timeout: float = 60.0) -> str:
    """Base URL of the UI of a running driver (Spark moves it on to a free port by itself).

    Scans until `timeout`: a driver busy with a batch on a loaded machine can leave its REST
    API unanswered for seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for port in ports:
            if not process.port_open(host, port, timeout=0.2):
                continue
            url = f"http://{host}:{port}"
            with contextlib.suppress(Exception):
                if any(app["id"] == app_id
                       for app in get_json(f"{url}/api/v1/applications", timeout=10.0)):
                    return url
        if time.monotonic() >= deadline:
            raise process.StackError(f"No Spark UI on {host}:{ports.start}-{ports.stop - 1} "
                                     f"serves application {app_id}.")
        time.sleep(1.0)


def application_executors(app_id: str) -> list[dict[str, Any]]:
    """The REST API's executors of a running application (the driver included, dead ones too)."""
    return get_json(f"{application_ui(app_id)}/api/v1/applications/{app_id}/allexecutors",
                    timeout=10.0)


@contextlib.contextmanager
def spark_standalone_cluster(
    workers: int = 2,
    *,
    host: str = HOST,
    port: int = SPARK_MASTER_PORT,
    webui_port: int = SPARK_MASTER_UI_PORT,
    worker_port: int = SPARK_WORKER_PORT,
    worker_webui_port: int = SPARK_WORKER_UI_PORT,
    worker_cores: int = 1,
    worker_memory: str = "1g",
    settings: Settings | None = None,
    timeout: float = 90.0,
) -> Iterator[SparkStandaloneCluster]:
    """A master and `workers` workers, up and registered; stopped on leaving, whatever happens.

    SPARK_CONF_DIR is the current var dir's spark-conf; it is written from `settings` only if
    missing (drivers write their own at launch), so a shared one is never changed here.
    """
    master = SparkMaster(host=host, port=port, webui_port=webui_port)
    members = [
        SparkWorker(i, master, host=host, port=worker_port + i - 1,
                    webui_port=worker_webui_port + i - 1, cores=worker_cores,
                    memory=worker_memory)
        for i in range(1, workers + 1)
    ]
    cluster = SparkStandaloneCluster(master, members)
    for service in [master, *members]:
        if service.pid() is not None:
            raise process.StackError(
                f"{service.name} is already running (pid {service.pid()}, "
                f"{process.pid_file(service.name)}); stop it first."
            )
        service.check_port_free()
    if not (spark_conf_dir() / "spark-defaults.conf").exists():
        write_spark_conf(settings)
    for member in members:
        shutil.rmtree(member.work_dir, ignore_errors=True)  # executor logs of earlier runs
    try:
        master.start()
        _start_together(members, timeout)
        cluster.wait_for_workers(workers, timeout)
        yield cluster
    finally:
        cluster.stop()


# -- Kafka KRaft cluster ---------------------------------------------------------------------
class KafkaNode(Kafka):
    """One combined broker+controller of a static quorum; topics are the cluster's business."""

    # Whatever the order, the last nodes of a stopping cluster lose their quorum, and a broker
    # then waits for the controller to approve its controlled shutdown for good: SIGKILL it.
    stop_timeout = 10.0

    def stop(self) -> bool:
        return process.stop_daemon(self.name, timeout=self.stop_timeout)

    def after_start(self) -> None:
        """Nothing: a topic with replicas on other nodes cannot be made by one starting node."""

    def is_healthy(self) -> bool:
        if not process.port_open(self.host, self.port):
            return False
        return self.node_id in self._admin().list_topics(timeout=3).brokers

    def start(self) -> float:
        try:
            return super().start()
        except process.StackError as error:
            raise process.StackError(
                f"{error}\nLast lines of {self.server_log_path()}:\n"
                f"{process.tail(self.server_log_path())}"
            ) from error

    def check_port_free(self) -> None:
        _ensure_ports_free(
            self.name, self.host, {"broker": self.port, "controller": self.controller_port},
            "pass other ports to kafka_cluster(port=, controller_port=)",
        )


@dataclass(frozen=True)
class PartitionState:
    leader: int  # -1: no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass
class KafkaCluster:
    nodes: list[KafkaNode]
    cluster_id: str
    created_topics: list[str] = field(default_factory=list)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def environment(self) -> dict[str, str]:
        """What points the pipeline's Kafka clients (and Spark's Kafka source) at this cluster."""
        return {
            "BERKA_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BERKA_KAFKA_REPLICATION_FACTOR": str(min(3, len(self.nodes))),
        }

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def admin(self):  # -> confluent_kafka.admin.AdminClient
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap_servers,
                            "socket.timeout.ms": 3000})

    def brokers(self) -> set[int]:
        """Ids of the brokers the cluster currently lists (registered and not fenced)."""
        return set(self.admin().list_topics(timeout=5).brokers)

    def create_topic(self, topic: str, partitions: int = 3, *,
                     replication_factor: int | None = None, min_insync_replicas: int | None = None,
                     config: Mapping[str, str] | None = None) -> None:
        """Create a topic (default: replicated on up to 3 nodes, min.insync.replicas 2)."""
        from confluent_kafka.admin import NewTopic

        replicas = replication_factor or min(3, len(self.nodes))
        min_isr = min_insync_replicas or min(2, replicas)
        new = NewTopic(topic, num_partitions=partitions, replication_factor=replicas,
                       config={"min.insync.replicas": str(min_isr), **(config or {})})
        admin = self.admin()  # held: futures fail once their client is garbage-collected
        for name, future in admin.create_topics([new], operation_timeout=30).items():
            try:
                future.result()
            except Exception as error:
                raise process.StackError(f"Could not create Kafka topic {name}: {error}") from error
        self.created_topics.append(topic)
        self.wait_for_partitions(topic, lambda s: s.leader >= 0 and len(s.isr) == replicas,
                                 timeout=30, what=f"all {replicas} replicas in sync")

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """Leader, replicas and in-sync replicas of each partition, from the cluster's metadata."""
        metadata = self.admin().list_topics(topic, timeout=5).topics[topic]
        if metadata.error is not None:
            raise process.StackError(f"Kafka topic {topic}: {metadata.error}")
        return {
            p.id: PartitionState(p.leader, tuple(sorted(p.replicas)), tuple(sorted(p.isrs)))
            for p in metadata.partitions.values()
        }

    def wait_for_partitions(self, topic: str, condition, *, timeout: float = 60.0,
                            what: str = "the expected state") -> float:
        """Seconds until `condition(PartitionState)` holds for every partition of `topic`."""
        started = time.monotonic()
        last: dict[int, PartitionState] | str = "(no metadata)"
        while time.monotonic() - started < timeout:
            try:
                last = self.partitions(topic)
                if last and all(condition(state) for state in last.values()):
                    return time.monotonic() - started
            except Exception as error:  # noqa: BLE001 - metadata may fail during a failover
                last = f"{type(error).__name__}: {error}"
            time.sleep(0.2)
        raise process.StackError(
            f"Kafka topic {topic}: partitions did not reach {what} within {timeout:g} s; "
            f"last seen: {last}"
        )

    def kill(self, node_id: int) -> None:
        """kill -9 one node (its whole process group): a crash."""
        self.node(node_id).kill()

    def restart(self, node_id: int) -> float:
        """Start a stopped or killed node again from its data; seconds until it serves."""
        return self.node(node_id).start()

    def stop(self) -> None:
        """SIGTERM every node at once (the last node standing is killed after 10 s)."""
        _stop_together(self.nodes)


def _kafka_node_properties(nodes: int) -> dict[str, object]:
    replicas = min(3, nodes)
    min_isr = min(2, replicas)
    return {
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "unclean.leader.election.enable": "false",
    }


@contextlib.contextmanager
def kafka_cluster(
    nodes: int = 3,
    *,
    host: str = HOST,
    port: int = KAFKA_PORT,
    controller_port: int = KAFKA_CONTROLLER_PORT,
    partitions: int | None = None,
    extra_properties: Mapping[str, object] | None = None,
    jvm_options: list[str] | None = None,
    fresh: bool = True,
    timeout: float = 90.0,
) -> Iterator[KafkaCluster]:
    """`nodes` combined broker+controller nodes forming one static quorum; stopped on leaving.

    Node i (from 1) listens on port + i - 1 and controller_port + i - 1 and keeps its data in
    var/kafka-cluster/node-i (wiped first when `fresh`; kept after stopping, for post-mortems).
    """
    home = var_dir() / "kafka-cluster"
    voters = ",".join(f"{i}@{host}:{controller_port + i - 1}" for i in range(1, nodes + 1))
    settings = KafkaSettings(bootstrap_servers=f"{host}:{port}",
                             partitions=partitions or KafkaSettings().partitions)
    members = [
        KafkaNode(
            settings, node_id=i, port=port + i - 1, controller_port=controller_port + i - 1,
            name=f"kafka-{i}", home=home / f"node-{i}", quorum_voters=voters,
            extra_properties={**_kafka_node_properties(nodes), **(extra_properties or {})},
            jvm_options=jvm_options or KAFKA_NODE_JVM_OPTIONS,
        )
        for i in range(1, nodes + 1)
    ]
    for node in members:
        if node.pid() is not None:
            raise process.StackError(
                f"{node.name} is already running (pid {node.pid()}, "
                f"{process.pid_file(node.name)}); stop it first."
            )
        node.check_port_free()
    if fresh and home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    id_file = home / "cluster.id"
    if not id_file.exists():
        id_file.write_text(new_cluster_id())
    cluster_id = id_file.read_text().strip()
    for node in members:
        node.cluster_id = cluster_id
    cluster = KafkaCluster(members, cluster_id)
    prereqs.check_java()
    prereqs.ensure_jars("kafka-broker")
    try:
        try:
            _start_together(members, timeout)
        except process.StackError as error:
            logs = "\n".join(f"--- {n.server_log_path()}:\n{process.tail(n.server_log_path(), 15)}"
                             for n in members)
            raise process.StackError(f"{error}\n{logs}") from error
        process.wait_until(members[0].name, lambda: cluster.brokers() == set(range(1, nodes + 1)),
                           timeout=timeout)
        yield cluster
    finally:
        cluster.stop()
