"""docker-compose.yml and the variables: every service of the stack, pinned, healthy, wired
to what the application reads; no secret in a committed file."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from berka_assets_tests.deploy.docker_files import (
    APP_IMAGE,
    ASSIGNMENT,
    COMPOSE_FILE,
    DOCKER,
    DOCKERFILE,
    ENTRYPOINT,
    ENV_EXAMPLE,
    INSTANCE_YAML,
    MYSQL_INIT,
    PLACEHOLDER,
    REPO,
    SECRET_NAME,
    Instruction,
    berka_names,
    config_defaults,
    config_py_variables,
    env_instructions,
    interpolations,
    is_one_shot,
    load_entrypoint,
    published_ports,
    service_environment,
    source_variables,
)

# ---- compose --------------------------------------------------------------------------------


def test_compose_has_every_service_of_the_stack(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "kafka", "mysql", "s3", "hive-metastore", "spark-master", "spark-worker",
        "spark-connect", "thrift-server", "dagster-webserver", "dagster-daemon",
        "streaming-job",
    }
    assert expected <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["mysql"]["image"] == "mysql:8.4"
    assert services["s3"]["command"] == ["s3"]  # moto's server from the app image


def test_every_image_is_pinned_by_a_tag(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} is not pinned"
        if service["image"] == APP_IMAGE:
            assert service["build"]["dockerfile"] == "docker/Dockerfile", name


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shots = {name for name in services if is_one_shot(name, services)}
    assert one_shots == {"init"}
    for name, service in services.items():
        if name in one_shots:
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), name
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck without {key}"


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: use depends_on with conditions"
        for target, spec in depends_on.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec.get("condition")
            if condition == "service_completed_successfully":
                assert is_one_shot(target, services), f"{name} waits for {target} to exit"
            else:
                assert condition == "service_healthy", f"{name} -> {target}: {condition}"
                assert services[target].get("healthcheck"), f"{target} cannot become healthy"
    # The Dagster services start only after the one-off set-up (topics, bucket, database).
    for name in ("dagster-webserver", "dagster-daemon"):
        assert services[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount
            assert source in declared, f"{name}: volume {source} is not declared"
            used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    # The stateful services keep their data on named volumes (the S3 store keeps objects in
    # memory and init seeds it again).
    for name, path in (("kafka", "/var/lib/kafka/data"), ("mysql", "/var/lib/mysql"),
                       ("streaming-job", "/var/lib/berka/checkpoints")):
        mounts = compose["services"][name].get("volumes", [])
        assert any(str(v).split(":")[1] == path and not str(v).startswith(".") for v in mounts)


def test_build_contexts_and_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (COMPOSE_FILE.parent / build["context"]).resolve()
            assert context == REPO, f"{name}: build context must be the repo root"
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name}: {source} is missing"


def test_spark_containers_share_one_warehouse(services: dict[str, dict[str, Any]]) -> None:
    warehouse = {"BERKA_SPARK_WAREHOUSE": "/data/warehouse"}
    for name in ("hive-metastore", "spark-worker", "spark-connect", "thrift-server"):
        environment = service_environment(services[name])
        assert environment["BERKA_SPARK_WAREHOUSE"] == warehouse["BERKA_SPARK_WAREHOUSE"]
        assert f"warehouse:{warehouse['BERKA_SPARK_WAREHOUSE']}" in services[name]["volumes"]


def test_published_ports_match_the_config_defaults(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = config_defaults(monkeypatch)
    from berka_stack.s3 import local_s3_port

    host_kafka_port = int(defaults["BERKA_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    host_connect_port = int(defaults["BERKA_SPARK_REMOTE"].rsplit(":", 1)[1])
    expected_host_ports = {
        "mysql": int(defaults["BERKA_MYSQL_PORT"]),
        "kafka": host_kafka_port,
        "spark-connect": host_connect_port,
        "thrift-server": int(defaults["BERKA_HIVE_PORT"]),
        "s3": local_s3_port(),
    }
    app = service_environment(services["dagster-daemon"])
    in_network_ports = {
        "mysql": int(app["BERKA_MYSQL_PORT"]),
        "kafka": None,  # two listeners: checked below
        "spark-connect": int(app["BERKA_SPARK_REMOTE"].rsplit(":", 1)[1]),
        "thrift-server": int(app["BERKA_HIVE_PORT"]),
        "s3": int(app["BERKA_S3_ENDPOINT_URL"].rsplit(":", 1)[1]),
    }
    for name, host_port in expected_host_ports.items():
        ports = published_ports(services[name])
        assert host_port in [port for _, port, _ in ports], f"{name}: {ports}"
        if in_network_ports[name] is not None:
            assert (host_port, in_network_ports[name]) in [(h, c) for _, h, c in ports], name
    for name, service in services.items():
        for address, _, _ in published_ports(service):
            assert address == "127.0.0.1", f"{name} is published beyond the host's loopback"

    kafka = service_environment(services["kafka"])
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    # Host clients with the default bootstrap address, containers with the in-network one.
    assert any(listener.endswith("://" + defaults["BERKA_KAFKA_BOOTSTRAP_SERVERS"])
               for listener in advertised)
    assert any(listener.endswith("://" + app["BERKA_KAFKA_BOOTSTRAP_SERVERS"])
               for listener in advertised)


def test_in_network_hosts_are_compose_services(services: dict[str, dict[str, Any]]) -> None:
    app = service_environment(services["dagster-daemon"])
    hosts = {
        app["BERKA_MYSQL_HOST"],
        app["BERKA_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0],
        app["BERKA_SPARK_REMOTE"].removeprefix("sc://").split(":")[0],
        app["BERKA_SPARK_MASTER"].removeprefix("spark://").split(":")[0],
        app["BERKA_HIVE_HOST"],
        app["BERKA_S3_ENDPOINT_URL"].removeprefix("http://").split(":")[0],
    }
    assert hosts <= set(services), hosts - set(services)
    for host in hosts:
        assert services[host].get("hostname", host) == host


def test_kafka_cluster_id_is_a_canonical_base64_uuid(
    services: dict[str, dict[str, Any]],
) -> None:
    cluster_id = service_environment(services["kafka"])["CLUSTER_ID"]
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id


def test_spark_servers_use_the_metastore_service(services: dict[str, dict[str, Any]]) -> None:
    entrypoint = load_entrypoint()
    uri = f"spark.hadoop.hive.metastore.uris=thrift://hive-metastore:{entrypoint.METASTORE_PORT}"
    for name in ("spark-connect", "thrift-server"):
        assert uri in services[name]["command"], name
    assert services["hive-metastore"]["command"] == ["hive-metastore"]


# ---- variables --------------------------------------------------------------------------------


def test_berka_variables_in_docker_files_exist_in_the_application() -> None:
    known = source_variables()
    assert "BERKA_MYSQL_PASSWORD" in known  # the scan itself works
    for path in (COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, INSTANCE_YAML, ENTRYPOINT,
                 *MYSQL_INIT.iterdir()):
        unknown = berka_names(path.read_text()) - known
        assert not unknown, f"{path.name} uses variables the application never reads: {unknown}"


def test_every_config_variable_is_set_or_documented(
    services: dict[str, dict[str, Any]], dockerfile: list[Instruction]
) -> None:
    wanted = config_py_variables()
    assert {"BERKA_MYSQL_HOST", "BERKA_SPARK_REMOTE", "AWS_REGION"} <= wanted
    set_somewhere = set(env_instructions(dockerfile))
    for service in services.values():
        set_somewhere |= set(service_environment(service))
    documented = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\b", ENV_EXAMPLE.read_text()))
    missing = wanted - set_somewhere - documented
    assert not missing, f"neither set in compose/Dockerfile nor in .env.example: {missing}"


def test_compose_defaults_are_the_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = config_defaults(monkeypatch)
    checked = 0
    for name, operator, value in interpolations(COMPOSE_FILE.read_text()):
        if operator in (":-", "-") and name in defaults:
            assert value == defaults[name], f"{name}: compose {value!r}, config {defaults[name]!r}"
            checked += 1
    assert checked >= 10


def test_env_example_lists_the_required_secrets_as_placeholders() -> None:
    assigned: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            (commented if match.group(1) else assigned)[match.group(2)] = match.group(3)
    required = {name for name, op, _ in interpolations(COMPOSE_FILE.read_text()) if "?" in op}
    assert required, "compose requires no variable at all?"
    assert required <= set(assigned), f"missing from .env.example: {required - set(assigned)}"
    for name, value in assigned.items():
        if SECRET_NAME.search(name):
            assert value == PLACEHOLDER, f"{name} must be the placeholder {PLACEHOLDER!r}"
        assert not looks_like_a_secret(value), f"{name}={value!r} looks like a real secret"
    # The optional lines show config.py's defaults.
    compose_defaults = {n: v for n, op, v in interpolations(COMPOSE_FILE.read_text()) if "-" in op}
    for name, value in commented.items():
        assert compose_defaults.get(name) == value, f"{name}: .env.example shows {value!r}"


def looks_like_a_secret(value: str) -> bool:
    """Shaped like a generated credential (token_urlsafe, `openssl rand -base64`): long, only
    base64/url-safe characters, and a random mix of lower case, upper case and digits."""
    value = value.strip().strip("'\"")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_+/=-]{15,}", value):
        return False
    lower, upper, digits = (len(re.findall(p, value)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return lower >= 3 and upper >= 3 and digits >= 2


def test_secret_detector_flags_generated_values() -> None:
    assert looks_like_a_secret("Xq3_vLr9PaT0kWm2sNb7Yc")  # secrets.token_urlsafe(16)
    assert looks_like_a_secret("tR4+bQ9/zW2mK8pL1xV5nA==")  # openssl rand -base64 16
    for harmless in (PLACEHOLDER, "berka_app", "--max-allowed-packet=64M", "PLAINTEXT_HOST",
                     "jdbc:mysql://mysql:3306/berka", "org.apache.spark.deploy.master.Master"):
        assert not looks_like_a_secret(harmless), harmless


# ---- no secret in a committed file ------------------------------------------------------------


def test_compose_holds_no_password_literal(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in service_environment(service).items():
            if SECRET_NAME.search(key):
                match = re.fullmatch(r"\$\{([A-Z][A-Z0-9_]*)(?::?\?[^}]*)?\}", value)
                assert match, f"{name}.{key} must be a required ${{VAR:?}} reference: {value!r}"
        text = json.dumps({k: v for k, v in service.items() if k != "environment"})
        assert not re.search(r"(?i)(password|secret)\s*[=:]\s*\w", text), name


def test_no_secret_in_docker_files(dockerfile: list[Instruction]) -> None:
    for instruction in dockerfile:
        if instruction.command in ("ENV", "ARG"):
            for word in instruction.words():
                assert not SECRET_NAME.search(word.partition("=")[0]), (
                    f"Dockerfile line {instruction.line}: a secret in the image ({word})"
                )
    # The Kafka cluster id looks random but is a public identifier (checked to be a UUID above).
    cluster_id = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["kafka"]["environment"][
        "CLUSTER_ID"
    ]
    for path in (DOCKERFILE, COMPOSE_FILE, INSTANCE_YAML, ENV_EXAMPLE, ENTRYPOINT,
                 *MYSQL_INIT.iterdir()):
        text = path.read_text()
        literal = re.search(r"IDENTIFIED BY '(?!\$\()[^']", text)
        assert not literal, f"{path.name}: a literal MySQL password"
        for key, value in ASSIGNMENT.findall(text):
            if value != cluster_id and not value.startswith("$"):
                assert not looks_like_a_secret(value), f"{path.name}: {key}={value}"


def test_local_secrets_never_leak_into_docker_files() -> None:
    local = REPO / ".env"
    if not local.exists():
        pytest.skip("no local .env (berka-stack up writes it)")
    values = [
        line.split("=", 1)[1].strip()
        for line in local.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]
    files = [p for p in DOCKER.rglob("*") if p.is_file()] + [REPO / "docs" / "real-clusters.md"]
    for path in files:
        text = path.read_text(errors="replace")
        for value in values:
            if len(value) >= 8:
                assert value not in text, f"a local secret appears in {path.relative_to(REPO)}"


def test_git_ignores_the_real_env_file() -> None:
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO, check=False)
    assert result.returncode == 0, "docker/.env would be committed"
    result = subprocess.run(["git", "check-ignore", "-q", "docker/.env.example"], cwd=REPO,
                            check=False)
    assert result.returncode == 1, "docker/.env.example must stay in git"
