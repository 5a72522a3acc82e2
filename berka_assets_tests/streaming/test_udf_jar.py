"""A run never builds the jar: it finds it, or says which set-up command builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from berka_core.spark_jobs import udf_jar


def test_a_missing_or_stale_jar_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERKA_VAR_DIR", str(tmp_path))
    with pytest.raises(udf_jar.UdfJarMissing, match="make bootstrap"):
        udf_jar.built_udf_jar()
    folder = udf_jar.udf_jar_dir()
    folder.mkdir(parents=True)
    (folder / udf_jar.UDF_JAR_NAME).write_bytes(b"jar")
    (folder / ".complete").write_text("built from other sources")
    with pytest.raises(udf_jar.UdfJarMissing, match="older sources"):
        udf_jar.built_udf_jar()
    (folder / ".complete").write_text(udf_jar.udf_fingerprint())
    assert udf_jar.built_udf_jar() == folder / udf_jar.UDF_JAR_NAME
