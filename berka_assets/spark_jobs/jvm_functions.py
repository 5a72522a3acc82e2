"""The pipeline's own JVM functions (jvm/udf), registered in a Spark session before use.

The session gets the jar from this client: a Spark Connect session uploads it (addArtifacts), a
classic one (spark-submit, the streaming job) adds it (ADD JAR). So no server or cluster needs
it installed, and a server never runs an older build than its client's.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from pyspark.sql import SparkSession

from berka_assets.messages import trans_message

# transformations.parse_messages calls it: trans message JSON bytes -> the message struct.
PARSE_TRANS_MESSAGE = "berka_parse_trans_message"
PARSE_TRANS_MESSAGE_CLASS = "berka.udf.ParseTransMessage"

_registered: weakref.WeakSet[SparkSession] = weakref.WeakSet()
_lock = threading.Lock()


def register_jvm_functions(spark: SparkSession, jar: Path | None = None) -> None:
    """Make the functions callable in `spark` (once per session object)."""
    with _lock:
        if spark in _registered:
            return
        if jar is None:
            from berka_assets.stack.prereqs import ensure_udf_jar

            jar = ensure_udf_jar()
        if _is_connect(spark):
            spark.addArtifacts(str(jar))
        else:
            spark.sql(f"ADD JAR '{jar}'")  # the driver's classloader and the executors
        spark.udf.registerJavaFunction(
            PARSE_TRANS_MESSAGE, PARSE_TRANS_MESSAGE_CLASS, trans_message.spark_schema()
        )
        _registered.add(spark)


def _is_connect(spark: SparkSession) -> bool:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    return isinstance(spark, ConnectSession)
