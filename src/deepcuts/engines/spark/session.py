"""Starting Spark: one SparkSession per process, with deepcuts' defaults.

``master`` is anything spark-submit takes (``local[2]``, ``spark://host:7077``, ``yarn``,
``k8s://https://host:443``). On a local master the executors' Python is this interpreter; on a
cluster the executors need deepcuts installed (see docs/scale-out.md).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "4",
}
BASE_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}


class SparkUnavailable(RuntimeError):
    """pyspark or Java is missing."""


def spark_session(
    master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None, app_name: str = "deepcuts"
):
    """A SparkSession on ``master`` with ``conf`` over deepcuts' defaults (the running one if a
    session already exists in this process: Spark allows one)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a dependency
        raise SparkUnavailable(
            "pyspark is not installed: pip install -c constraints.txt pyspark"
        ) from exc
    if not os.environ.get("JAVA_HOME") and not _which("java"):
        raise SparkUnavailable(
            "Spark needs Java 17: install it (Debian: openjdk-17-jre-headless) or set JAVA_HOME"
        )
    settings = dict(BASE_CONF)
    if master.startswith("local"):
        settings.update(LOCAL_CONF)
        # the executors' Python is this one (same packages, same deepcuts)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s on %s", spark.version, master)
    return spark


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)
