"""What the local stack needs before anything starts: Java, the JVM jars, MariaDB, secrets.

Each step is idempotent and says clearly what is missing and how to get it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from berka_core.config import REPO_ROOT, secrets_file, var_dir
from berka_core.spark_jobs.udf_jar import (
    UDF_JAR_NAME,
    UDF_PROJECT,
    udf_fingerprint,
    udf_jar_dir,
)
from berka_stack.process import StackError

MIN_JAVA = 17
JAR_SETS = ("kafka-broker", "spark")
MARIADB_PACKAGES = ("mariadb-server", "mariadb-client")
SECRET_NAMES = ("BERKA_MYSQL_PASSWORD", "BERKA_METASTORE_PASSWORD", "BERKA_DAGSTER_MYSQL_PASSWORD")


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError(
            f"Java {MIN_JAVA}+ is required (Kafka 4 and Spark 4 run on it) and none was found. "
            "Install it, e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME."
        )
    return found


def java_version() -> int:
    output = subprocess.run(
        [java_binary(), "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        raise StackError(f"Could not read the Java version from: {output.strip()!r}")
    major = int(match.group(1))
    # Java 8 and older report "1.8".
    return int(match.group(2)) if major == 1 and match.group(2) else major


def check_java() -> int:
    version = java_version()
    if version < MIN_JAVA:
        raise StackError(
            f"Java {version} found at {java_binary()}, but Kafka 4 and Spark 4 need Java "
            f"{MIN_JAVA} or newer. Install a newer JDK and set JAVA_HOME to it."
        )
    return version


def jar_dir(jar_set: str) -> Path:
    return var_dir() / "jars" / jar_set


def ensure_jars(jar_set: str) -> Path:
    """Resolve one jar set from Maven Central into var/jars/<set> (once)."""
    target = jar_dir(jar_set)
    marker = target / ".complete"
    pom = REPO_ROOT / "jvm" / jar_set / "pom.xml"
    if marker.exists() and marker.read_text() == _pom_fingerprint(pom):
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "Maven is needed once to fetch the Kafka and Spark connector jars: "
            "`apt-get install maven`."
        )
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    result = subprocess.run(
        [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={target}", "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(
            f"Maven could not resolve {pom} (is Maven Central reachable?):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    marker.write_text(_pom_fingerprint(pom))
    return target


def _pom_fingerprint(pom: Path) -> str:
    # Re-resolve when the pom changes (a version bump), not on every start.
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars(jar_set: str) -> list[Path]:
    return sorted(ensure_jars(jar_set).glob("*.jar"))


def ensure_udf_jar() -> Path:
    """Build the pipeline's own Spark functions (jvm/udf) into var/jars/udf, when their sources
    changed since the last build; return the jar."""
    target = udf_jar_dir()
    jar = target / UDF_JAR_NAME
    marker = target / ".complete"
    fingerprint = udf_fingerprint()
    if jar.exists() and marker.exists() and marker.read_text() == fingerprint:
        return jar
    mvn = shutil.which("mvn")
    if not mvn or not shutil.which("javac"):
        raise StackError(
            "Building the pipeline's Spark functions (jvm/udf) needs Maven and a JDK: "
            "`apt-get install maven openjdk-17-jdk-headless`."
        )
    build_dir = var_dir() / "build" / "udf"
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(UDF_PROJECT / "pom.xml"), f"-Dudf.build.dir={build_dir}",
         "clean", "package"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise StackError(
            f"Maven could not build {UDF_PROJECT} (is Maven Central reachable?):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(build_dir / UDF_JAR_NAME, jar)
    marker.write_text(fingerprint)
    return jar


def ensure_mariadb_installed() -> None:
    if shutil.which("mariadbd") and shutil.which("mariadb-install-db"):
        return
    if os.geteuid() != 0:
        raise StackError(
            "MariaDB is not installed. Run as root once, or install it yourself: "
            f"`sudo apt-get install -y {' '.join(MARIADB_PACKAGES)}`."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *MARIADB_PACKAGES],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise StackError(
                f"`{' '.join(command)}` failed (are Debian's package servers reachable?):\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )


def ensure_secrets() -> dict[str, str]:
    """Random local passwords, written once to var/secrets.env (0600, git-ignored)."""
    path = secrets_file()
    existing: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                existing[key] = value
    missing = [name for name in SECRET_NAMES if not existing.get(name)]
    if missing:
        for name in missing:
            existing[name] = secrets.token_urlsafe(18)
        var_dir().mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in existing.items()))
        path.chmod(0o600)
    # Values exported in the environment win, as in berka_core.config.secret.
    return {name: os.environ.get(name) or existing[name] for name in existing}
