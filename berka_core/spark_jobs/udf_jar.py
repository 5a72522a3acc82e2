"""Where the pipeline's own Spark functions (jvm/udf) are, once set-up built them.

Runtime code only finds the jar: building it (Maven) is set-up's job (`make bootstrap`,
`berka-stack up`, the image's Maven stage), never a run's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from berka_core.config import REPO_ROOT, var_dir

UDF_PROJECT = REPO_ROOT / "jvm" / "udf"
UDF_JAR_NAME = "berka-udf.jar"  # <finalName> in jvm/udf/pom.xml


class UdfJarMissing(RuntimeError):
    """The jar is not built, or was built from other sources than these."""


def udf_jar_dir() -> Path:
    return var_dir() / "jars" / "udf"


def udf_fingerprint() -> str:
    """What `.complete` beside the jar holds once it is built from the current sources (the
    Docker image writes it too, having built the jar in its Maven stage)."""
    digest = hashlib.sha256()
    for path in sorted([UDF_PROJECT / "pom.xml", *(UDF_PROJECT / "src").rglob("*.java")]):
        digest.update(path.relative_to(UDF_PROJECT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def built_udf_jar() -> Path:
    """The jar built from the current sources; a clear error naming the command if not."""
    jar = udf_jar_dir() / UDF_JAR_NAME
    marker = udf_jar_dir() / ".complete"
    if not jar.exists() or not marker.exists():
        raise UdfJarMissing(
            f"{jar} is not built: run `make bootstrap` (or `.venv/bin/berka-stack up`), which "
            "builds the pipeline's Spark functions from jvm/udf with Maven.")
    if marker.read_text() != udf_fingerprint():
        raise UdfJarMissing(
            f"{jar} was built from older sources than jvm/udf: run `make bootstrap` (or "
            "`.venv/bin/berka-stack up`) to rebuild it.")
    return jar
