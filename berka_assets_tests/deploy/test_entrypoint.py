"""docker/entrypoint.py: each container role runs what `berka-stack up` runs locally; and the
docs name only variables that exist."""

from __future__ import annotations

import hashlib
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from berka_assets_tests.deploy.docker_files import (
    APP_IMAGE,
    COMPOSE_FILE,
    REPO,
    Instruction,
    berka_names,
    config_defaults,
    env_instructions,
    final_stage,
    load_entrypoint,
    service_environment,
    source_variables,
)

# ---- entrypoint ----------------------------------------------------------------------------


@pytest.fixture
def app_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The image's environment in miniature: a var dir with resolved jars, compose's settings."""
    config_defaults(monkeypatch)
    var = tmp_path / "var"
    jars = var / "jars" / "spark"
    jars.mkdir(parents=True)
    (jars / "mariadb-java-client.jar").write_bytes(b"")
    pom = REPO / "jvm" / "spark" / "pom.xml"
    (jars / ".complete").write_text(hashlib.sha256(pom.read_bytes()).hexdigest())
    monkeypatch.setenv("BERKA_VAR_DIR", str(var))
    from berka_stack import prereqs

    udf = prereqs.jar_dir("udf")  # as the image has it: built, with its marker
    udf.mkdir(parents=True)
    (udf / prereqs.UDF_JAR_NAME).write_bytes(b"the functions' jar")
    (udf / ".complete").write_text(prereqs.udf_fingerprint())
    monkeypatch.setenv("BERKA_SECRETS_FILE", str(tmp_path / "absent.env"))
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for key, value in service_environment(compose["services"]["spark-connect"]).items():
        if "${" not in value:
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("BERKA_MYSQL_DATABASE", "berka")
    monkeypatch.setenv("BERKA_METASTORE_DATABASE", "metastore")
    monkeypatch.setenv("BERKA_METASTORE_USER", "hive")
    monkeypatch.setenv("BERKA_METASTORE_PASSWORD", "s3cr&t<'\">")
    return var


def test_metastore_configuration_comes_from_spark_defaults(app_environment: Path) -> None:
    entrypoint = load_entrypoint()
    properties = entrypoint.metastore_properties()
    url = properties["javax.jdo.option.ConnectionURL"]
    assert url.startswith("jdbc:mariadb://mysql:3306/metastore?useMysqlMetadata=true")
    assert url.endswith("&allowPublicKeyRetrieval=true")
    assert properties["javax.jdo.option.ConnectionUserName"] == "hive"
    assert properties["javax.jdo.option.ConnectionPassword"] == "s3cr&t<'\">"
    assert properties["hive.metastore.warehouse.dir"] == "file:///data/warehouse"
    assert properties["datanucleus.connectionPoolingType"] == "HikariCP"
    assert properties["datanucleus.autoStartMechanism"] == "Classes"
    assert "hive.metastore.uris" not in properties
    # The XML round-trips, special characters included.
    root = ET.fromstring(entrypoint.hive_site_xml(properties))
    parsed = {p.findtext("name"): p.findtext("value") for p in root.iter("property")}
    assert parsed == properties


def test_hive_metastore_command(app_environment: Path) -> None:
    entrypoint = load_entrypoint()
    command, health = entrypoint.hive_metastore_command([])
    assert command[-3:] == [entrypoint.METASTORE_MAIN, "-p", str(entrypoint.METASTORE_PORT)]
    classpath = command[command.index("-cp") + 1].split(":")
    assert classpath[0] == str(app_environment / "hive-conf")
    assert classpath[-1] == str(app_environment / "jars" / "spark" / "*")
    site = app_environment / "hive-conf" / "hive-site.xml"
    assert site.stat().st_mode & 0o077 == 0, "hive-site.xml holds a password: owner only"
    assert health == {"kind": "tcp", "host": "127.0.0.1", "port": entrypoint.METASTORE_PORT}


def test_spark_server_commands_match_the_local_stack(app_environment: Path) -> None:
    from berka_stack.spark import SparkConnectServer

    entrypoint = load_entrypoint()
    stack_source = (REPO / "berka_stack" / "spark.py").read_text()
    assert entrypoint.THRIFT_MAIN in stack_source

    extra = ["--conf", "spark.hadoop.hive.metastore.uris=thrift://hive-metastore:9083"]
    command, health = entrypoint.spark_connect_command(extra)
    # The local stack's driver program, with the functions' jar on the class path.
    assert command[-1] == str(REPO / "berka_stack" / "spark_connect_main.py")
    assert command[-3:-1] == extra
    jars = next(c for c in command if c.startswith("spark.jars=")).split("=", 1)[1].split(",")
    assert jars[0] == str(app_environment / "jars" / "spark" / "mariadb-java-client.jar")
    assert Path(jars[-1]).parent == app_environment / "spark-conf"
    assert Path(jars[-1]).read_bytes() == b"the functions' jar"
    port = SparkConnectServer().port
    assert port == 15002 and f"spark.connect.grpc.binding.port={port}" in command
    assert "spark.connect.grpc.binding.address=0.0.0.0" in command
    assert health["port"] == port
    defaults = (app_environment / "spark-conf" / "spark-defaults.conf").read_text()
    assert "spark.master spark://spark-master:7077" in defaults

    assert "-Xms2g -XX:+AlwaysPreTouch" in command  # the heap committed at start

    command, health = entrypoint.thrift_server_command(extra)
    assert "-Xms1g -XX:+AlwaysPreTouch" in command
    at = command.index("spark-internal")
    assert command[at - 2 : at] == extra
    assert "hive.server2.thrift.port=10000" in command
    assert "hive.server2.thrift.bind.host=0.0.0.0" in command
    assert health["port"] == 10000


def test_streaming_job_role_submits_the_job_of_the_repository(
    app_environment: Path, services: dict[str, dict[str, Any]], dockerfile: list[Instruction],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from berka_stack.spark import STREAMING_UI_PORT

    entrypoint = load_entrypoint()
    monkeypatch.setenv("BERKA_STREAMING_ARGS", "--trigger-seconds 1")
    command, health = entrypoint.streaming_job_command([])
    job = REPO / "spark_streaming" / "job.py"
    assert command[command.index(str(job)) + 1:] == ["--trigger-seconds", "1"]
    assert health == {"kind": "tcp", "host": "127.0.0.1", "port": STREAMING_UI_PORT}
    assert services["streaming-job"]["command"] == ["streaming-job"]
    copies = [i.arguments for i in dockerfile if i.command == "COPY"]
    assert any(args.split()[:2] == ["spark_streaming", "./spark_streaming"] for args in copies)


def test_spark_cluster_commands(app_environment: Path) -> None:
    entrypoint = load_entrypoint()
    assert entrypoint.master_address("spark://spark-master:7077") == ("spark-master", 7077)
    with pytest.raises(SystemExit):
        entrypoint.master_address("local[2]")
    command, health = entrypoint.spark_master_command([])
    assert entrypoint.MASTER_MAIN in command and command[command.index("--port") + 1] == "7077"
    assert health == {"kind": "tcp", "host": "spark-master", "port": 7077}
    command, health = entrypoint.spark_worker_command([])
    assert command[-1] == "spark://spark-master:7077"
    assert health["master_ui"] == "http://spark-master:8080/json/"


def test_compose_roles_exist_in_the_entrypoint(services: dict[str, dict[str, Any]]) -> None:
    entrypoint = load_entrypoint()
    for name, service in services.items():
        if service["image"] != APP_IMAGE:
            continue
        role = service["command"][0]
        assert role in entrypoint.ROLES or role == "init", f"{name}: unknown role {role}"
        if role in entrypoint.ROLES:
            assert service["healthcheck"]["test"] == ["CMD", "berka-container", "health"], name


def test_health_checks_report_the_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entrypoint = load_entrypoint()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert entrypoint.check({"kind": "tcp", "host": "127.0.0.1", "port": port})
    assert not entrypoint.check({"kind": "tcp", "host": "127.0.0.1", "port": port})
    assert entrypoint.check({"kind": "command", "argv": ["true"]})
    assert not entrypoint.check({"kind": "command", "argv": ["false"]})
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    assert entrypoint.health([]) == 1  # no role recorded: not healthy


# ---- docs ---------------------------------------------------------------------------------------


def test_real_clusters_doc_names_only_variables_that_exist() -> None:
    doc = (REPO / "docs" / "real-clusters.md").read_text()
    named = berka_names(doc)
    assert {"BERKA_S3_ENDPOINT_URL", "BERKA_KAFKA_SECURITY_PROTOCOL", "BERKA_SPARK_MASTER",
            "BERKA_SPARK_REMOTE", "BERKA_MYSQL_HOST"} <= named
    unknown = named - source_variables()
    assert not unknown, f"docs/real-clusters.md names variables nothing reads: {unknown}"
    assert "## Not yet configurable" in doc


def test_the_udf_jar_is_built_in_the_image_and_marked_as_current(
    dockerfile: list[Instruction], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from berka_stack import prereqs

    builder = " ".join(i.arguments for i in dockerfile if i.stage == 0 and i.command == "RUN")
    assert "-f jvm/udf/pom.xml" in builder and "/opt/berka/jars/udf/" in builder
    var_dir = env_instructions(dockerfile)["BERKA_VAR_DIR"]
    runtime = final_stage(dockerfile)
    assert any(i.command == "COPY" and i.flags.get("from") == "jars"
               and i.words() == ["/opt/berka/jars/udf", f"{var_dir}/jars/udf"] for i in runtime)
    assert any(i.command == "COPY" and i.words() == ["jvm/udf", "./jvm/udf"] for i in runtime)
    marker = next(i for i in runtime if i.command == "RUN" and "udf_fingerprint" in i.arguments)
    # Run what the image runs, here: the marker it writes must satisfy ensure_udf_jar.
    jars = tmp_path / "jars" / "udf"
    jars.mkdir(parents=True)
    (jars / prereqs.UDF_JAR_NAME).write_bytes(b"")
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    code = re.search(r'python -c "(.*)"', marker.arguments, re.S).group(1).replace("\\\n", "")
    exec(code, {})  # the Dockerfile's own one-liner
    monkeypatch.setattr(prereqs.shutil, "which", lambda _: None)  # no Maven: must not need it
    assert prereqs.ensure_udf_jar() == jars / prereqs.UDF_JAR_NAME
