"""The driver program of the pipeline's Spark Connect server (spark-submit runs this file).

Spark's own SparkConnectServer forces artifact isolation on, so every Connect session gets a
class loader of its own, and with it its own cache of generated code. Each Dagster run is a new
session: it compiled every query of its batch again, and the JIT warmed the new classes up from
scratch, about 1 s of a 1M-record batch on 2 cores (bench/RESULTS.md). Every client of this
server is the pipeline, which finds its functions on the server's class path
(spark_jobs/jvm_functions.py), so this driver starts Spark Connect as a plugin, without the
isolation: sessions share the compiled code. Sessions still have their own SQL configuration,
temporary views and functions.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from pyspark.sql import SparkSession

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
SHARED_CLASSES = {
    "spark.plugins": CONNECT_PLUGIN,
    "spark.sql.artifact.isolation.enabled": "false",
    "spark.sql.artifact.isolation.alwaysApplyClassloader": "false",
}


def main() -> None:
    stop = threading.Event()
    # Either way Spark stops in the JVM: its shutdown hook on SIGTERM, or spark-submit's own
    # exit once this process returns. This process only waits.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    jvm = os.getppid()  # spark-submit's JVM started this process
    SparkSession.builder.config(map=SHARED_CLASSES).getOrCreate()
    # A JVM killed outright (kill -9, the OOM killer) cannot stop this process: notice it.
    while not stop.wait(2.0):
        if os.getppid() != jvm:
            print("spark_connect_main: the Spark JVM is gone; exiting", file=sys.stderr)
            break


if __name__ == "__main__":
    main()
