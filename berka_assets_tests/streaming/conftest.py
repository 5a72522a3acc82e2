"""The sample's reference tables in MySQL's default database `berka`, loaded once per session
for every integration test here: a test then passes alone as well as after the others."""

from __future__ import annotations

import pytest

from berka_core.config import Settings


@pytest.fixture(scope="session")
def sample_reference(stack: Settings) -> None:
    from berka_assets_tests.streaming.harness import Pipeline
    from berka_assets_tests.streaming.test_exactly_once import SAMPLE

    Pipeline(stack, SAMPLE).load_reference()


@pytest.fixture(autouse=True)
def _reference_for_integration_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("integration") is not None:
        request.getfixturevalue("sample_reference")
