"""Spark against the real stack: Kafka offset ranges, Hive tables shared through the metastore."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from berka_assets.resources.hive import HiveResource
from berka_assets.resources.kafka import KafkaResource
from berka_core.config import Settings
from berka_core.spark_jobs.kafka_source import OffsetRange, offset_options, read_offset_ranges
from berka_stack import process
from berka_stack.kafka import ensure_topics
from berka_stack.spark import spark_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark(stack: Settings) -> Iterator[SparkSession]:
    session = SparkSession.builder.remote(stack.spark.remote).getOrCreate()
    yield session


def test_offset_options_name_every_partition() -> None:
    options = offset_options([OffsetRange("t", 1, 5, 9), OffsetRange("t", 0, 0, 3)])
    assert json.loads(options["assign"]) == {"t": [0, 1]}
    assert json.loads(options["startingOffsets"]) == {"t": {"0": 0, "1": 5}}
    assert json.loads(options["endingOffsets"]) == {"t": {"0": 3, "1": 9}}


def test_spark_reads_exactly_an_offset_range(stack: Settings, spark: SparkSession) -> None:
    topic = f"range-{uuid.uuid4().hex[:8]}"
    ensure_topics(stack.kafka.bootstrap_servers, {topic: 3})
    kafka = KafkaResource()
    producer = kafka.producer()
    for number in range(300):
        producer.produce(topic, key=f"k{number % 7}".encode(), value=f"v{number}".encode())
    assert producer.flush(30) == 0

    ends = {p.partition: p.high for p in kafka.partition_offsets(topic)}
    assert sum(ends.values()) == 300
    # A middle slice of each partition: skip the first 3 records and the last 2.
    ranges = [OffsetRange(topic, p, 3, end - 2) for p, end in ends.items()]

    rows = read_offset_ranges(spark, kafka.spark_options(), ranges).select(
        "partition", "offset", "value"
    ).collect()
    got = {(r.partition, r.offset, r.value.decode()) for r in rows}

    expected = set()
    consumer = kafka.consumer(group_id=f"check-{uuid.uuid4().hex}")
    from confluent_kafka import TopicPartition

    for offset_range in ranges:
        consumer.assign([TopicPartition(topic, offset_range.partition, offset_range.start)])
        while len([e for e in expected if e[0] == offset_range.partition]) < offset_range.count:
            message = consumer.poll(10)
            assert message is not None and message.error() is None
            if message.offset() < offset_range.end:
                expected.add((message.partition(), message.offset(), message.value().decode()))
    consumer.close()

    assert len(rows) == sum(r.count for r in ranges) == 300 - 5 * 3
    assert got == expected


def test_hive_table_is_shared_by_separate_spark_processes_and_pyhive(
    stack: Settings, spark: SparkSession
) -> None:
    table = f"{stack.spark.hive_database}.smoke_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE TABLE {table} (id INT, amount DECIMAL(15,2)) USING parquet")
    spark.sql(f"INSERT INTO {table} VALUES (1, 10.50), (2, 20.25), (3, 0.01)")

    # A second, separate Spark JVM (classic local mode) with the same spark-defaults.conf.
    reader = textwrap.dedent(f"""
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.master("local[1]").getOrCreate()
        row = spark.sql("SELECT COUNT(*) AS n, SUM(amount) AS total FROM {table}").first()
        print("RESULT", row.n, row.total)
        spark.stop()
    """)
    result = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                            env={**_os_environ(), **spark_env()}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RESULT 3 30.76" in result.stdout

    columns, rows = HiveResource().query(f"SELECT id, amount FROM {table} ORDER BY id")
    assert columns == ["id", "amount"]
    assert [(r[0], str(r[1])) for r in rows] == [(1, "10.50"), (2, "20.25"), (3, "0.01")]
    spark.sql(f"DROP TABLE {table}")


def _os_environ() -> dict[str, str]:
    import os

    # pyspark marks this process as a Connect client through env vars; the child is classic.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SPARK_CONNECT", "SPARK_REMOTE"))}


def test_metastore_survives_a_mariadb_restart(stack: Settings, spark: SparkSession) -> None:
    # The metastore pools keep connections a restart closed; its next DDL must still work
    # (it failed with "socket was closed by server" before the driver reconnected them).
    from berka_stack.mariadb import MariaDB

    database = f"berka_test_restart_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {database}")
    spark.sql(f"CREATE TABLE {database}.t (x INT) USING parquet")
    mariadb = MariaDB(stack.mysql)
    try:
        assert mariadb.stop(), "MariaDB was not running"
        assert not process.port_open(stack.mysql.host, stack.mysql.port), "MariaDB still serves"
    finally:
        mariadb.start()
    spark.sql(f"INSERT INTO {database}.t VALUES (1)")
    assert spark.sql(f"SELECT count(*) AS n FROM {database}.t").collect()[0].n == 1
    spark.sql(f"DROP DATABASE {database} CASCADE")
    assert database not in {row.namespace for row in spark.sql("SHOW DATABASES").collect()}


def test_a_dagster_step_gives_its_connect_session_back(stack: Settings,
                                                       spark: SparkSession) -> None:
    import dagster as dg

    from berka_assets.resources.spark import spark_resource

    with dg.build_resources({"pyspark": spark_resource(stack.spark)}) as resources:
        session = resources.pyspark.spark_session
        assert session is not spark  # its own: releasing it must not stop anyone else's
        assert session.range(3).count() == 3
        session_id = session.session_id
    # The server refuses a released session; one merely abandoned would live on for an hour.
    reused = SparkSession.builder.remote(f"{stack.spark.remote}/;session_id={session_id}").create()
    try:
        with pytest.raises(Exception, match="SESSION_CLOSED"):
            reused.range(1).count()
    finally:
        # An unclosed Connect client calls its server at interpreter exit, when the stack is
        # already down, and retries for minutes: pytest would hang after its summary.
        reused.stop()
    assert spark.range(2).count() == 2  # the process's own session is untouched


def _bytes(memory: str) -> int:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(memory[:-1]) * units[memory[-1].lower()]


@pytest.mark.parametrize("server", ["spark-connect", "thrift-server"])
def test_a_long_lived_spark_server_holds_its_heap_from_the_start(stack: Settings,
                                                                  server: str) -> None:
    # Found by the soak: a heap that grew into its limit over 15 minutes after a restart read
    # as 1.24x the memory of the first window, a leak by the rule. Committed at start, the
    # server's resident memory is the heap it was given from the first minute on.
    from pathlib import Path

    from berka_stack import prereqs
    from berka_stack.spark import SparkConnectServer, ThriftServer

    service = {"spark-connect": SparkConnectServer, "thrift-server": ThriftServer}[server](stack)
    memory = {"spark-connect": stack.spark.connect_memory,
              "thrift-server": stack.spark.thrift_server_memory}[server]
    pid = service.pid()
    assert pid is not None, f"{server} is not running"
    jcmd = Path(prereqs.java_binary()).with_name("jcmd")
    flags = subprocess.run([str(jcmd), str(pid), "VM.flags"], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    assert f"-XX:InitialHeapSize={_bytes(memory)}" in flags
    assert f"-XX:MaxHeapSize={_bytes(memory)}" in flags
    assert "-XX:+AlwaysPreTouch" in flags
    assert process.rss_bytes(pid) > _bytes(memory)
