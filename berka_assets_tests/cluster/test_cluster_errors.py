"""The cluster helpers fail as clearly as the rest of the stack, and leave nothing running."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from berka_assets_tests.cluster.clusters import (
    isolated_var_dir,
    kafka_cluster,
    spark_standalone_cluster,
)
from berka_stack import process
from berka_stack.dev import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other process listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def no_pid_files(var: Path) -> bool:
    return not list((var / "run").glob("*.pid")) if (var / "run").exists() else True


def test_spark_cluster_refuses_a_port_in_use_before_starting_anything(
    tmp_path: Path, busy_port: int
) -> None:
    with isolated_var_dir(tmp_path / "var") as var:
        with pytest.raises(process.StackError,
                           match=f"spark-master: RPC port 127.0.0.1:{busy_port} is already in use"):
            with spark_standalone_cluster(workers=2, port=busy_port, webui_port=free_port()):
                pytest.fail("must not start")
        assert no_pid_files(var)


def test_kafka_cluster_refuses_a_port_in_use_before_starting_anything(
    tmp_path: Path, busy_port: int
) -> None:
    with isolated_var_dir(tmp_path / "var") as var:
        with pytest.raises(process.StackError,
                           match=f"kafka-1: broker port 127.0.0.1:{busy_port} is already in use"):
            with kafka_cluster(nodes=1, port=busy_port, controller_port=free_port()):
                pytest.fail("must not start")
        assert no_pid_files(var)


def test_kafka_node_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    with isolated_var_dir(tmp_path / "var") as var:
        with pytest.raises(process.StackError) as raised:
            # A heap too small for the JVM to start at all.
            with kafka_cluster(nodes=1, port=free_port(), controller_port=free_port(),
                               jvm_options=["-Xmx1m"], timeout=30):
                pytest.fail("must not start")
        message = str(raised.value)
        assert "kafka-1 exited while starting" in message
        assert "heap" in message.lower()  # the JVM's own words, from the log's tail
        assert no_pid_files(var)
