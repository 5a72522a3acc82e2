"""Where a Spark session gets the pipeline's JVM functions (jvm/udf), on real Connect servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from berka_core.config import Settings
from berka_core.spark_jobs import jvm_functions
from berka_core.spark_jobs.jvm_functions import (
    PARSE_TRANS_MESSAGE,
    JvmFunctionsError,
    file_sha256,
    loaded_jar_sha256,
    register_jvm_functions,
)
from berka_stack import prereqs
from berka_stack.process import port_open
from berka_stack.spark import spark_env, spark_submit

pytestmark = pytest.mark.integration

LOCAL_SERVER_UI = "http://127.0.0.1:4040"
# Spark's own Connect server, as a remote cluster runs it: without the jar, isolated sessions.
STOCK_SERVER_MAIN = "org.apache.spark.sql.connect.service.SparkConnectServer"
STOCK_SERVER_PORT = 15302  # test_lifecycle uses 15202
MESSAGE = '{"schema_version": 1, "trans_id": 42, "amount": "7.50"}'
QUERY = f"SELECT {PARSE_TRANS_MESSAGE}(CAST('{MESSAGE}' AS BINARY)) AS m"


def _compilations() -> int:
    with urllib.request.urlopen(f"{LOCAL_SERVER_UI}/metrics/json", timeout=10) as response:
        histograms = json.load(response)["histograms"]
    return next(v["count"] for k, v in histograms.items()
                if k.endswith("CodeGenerator.compilationTime"))


def _parse_in_new_session(remote: str) -> tuple[int, str]:
    """A new session parses one message; returns its trans_id and amount."""
    session = SparkSession.builder.remote(remote).create()
    try:
        register_jvm_functions(session)
        row = session.sql(QUERY).select("m.trans_id", "m.amount").first()
        return row.trans_id, row.amount
    finally:
        session.stop()


def test_the_local_server_has_this_build_and_its_sessions_share_generated_code(
    stack: Settings,
) -> None:
    session = SparkSession.builder.remote(stack.spark.remote).create()
    try:
        assert loaded_jar_sha256(session) == file_sha256(prereqs.ensure_udf_jar())
    finally:
        session.stop()

    # A query no other test runs: the first session compiles it, the next ones reuse that.
    assert _parse_in_new_session(stack.spark.remote) == (42, "7.50")
    before = _compilations()
    assert _parse_in_new_session(stack.spark.remote) == (42, "7.50")
    assert _parse_in_new_session(stack.spark.remote) == (42, "7.50")
    assert _compilations() == before


def test_a_session_running_another_build_is_refused(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_build = tmp_path / "berka-udf.jar"
    shutil.copyfile(prereqs.ensure_udf_jar(), other_build)
    with zipfile.ZipFile(other_build, "a") as jar:
        jar.writestr("berka/udf/changed.txt", "a newer build")
    monkeypatch.setattr(jvm_functions, "built_udf_jar", lambda: other_build)

    session = SparkSession.builder.remote(stack.spark.remote).create()
    try:
        with pytest.raises(JvmFunctionsError, match="berka-stack restart spark-connect"):
            register_jvm_functions(session)
        assert session not in jvm_functions._registered
    finally:
        session.stop()


@pytest.fixture(scope="module")
def stock_connect_server(stack: Settings, tmp_path_factory: pytest.TempPathFactory
                         ) -> Iterator[str]:
    log = tmp_path_factory.mktemp("stock-connect") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            spark_submit(
                "--class", STOCK_SERVER_MAIN, "--driver-memory", "1g",
                "--conf", "spark.sql.catalogImplementation=in-memory",
                "--conf", "spark.ui.enabled=false",
                "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                "--conf", f"spark.connect.grpc.binding.port={STOCK_SERVER_PORT}",
                "spark-internal",
            ),
            env={**os.environ, **spark_env()}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not port_open("127.0.0.1", STOCK_SERVER_PORT):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{STOCK_SERVER_PORT}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_server_without_the_functions_gets_them_from_the_client(
    stock_connect_server: str,
) -> None:
    session = SparkSession.builder.remote(stock_connect_server).create()
    try:
        assert loaded_jar_sha256(session) is None
        register_jvm_functions(session)  # uploads the jar into this session
        assert loaded_jar_sha256(session) == file_sha256(prereqs.ensure_udf_jar())
        row = session.sql(QUERY).select("m.trans_id", "m.amount").first()
        assert (row.trans_id, row.amount) == (42, "7.50")
    finally:
        session.stop()
    # Another session of that server has its own class loader: it uploads again.
    assert _parse_in_new_session(stock_connect_server) == (42, "7.50")
