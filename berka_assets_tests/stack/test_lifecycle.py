"""`berka-stack` up / status / up again / down / up again, on a second, isolated stack
(second_stack.py: its own ports and var folder, so it never disturbs the session's stack).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from berka_assets_tests.second_stack import PORTS, berka_stack, isolated_env
from berka_stack import process

pytestmark = pytest.mark.integration


def pids(var: Path) -> list[int]:
    return [int(p.read_text()) for p in (var / "run").glob("*.pid")]


def _parents() -> dict[int, int]:
    parents = {}
    for candidate in psutil.process_iter():
        try:
            parents[candidate.pid] = candidate.ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return parents


_DATA = """
import sys
from confluent_kafka import Consumer, Producer
from pyspark.sql import SparkSession
from berka_core.config import load_secrets_into_environment, get_settings
from berka_stack.kafka import ensure_topics

load_secrets_into_environment()
settings = get_settings()
kafka = settings.kafka.bootstrap_servers
spark = SparkSession.builder.remote(settings.spark.remote).create()
try:
    if sys.argv[1] == "write":
        spark.sql("CREATE DATABASE survives")
        spark.sql("CREATE TABLE survives.t (x INT) USING delta")
        spark.sql("INSERT INTO survives.t VALUES (42)")
        ensure_topics(kafka, {"survives": 1})
        producer = Producer({"bootstrap.servers": kafka})
        producer.produce("survives", b"43")
        assert producer.flush(30) == 0
    else:
        table = [row.x for row in spark.sql("SELECT x FROM survives.t").collect()]
        consumer = Consumer({"bootstrap.servers": kafka, "group.id": "check",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe(["survives"])
        message = consumer.poll(30)
        consumer.close()
        print(table, message.value().decode() if message is not None else None)
finally:
    spark.stop()
"""


def stack_data(environment: dict[str, str], mode: str) -> str:
    """Write a Delta table (in the MySQL-backed metastore) and a Kafka message, or read them."""
    result = subprocess.run([sys.executable, "-c", _DATA, mode], capture_output=True, text=True,
                            env=environment, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.mark.slow
def test_up_status_down_up(tmp_path: Path) -> None:
    var = tmp_path / "var"
    environment = isolated_env(var)
    try:
        first = berka_stack(environment, "up")
        assert first.returncode == 0, first.stderr + first.stdout
        status = berka_stack(environment, "status")
        assert status.returncode == 0, status.stdout
        for name, port in (("mariadb", PORTS["mysql"]), ("kafka", PORTS["kafka"]),
                           ("spark-connect", PORTS["connect"]),
                           ("thrift-server", PORTS["hive"]), ("s3", PORTS["s3"])):
            line = next(line for line in status.stdout.splitlines() if line.startswith(name))
            assert " up " in line and f":{port}" in line, line
        running = pids(var)
        assert len(running) == 5
        stack_data(environment, "write")

        again = berka_stack(environment, "up")
        assert again.returncode == 0, again.stderr
        assert sorted(pids(var)) == sorted(running), "a second `up` must not start anything"

        down = berka_stack(environment, "down")
        assert down.returncode == 0, down.stderr
        assert not any(process.pid_alive(pid) for pid in running)
        for port in PORTS.values():
            assert not process.port_open("127.0.0.1", port), f"port {port} still open"
        stopped = berka_stack(environment, "status")
        assert stopped.returncode == 3 and " up " not in stopped.stdout

        # Data survives a restart: the metastore and topics are reused, not recreated.
        restart = berka_stack(environment, "up")
        assert restart.returncode == 0, restart.stderr + restart.stdout
        assert stack_data(environment, "read") == "[42] 43"

        # The Connect server's JVM killed outright (the OOM killer): its Python driver program
        # (stack/spark_connect_main.py) must not stay behind.
        jvm = int((var / "run" / "spark-connect.pid").read_text())
        drivers = [pid for pid, parent in _parents().items() if parent == jvm]
        assert drivers, "the Connect server has no driver program child"
        os.kill(jvm, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(process.pid_alive(p) for p in drivers):
            time.sleep(0.2)
        assert not any(process.pid_alive(p) for p in drivers)
    finally:
        berka_stack(environment, "down")
    assert not any(process.pid_alive(pid) for pid in pids(var))


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    environment = isolated_env(tmp_path / "var")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", PORTS["s3"]))
        blocker.listen()
        result = berka_stack(environment, "up", "s3")
    assert result.returncode == 1
    assert f"port 127.0.0.1:{PORTS['s3']} is already in use" in result.stderr


def test_old_java_is_reported(tmp_path: Path) -> None:
    fake_home = tmp_path / "jdk11"
    (fake_home / "bin").mkdir(parents=True)
    java = fake_home / "bin" / "java"
    # A stand-in that reports Java 11, to see the version check refuse it.
    java.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    java.chmod(0o755)
    environment = {**isolated_env(tmp_path / "var"), "JAVA_HOME": str(fake_home)}
    result = berka_stack(environment, "up", "kafka")
    assert result.returncode == 1
    assert "Java 11 found" in result.stderr and "need Java 17" in result.stderr


def test_service_that_does_not_come_up_shows_its_log(tmp_path: Path) -> None:
    environment = {**isolated_env(tmp_path / "var"), "BERKA_KAFKA_START_TIMEOUT": "0.5"}
    try:
        result = berka_stack(environment, "up", "kafka")
    finally:
        berka_stack(environment, "down", "kafka")
    assert result.returncode == 1
    assert "kafka did not become ready within 0.5 s" in result.stderr
    assert "Last lines of" in result.stderr
    assert not list((tmp_path / "var" / "run").glob("kafka.pid")), "a failed start leaves no pid"
