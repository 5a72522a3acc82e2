"""The pipeline's own JVM functions (jvm/udf), registered in a Spark session before use.

Where the classes come from:
- a server that has the jar on its class path already (the local stack's Connect server,
  stack/spark_connect_main.py) serves them to every session. Nothing is uploaded, so its
  sessions share one code-generation cache: an upload gives a Connect session a class loader of
  its own, and each Dagster run would compile and JIT-warm its queries again;
- any other session gets the jar from this client: a Spark Connect session uploads it
  (addArtifacts), a classic one (spark-submit, the streaming job) adds it (ADD JAR). So no remote
  server or cluster needs it installed.
Either way the session must run the very build this client has: a class on a server's class
path wins over an uploaded jar, so a server started with an older build would silently parse
with old code. The jar's SHA-256 is compared first (BuildInfo, through SQL's reflect()).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from pathlib import Path

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from berka_core.messages import trans_message
from berka_core.spark_jobs.udf_jar import built_udf_jar

# transformations.parse_messages calls it: trans message JSON bytes -> the message struct.
PARSE_TRANS_MESSAGE = "berka_parse_trans_message"
PARSE_TRANS_MESSAGE_CLASS = "berka.udf.ParseTransMessage"
BUILD_INFO_CLASS = "berka.udf.BuildInfo"

_registered: weakref.WeakSet[SparkSession] = weakref.WeakSet()
_lock = threading.Lock()


class JvmFunctionsError(RuntimeError):
    """The session runs another build of jvm/udf than this client's."""


def register_jvm_functions(spark: SparkSession) -> None:
    """Make the functions callable in `spark` (once per session object)."""
    with _lock:
        if spark in _registered:
            return
        jar = built_udf_jar()
        expected = file_sha256(jar)
        loaded = loaded_jar_sha256(spark)
        if loaded is None:
            _add_jar(spark, jar)
            loaded = loaded_jar_sha256(spark)
        if loaded != expected:
            raise JvmFunctionsError(
                f"the Spark session runs another build of the pipeline's functions (jar "
                f"SHA-256 {loaded}) than this client's {jar} ({expected}). A server with an older "
                "berka-udf.jar on its class path keeps it whatever a session uploads: restart it "
                "(locally: `berka-stack restart spark-connect`) or take the jar off its class path."
            )
        spark.udf.registerJavaFunction(
            PARSE_TRANS_MESSAGE, PARSE_TRANS_MESSAGE_CLASS, trans_message.spark_schema()
        )
        _registered.add(spark)


def loaded_jar_sha256(spark: SparkSession) -> str | None:
    """SHA-256 of the jvm/udf jar `spark` loads the functions from; None if it has none."""
    query_logger = logging.getLogger("SQLQueryContextLogger")
    was_disabled, query_logger.disabled = query_logger.disabled, True  # an expected miss
    try:
        row = spark.sql(f"SELECT reflect('{BUILD_INFO_CLASS}', 'jarSha256')").first()
    except PySparkException as error:
        if error.getCondition() == "DATATYPE_MISMATCH.UNEXPECTED_CLASS_TYPE":
            return None  # "class berka.udf.BuildInfo not found"
        raise
    finally:
        query_logger.disabled = was_disabled
    return row[0] if row else None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _add_jar(spark: SparkSession, jar: Path) -> None:
    if _is_connect(spark):
        spark.addArtifacts(str(jar))
    else:
        spark.sql(f"ADD JAR '{jar}'")  # the driver's classloader and the executors


def _is_connect(spark: SparkSession) -> bool:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    return isinstance(spark, ConnectSession)
