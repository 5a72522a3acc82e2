"""Fixtures of the deploy tests: docker/ parsed once per module."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from berka_assets_tests.deploy.docker_files import (
    COMPOSE_FILE,
    DOCKERFILE,
    Instruction,
    parse_dockerfile,
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())

