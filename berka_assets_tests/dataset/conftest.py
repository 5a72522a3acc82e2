"""Fixtures for the Berka data layer: the shipped real files and a small generated set."""

from __future__ import annotations

from pathlib import Path

import pytest

from berka_core.dataset.generator import GenerationResult, generate

REAL_DATA = Path(__file__).resolve().parents[2] / "data" / "berka"
TEST_SCALE = 0.02  # 90 accounts, ~21k trans rows: fast, yet large enough for the mix checks


@pytest.fixture(scope="session")
def real_dir() -> Path:
    assert (REAL_DATA / "account.asc").is_file(), f"real Berka sample missing in {REAL_DATA}"
    return REAL_DATA


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GenerationResult:
    return generate(tmp_path_factory.mktemp("berka_generated"), scale=TEST_SCALE, seed=7)
