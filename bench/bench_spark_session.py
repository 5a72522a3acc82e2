"""Spark for Dagster runs: a new local Spark per run vs the long-running Spark Connect server.

Each measurement is a fresh Python process (as a Dagster run is) that materializes one small
asset reading a Hive-catalog table through dagster-pyspark's PySparkResource. Prints seconds and
the ratio. Needs the local stack (`berka-stack up`).

    python bench/bench_spark_session.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

from berka_core.config import get_settings
from berka_stack.spark import spark_env

RUN = """
import time, dagster as dg
from dagster_pyspark import PySparkResource
started = time.monotonic()

@dg.asset
def probe(pyspark: PySparkResource) -> None:
    assert pyspark.spark_session.sql("SHOW DATABASES").count() >= 1

config = {mode!r}
result = dg.materialize([probe], resources={{"pyspark": PySparkResource(spark_config=config)}})
assert result.success
print("SECONDS", time.monotonic() - started)
"""


def measure(mode: dict[str, str]) -> tuple[float, float]:
    """(whole process incl. imports, the materialize call alone) in seconds."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_CONNECT")}
    environment.update(spark_env())
    started = time.monotonic()
    output = subprocess.run([sys.executable, "-c", RUN.format(mode=mode)], capture_output=True,
                            text=True, env=environment, check=True).stdout
    total = time.monotonic() - started
    inner = float(next(line for line in output.splitlines() if line.startswith("SECONDS"))
                  .split()[1])
    return total, inner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = get_settings()
    modes = {
        "local Spark per run (local[2], Hive catalog)": {"spark.master": "local[2]"},
        "Spark Connect server": {"spark.remote": settings.spark.remote},
    }
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    results = {}
    for name, mode in modes.items():
        runs = [measure(mode) for _ in range(args.repeat)]
        results[name] = statistics.median(total for total, _ in runs)
        inner = statistics.median(materialize for _, materialize in runs)
        print(f"{name:<46} process {results[name]:6.2f} s  materialize {inner:6.2f} s "
              f"(median of {args.repeat})")
    local, remote = results.values()
    print(f"ratio local / connect: {local / remote:.1f}x")


if __name__ == "__main__":
    main()
