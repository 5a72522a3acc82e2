"""A second, isolated `berka-stack` for tests that stop, wipe or restart a whole stack.

Its own ports, var folder and secrets file, so it never disturbs the session's stack; the
project's commands are run in it as a user would run them, as subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PORTS = {"mysql": 3417, "kafka": 9292, "connect": 15202, "hive": 10200, "s3": 9200}


def isolated_env(var: Path) -> dict[str, str]:
    """This process's environment without any BERKA_* or DAGSTER_HOME of the session's stack."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("BERKA_") and k != "DAGSTER_HOME"}
    environment.update({
        "BERKA_VAR_DIR": str(var),
        "BERKA_SECRETS_FILE": str(var / ".env"),
        "BERKA_MYSQL_PORT": str(PORTS["mysql"]),
        "BERKA_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{PORTS['kafka']}",
        "BERKA_SPARK_REMOTE": f"sc://127.0.0.1:{PORTS['connect']}",
        "BERKA_HIVE_PORT": str(PORTS["hive"]),
        "BERKA_LOCAL_S3_PORT": str(PORTS["s3"]),
        "BERKA_SPARK_CONNECT_MEMORY": "1g",
    })
    return environment


def command(name: str) -> str:
    """A console script of the project (berka-stack, berka-demo, ...) in this interpreter's venv."""
    return str(Path(sys.executable).parent / name)


def berka_stack(environment: dict[str, str], *args: str,
                timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "berka_stack.cli", *args],
        capture_output=True, text=True, env=environment, timeout=timeout,
    )
