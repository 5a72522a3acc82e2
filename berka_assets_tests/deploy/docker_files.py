"""docker/ read as files, without a Docker daemon: paths, the variables the application reads,
a Dockerfile parser and the build-context filter, shared by the deploy tests."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

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
