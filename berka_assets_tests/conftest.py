"""Session fixtures: the real local stack, started when down and stopped only if we started it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from berka_assets.config import Settings, load_secrets_into_environment, load_settings
from berka_assets.stack import cli


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Every service of berka-stack, up and healthy, for the whole session."""
    already_up = {service.name for service in cli.all_services() if service.status().up}
    started = [s.name for s in cli.all_services() if s.name not in already_up]
    if started:
        cli.up(started, echo=lambda line: print(line, flush=True))
    load_secrets_into_environment()
    yield load_settings()
    if started and not os.environ.get("BERKA_KEEP_STACK"):
        cli.down(started, echo=lambda line: None)
