"""Each service of the local stack answers a real round trip."""

from __future__ import annotations

import subprocess
import uuid

import pymysql
import pytest

from berka_assets.resources.kafka import KafkaResource
from berka_core.config import Settings, secret
from berka_stack.kafka import ensure_topics

pytestmark = pytest.mark.integration


def test_kafka_produce_then_consume_on_trans(stack: Settings) -> None:
    kafka = KafkaResource()
    marker = uuid.uuid4().hex.encode()
    producer = kafka.producer()
    delivered = []
    producer.produce(stack.kafka.topic, key=b"smoke", value=marker,
                     on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(15) == 0
    error, message = delivered[0]
    assert error is None
    consumer = kafka.consumer(group_id=f"smoke-{uuid.uuid4().hex}")
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(stack.kafka.topic, message.partition(), message.offset())])
    received = consumer.poll(15)
    consumer.close()
    assert received is not None and received.error() is None
    assert received.value() == marker and received.key() == b"smoke"


def test_trans_topic_has_configured_partitions(stack: Settings) -> None:
    offsets = KafkaResource().partition_offsets(stack.kafka.topic)
    assert [p.partition for p in offsets] == list(range(stack.kafka.partitions))


def test_mariadb_foreign_key_refuses_orphan(stack: Settings) -> None:
    connection = pymysql.connect(
        host=stack.mysql.host, port=stack.mysql.port, user=stack.mysql.user,
        password=secret(stack.mysql.password_env), database=stack.mysql.database,
        autocommit=True,
    )
    suffix = uuid.uuid4().hex[:8]
    parent, child = f"smoke_parent_{suffix}", f"smoke_child_{suffix}"
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {parent} (id INT PRIMARY KEY) ENGINE=InnoDB")
            cursor.execute(
                f"CREATE TABLE {child} (id INT PRIMARY KEY, parent_id INT NOT NULL, "
                f"FOREIGN KEY (parent_id) REFERENCES {parent}(id)) ENGINE=InnoDB"
            )
            cursor.execute(f"INSERT INTO {parent} VALUES (1)")
            cursor.execute(f"INSERT INTO {child} VALUES (1, 1)")
            with pytest.raises(pymysql.err.IntegrityError, match="foreign key constraint"):
                cursor.execute(f"INSERT INTO {child} VALUES (2, 99)")
            cursor.execute(f"SELECT COUNT(*) FROM {child}")
            assert cursor.fetchone() == (1,)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {child}")
            cursor.execute(f"DROP TABLE IF EXISTS {parent}")
        connection.close()


def test_application_user_cannot_touch_the_metastore(stack: Settings) -> None:
    connection = pymysql.connect(
        host=stack.mysql.host, port=stack.mysql.port, user=stack.mysql.user,
        password=secret(stack.mysql.password_env),
    )
    with pytest.raises(pymysql.err.OperationalError, match="denied"):
        connection.cursor().execute(f"SELECT * FROM {stack.mysql.metastore_database}.TBLS")
    connection.close()


def test_s3_server_round_trip(stack: Settings) -> None:
    import boto3

    from berka_stack.s3 import local_s3_endpoint

    client = boto3.client("s3", endpoint_url=local_s3_endpoint(), region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    bucket = f"smoke-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"berka")
    assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"berka"


def test_ensure_topics_is_idempotent(stack: Settings) -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    ensure_topics(stack.kafka.bootstrap_servers, {name: 2})
    ensure_topics(stack.kafka.bootstrap_servers, {name: 2})
    assert len(KafkaResource().partition_offsets(name)) == 2


def test_dagster_definitions_validate() -> None:
    for command in (["dagster", "definitions", "validate", "-w", "workspace.yaml"],
                    ["dg", "check", "defs"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env=_venv_env())
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Validation successful" in result.stdout + result.stderr or command[0] == "dg"


def _venv_env() -> dict[str, str]:
    import os
    import sys
    from pathlib import Path

    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def test_wipe_removes_the_pipelines_local_state_and_nothing_outside_var(tmp_path) -> None:
    from berka_stack.cli import LOCAL_STATE, wipe_local_state

    var, elsewhere = tmp_path / "var", tmp_path / "elsewhere"
    for name in (*LOCAL_STATE, "jars"):
        (var / name / "inner").mkdir(parents=True)
    (elsewhere / "warehouse").mkdir(parents=True)
    removed = wipe_local_state(var, var / "warehouse")
    assert sorted(p.name for p in removed) == sorted(LOCAL_STATE)
    assert [p.name for p in var.iterdir()] == ["jars"]  # downloads stay
    # A warehouse configured elsewhere (a real cluster's) is never deleted by a local wipe.
    (var / "warehouse").mkdir()
    assert wipe_local_state(var, elsewhere / "warehouse") == []
    assert (var / "warehouse").exists() and (elsewhere / "warehouse").exists()
