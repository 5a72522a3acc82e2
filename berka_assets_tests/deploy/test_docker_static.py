"""docker/ checked without a Docker daemon: compose, Dockerfile, instance config, init scripts.

Everything is read from the files and compared with what the application really reads
(berka_core/config.py and the stack modules), so a renamed variable, a moved port, a missing
file or a password written into a committed file fails here rather than at `docker compose up`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
ENV_EXAMPLE = DOCKER / ".env.example"
INSTANCE_YAML = DOCKER / "dagster.yaml"
MYSQL_INIT = DOCKER / "mysql-init"
ENTRYPOINT = DOCKER / "entrypoint.py"
CONFIG_PY = REPO / "berka_core" / "config.py"

APP_IMAGE = "berka-stream:local"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE_KEY")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
PLACEHOLDER = "change-me"
# `NAME=value` or `name: value` at the start of a line (commented or not), the value unquoted.
ASSIGNMENT = re.compile(r"(?m)^\s*#?\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*[\"']?([^\s\"'#]+)")


# ---- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def berka_names(text: str) -> set[str]:
    return set(re.findall(r"\bBERKA_[A-Z0-9_]*[A-Z0-9]\b", text))


def config_py_variables() -> set[str]:
    """Every variable berka_core/config.py reads: the settings' fields and *_env names."""
    from berka_core import config

    return set(config.variable_defaults()) | berka_names(CONFIG_PY.read_text())


def source_variables() -> set[str]:
    """Every BERKA_* name the application packages mention (config.py and the stack modules)."""
    names: set[str] = set()
    for package in ("berka_core", "berka_assets", "berka_stack", "spark_streaming"):
        for path in (REPO / package).rglob("*.py"):
            names |= berka_names(path.read_text())
    return names


def config_defaults(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """(variable -> default) as config.py's settings ask for them, with a clean environment."""
    from berka_core import config

    for name in list(os.environ):
        if name.startswith("BERKA_") or name.startswith("AWS_"):
            monkeypatch.delenv(name, raising=False)
    return config.variable_defaults()


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def interpolations(text: str) -> list[tuple[str, str, str]]:
    return INTERPOLATION.findall(text)


def is_one_shot(name: str, services: dict[str, dict[str, Any]]) -> bool:
    """A job that others wait to finish (condition service_completed_successfully)."""
    if str(services[name].get("restart", "no")) != "no":
        return False
    return any(
        (other.get("depends_on") or {}).get(name, {}).get("condition")
        == "service_completed_successfully"
        for other in services.values()
        if isinstance(other.get("depends_on"), dict)
    )


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each `ports:` entry."""
    result = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        assert len(parts) == 3, f"publish on an explicit host address: {entry!r}"
        result.append((parts[0], int(parts[1]), int(parts[2])))
    return result


def load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("berka_docker_entrypoint", ENTRYPOINT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- Dockerfile parser --------------------------------------------------------------------------


@dataclass
class Instruction:
    command: str
    arguments: str
    stage: int
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    def words(self) -> list[str]:
        if self.arguments.lstrip().startswith("["):
            return json.loads(self.arguments)
        return shlex.split(self.arguments)


KNOWN_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions, continuation lines joined, comments dropped, leading --flags split off."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    stage = -1
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit between continuation lines too
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        logical = " ".join(part for part in buffer if part)
        buffer = []
        command, _, arguments = logical.partition(" ")
        command = command.upper()
        assert command in KNOWN_INSTRUCTIONS, f"line {start}: unknown instruction {command}"
        if command == "FROM":
            stage += 1
        flags: dict[str, str] = {}
        while command in ("COPY", "ADD", "RUN", "FROM") and arguments.startswith("--"):
            flag, _, arguments = arguments.partition(" ")
            key, _, value = flag[2:].partition("=")
            flags[key] = value
            arguments = arguments.strip()
        instructions.append(Instruction(command, arguments, stage, start, flags))
    assert not buffer, "the Dockerfile ends inside a continuation line"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def stages(instructions: list[Instruction]) -> list[tuple[str, str | None]]:
    """(image, alias) of every FROM."""
    result = []
    for instruction in instructions:
        if instruction.command == "FROM":
            words = instruction.words()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append((words[0], alias))
    return result


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(instruction.stage for instruction in instructions)
    return [instruction for instruction in instructions if instruction.stage == last]


def env_instructions(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in final_stage(instructions):
        if instruction.command == "ENV":
            for word in instruction.words():
                key, _, value = word.partition("=")
                values[key] = value
    return values


def dockerignore_patterns() -> list[str]:
    return [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatch(Path(prefix).name, pattern[3:]):
                return True
    return False


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


# ---- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_parser_reads_instructions() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a:1 AS b\nRUN x \\\n  # note\n  && y\n"
        "COPY --from=b --chmod=755 /s /d\nFROM c:2\nUSER 10\n"
    )
    assert [i.command for i in parsed] == ["FROM", "RUN", "COPY", "FROM", "USER"]
    assert parsed[1].arguments == "x && y"
    assert parsed[2].flags == {"from": "b", "chmod": "755"} and parsed[2].words() == ["/s", "/d"]
    assert [i.stage for i in parsed] == [0, 0, 0, 1, 1]
    with pytest.raises(AssertionError):
        parse_dockerfile("FROM a:1\nFRUM b\n")


def test_dockerfile_bases_are_pinned(dockerfile: list[Instruction]) -> None:
    images = stages(dockerfile)
    assert images[-1][0] == "python:3.11-slim-bookworm"
    assert images[0] == ("maven:3.9-eclipse-temurin-17", "jars")
    for image, _ in images:
        assert ":" in image and not image.endswith(":latest") and "$" not in image, image
    setup = (REPO / "setup.py").read_text()
    major, minor = re.search(r"python:(\d+)\.(\d+)", images[-1][0]).groups()
    low, high = re.search(r'python_requires=">=(\d+\.\d+),<(\d+\.\d+)"', setup).groups()
    version = (int(major), int(minor))
    assert tuple(map(int, low.split("."))) <= version < tuple(map(int, high.split(".")))


def test_every_copy_source_is_in_the_build_context(dockerfile: list[Instruction]) -> None:
    aliases = [alias for _, alias in stages(dockerfile)]
    patterns = dockerignore_patterns()
    copies = [i for i in dockerfile if i.command in ("COPY", "ADD")]
    assert copies
    for instruction in copies:
        *sources, _destination = instruction.words()
        if "from" in instruction.flags:
            assert instruction.flags["from"] in aliases[: instruction.stage], instruction.line
            continue
        for source in sources:
            assert (REPO / source).exists(), f"line {instruction.line}: {source} is missing"
            assert not ignored(source, patterns), f"line {instruction.line}: {source} ignored"


def test_build_context_excludes_local_state_and_secrets() -> None:
    patterns = dockerignore_patterns()
    for path in (".env", "docker/.env", ".venv", "var/jars/spark/x.jar", ".git/config",
                 "berka_assets/__pycache__/config.cpython-311.pyc"):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    for path in ("berka_core/config.py", "constraints.txt", "jvm/spark/pom.xml"):
        assert not ignored(path, patterns), path


def test_python_packages_come_from_the_lock_file(dockerfile: list[Instruction]) -> None:
    runtime = final_stage(dockerfile)
    pip = [i for i in runtime if i.command == "RUN" and "pip install" in i.arguments]
    assert len(pip) == 1
    assert re.search(r"pip install (.* )?-c constraints\.txt\b", pip[0].arguments)
    copied_before = [
        word
        for i in runtime
        if i.command == "COPY" and i.line < pip[0].line
        for word in i.words()[:-1]
    ]
    assert {"setup.py", "constraints.txt", "berka_core", "berka_assets", "berka_stack",
            "spark_streaming"} <= set(copied_before)


def test_runtime_runs_as_a_non_root_user(dockerfile: list[Instruction]) -> None:
    runtime = final_stage(dockerfile)
    users = [i for i in runtime if i.command == "USER"]
    assert users, "the image runs as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(i.arguments for i in runtime if i.command == "RUN")
    assert re.search(rf"useradd .*\b{user}\b", created), f"user {user} is never created"
    last_run = max(i.line for i in runtime if i.command == "RUN")
    assert users[-1].line > last_run, "a RUN after USER would run as the non-root user"


def test_jars_are_where_the_application_looks_for_them(dockerfile: list[Instruction]) -> None:
    builder = [i for i in dockerfile if i.stage == 0 and i.command == "RUN"]
    maven = " ".join(i.arguments for i in builder)
    assert "mvn" in maven and "-f jvm/spark/pom.xml" in maven
    assert "dependency:copy-dependencies" in maven
    output = re.search(r"-DoutputDirectory=(\S+)", maven).group(1)
    # The marker prereqs.ensure_jars() accepts: the pom's sha256 hex digest, no newline.
    assert f"sha256sum jvm/spark/pom.xml | cut -d ' ' -f 1 | tr -d '\\n' > {output}/.complete" in (
        maven
    )
    copy = next(i for i in dockerfile if i.command == "COPY" and i.flags.get("from") == "jars")
    source, destination = copy.words()
    assert source == output
    var_dir = env_instructions(dockerfile)["BERKA_VAR_DIR"]
    assert destination == f"{var_dir}/jars/spark"  # = prereqs.jar_dir("spark")
    assert any(
        i.command == "COPY" and i.words() == ["jvm/spark/pom.xml", "./jvm/spark/pom.xml"]
        for i in final_stage(dockerfile)
    ), "prereqs fingerprints jvm/spark/pom.xml beside the package"


def test_marker_written_like_the_dockerfile_satisfies_prereqs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from berka_stack import prereqs

    jars = tmp_path / "jars" / "spark"
    jars.mkdir(parents=True)
    (jars / "connector.jar").write_bytes(b"")
    digest = hashlib.sha256((REPO / "jvm" / "spark" / "pom.xml").read_bytes()).hexdigest()
    (jars / ".complete").write_text(digest)  # what `sha256sum | cut | tr -d '\n'` writes
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    monkeypatch.setattr(prereqs.shutil, "which", lambda _: None)  # no Maven: must not need it
    assert prereqs.jars("spark") == [jars / "connector.jar"]


def test_image_entrypoint_healthcheck_and_dagster_home(dockerfile: list[Instruction]) -> None:
    runtime = final_stage(dockerfile)
    env = env_instructions(dockerfile)
    commands = {i.command: i for i in runtime}
    copies = {tuple(i.words()) for i in runtime if i.command == "COPY"}
    assert ("docker/entrypoint.py", "/usr/local/bin/berka-container") in copies
    assert commands["ENTRYPOINT"].words() == ["berka-container"]
    assert "berka-container" in commands["HEALTHCHECK"].arguments
    assert ("docker/dagster.yaml", f"{env['DAGSTER_HOME']}/dagster.yaml") in copies
    installs = " ".join(i.arguments for i in runtime if i.command == "RUN")
    assert "openjdk-17-jre-headless" in installs
    assert env["BERKA_SPARK_WAREHOUSE"] == "/data/warehouse"


# ---- Dagster instance -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance_yaml() -> dict[str, Any]:
    return yaml.safe_load(INSTANCE_YAML.read_text())


def test_instance_config_validates_against_dagster_schema(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(INSTANCE_YAML, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert "mysql" in config["storage"]
    assert config["run_queue"]["max_concurrent_runs"] >= 1


def test_instance_storage_is_mysql_from_the_environment(
    instance_yaml: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._config import process_config
    from dagster._core.storage.config import mysql_config
    from dagster_mysql.utils import mysql_url_from_config

    database = instance_yaml["storage"]["mysql"]["mysql_db"]
    assert database["password"] == {"env": "BERKA_DAGSTER_MYSQL_PASSWORD"}
    assert database["hostname"] == {"env": "BERKA_MYSQL_HOST"}
    assert database["port"] == {"env": "BERKA_MYSQL_PORT"}
    monkeypatch.setenv("BERKA_DAGSTER_MYSQL_PASSWORD", "p@ss:w/rd")
    monkeypatch.setenv("BERKA_MYSQL_HOST", "mysql")
    monkeypatch.setenv("BERKA_MYSQL_PORT", "3306")
    resolved = process_config(mysql_config(), instance_yaml["storage"]["mysql"])
    assert resolved.success, resolved.errors
    url = mysql_url_from_config(resolved.value)
    assert url == "mysql+mysqlconnector://dagster:p%40ss%3Aw%2Frd@mysql:3306/dagster"


def test_instance_matches_the_repo_instance_apart_from_storage(
    instance_yaml: dict[str, Any],
) -> None:
    repo = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "run_queue" in repo
    storage_keys = {"storage", "run_storage", "event_log_storage", "schedule_storage"}
    for key, value in repo.items():
        if key not in storage_keys:
            assert instance_yaml.get(key) == value, f"docker/dagster.yaml differs in {key}"
    extra = set(instance_yaml) - set(repo) - storage_keys
    assert not extra, f"settings only the containers have: {extra}"


def test_dagster_mysql_user_matches_the_local_stack(instance_yaml: dict[str, Any]) -> None:
    database = instance_yaml["storage"]["mysql"]["mysql_db"]
    mariadb = (REPO / "berka_stack" / "mariadb.py").read_text()
    assert '("dagster", passwords["BERKA_DAGSTER_MYSQL_PASSWORD"], "dagster"' in mariadb
    assert database["username"] == "dagster" and database["db_name"] == "dagster"


# ---- MySQL initialisation ---------------------------------------------------------------------


def run_init_script(environment: dict[str, str]) -> str:
    script = MYSQL_INIT / "02-users.sh"
    program = (
        "set -eo pipefail\n"
        'docker_process_sql() { printf -- "-- args: %s\\n" "$*"; cat; }\n'
        f". {shlex.quote(str(script))}\n"
    )
    result = subprocess.run(
        ["bash", "-c", program], env={"PATH": os.environ["PATH"], **environment},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_mysql_init_creates_least_privilege_users(monkeypatch: pytest.MonkeyPatch) -> None:
    from berka_core.config import MySQLSettings
    from berka_stack.mariadb import APP_PRIVILEGES

    config_defaults(monkeypatch)  # a clean environment
    defaults = MySQLSettings()
    tricky = "it's\\a\"pa$$"
    sql = run_init_script({"BERKA_MYSQL_PASSWORD": tricky, "BERKA_METASTORE_PASSWORD": "m-pw",
                           "BERKA_DAGSTER_MYSQL_PASSWORD": "d-pw"})
    assert "-- args: --database=mysql" in sql
    quoted = tricky.replace("\\", "\\\\").replace("'", "''")
    assert f"'{defaults.user}'@'%' IDENTIFIED BY '{quoted}';" in sql
    assert f"'{defaults.metastore_user}'@'%' IDENTIFIED BY 'm-pw';" in sql
    assert "'dagster'@'%' IDENTIFIED BY 'd-pw';" in sql
    assert (f"GRANT {APP_PRIVILEGES} ON `{defaults.database}`.* TO '{defaults.user}'@'%';"
            in sql)
    assert (f"GRANT ALL PRIVILEGES ON `{defaults.metastore_database}`.* "
            f"TO '{defaults.metastore_user}'@'%';" in sql)
    assert "ON *.*" not in sql and "WITH GRANT OPTION" not in sql
    assert (f"CREATE DATABASE IF NOT EXISTS `{defaults.metastore_database}` "
            "CHARACTER SET latin1 COLLATE latin1_bin;" in sql)


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_mysql_init_follows_renamed_databases_and_refuses_missing_passwords() -> None:
    sql = run_init_script({"BERKA_MYSQL_PASSWORD": "a", "BERKA_METASTORE_PASSWORD": "b",
                           "BERKA_DAGSTER_MYSQL_PASSWORD": "c", "BERKA_MYSQL_DATABASE": "ref_db",
                           "BERKA_MYSQL_USER": "app"})
    assert "CREATE DATABASE IF NOT EXISTS `ref_db` CHARACTER SET utf8mb4;" in sql
    assert "ON `ref\\_db`.* TO 'app'@'%';" in sql  # _ is a wildcard in GRANT ... ON
    script = MYSQL_INIT / "02-users.sh"
    result = subprocess.run(
        ["bash", "-c", f"set -eo pipefail; docker_process_sql() {{ cat; }}; . {script}"],
        env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0 and "BERKA_MYSQL_PASSWORD is not set" in result.stderr


def test_mysql_init_files(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from berka_core.config import MySQLSettings

    files = sorted(path.name for path in MYSQL_INIT.iterdir())
    assert files == ["01-databases.sql", "02-users.sh"]
    # Not executable: the entrypoint then sources it, which provides docker_process_sql.
    assert not os.access(MYSQL_INIT / "02-users.sh", os.X_OK)
    sql = (MYSQL_INIT / "01-databases.sql").read_text()
    config_defaults(monkeypatch)  # a clean environment
    defaults = MySQLSettings()
    for database in (defaults.database, defaults.metastore_database, "dagster"):
        assert f"CREATE DATABASE IF NOT EXISTS `{database}`" in sql
    assert (f"`{defaults.metastore_database}` CHARACTER SET latin1 COLLATE latin1_bin;" in sql)
    assert "IDENTIFIED" not in sql and "GRANT" not in sql  # users come from 02-users.sh
    # Every variable the script reads is given to the mysql service.
    mysql_env = set(service_environment(services["mysql"]))
    assert berka_names((MYSQL_INIT / "02-users.sh").read_text()) <= mysql_env
    assert "./mysql-init:/docker-entrypoint-initdb.d:ro" in services["mysql"]["volumes"]
    assert service_environment(services["mysql"])["MYSQL_ROOT_HOST"] == "localhost"


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

    command, health = entrypoint.thrift_server_command(extra)
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
