"""Session fixtures: the real local stack, started when down and stopped only if we started it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from berka_core.config import Settings, get_settings, load_secrets_into_environment
from berka_stack import cli


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whatever needs the stack is an integration test, whether or not its module says so:
    `-m "not integration"` then never starts a server. Tests under cluster/ are `cluster`
    and `slow`."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        if "/cluster/" in str(item.path):
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)
    # The cluster tests last, together: under a time budget they are the first left out.
    items.sort(key=lambda item: item.get_closest_marker("cluster") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """With BERKA_TEST_DEADLINE (epoch seconds; CI sets it inside its time limit), a slow
    test that would start after it is skipped, saying so: the rest still runs, and the run
    ends inside the limit instead of being cut off with nothing reported."""
    deadline = os.environ.get("BERKA_TEST_DEADLINE")
    if deadline and item.get_closest_marker("slow") and time.time() > float(deadline):
        pytest.skip("CI time budget used up (BERKA_TEST_DEADLINE): run `make test` to run it")


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Every service of berka-stack, up and healthy, for the whole session."""
    already_up = {service.name for service in cli.all_services() if service.status().up}
    started = [s.name for s in cli.all_services() if s.name not in already_up]
    if started:
        cli.up(started, echo=lambda line: print(line, flush=True))
    load_secrets_into_environment()
    yield get_settings()
    if started and not os.environ.get("BERKA_KEEP_STACK"):
        close_spark_connect_clients()
        cli.down(started, echo=lambda line: None)


def close_spark_connect_clients() -> None:
    """Close every Spark Connect client this process still holds, without calling its server.

    pyspark has each open client call its server at interpreter exit, and retry for about ten
    minutes per call when the server is gone: after the stack stops, pytest would hang there.
    """
    import gc

    from pyspark.sql.connect.client.core import SparkConnectClient

    for candidate in gc.get_objects():
        if isinstance(candidate, SparkConnectClient) and not candidate.is_closed:
            try:
                candidate.close()
            except Exception:  # noqa: BLE001 - closing is best effort; the channel may be gone
                pass
