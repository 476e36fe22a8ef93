"""Discover Weekly as a Spark job: the embedded engine's own code, run per partition.

The driver prepares the week exactly as `deepcuts weekly` does (`prepare_weekly`: the
registered model's factors, the catalogue, the filters, the ranker) and broadcasts that state
once. Listeners are spread over partitions in contiguous ranges; each partition runs
`DiscoverWeekly.tables` over its listeners through ``mapInPandas``: the model's scores of
every item in blocks of ``batch_size`` listeners against the broadcast item factors (a blocked
top-k), the candidate sources, the filters (never played, banned, recent lists), the ranker,
the shape (2 per artist, 1 per album, MMR, fresh and long-tail shares) and the reasons. There
is no second implementation of any rule: a list does not depend on the batch or the partition
it was built in, so the Spark lists equal the embedded ones.

Output (``out``): ``weekly_lists/`` and ``weekly_notes/``, Parquet with the columns of the
store's tables of the same names; `deepcuts.surfaces.weekly.load_weekly_lists` loads them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import date, datetime

import numpy as np
import pandas as pd

from deepcuts.store import Store
from deepcuts.surfaces.weekly import (
    WEEKLY_LISTS_SCHEMA,
    WEEKLY_NOTES_SCHEMA,
    DiscoverWeekly,
    prepare_weekly,
)

log = logging.getLogger(__name__)

# One row shape for both outputs: list rows have a position, note rows a note.
OUTPUT_SCHEMA = (
    "user_id string, week string, position int, item_id string, score double, source string, "
    "reason string, created_at timestamp_ntz, note string"
)


@dataclass
class SparkWeeklyResult:
    week: str
    lists: int
    rows: int
    short: int
    ranker: str
    path: str
    prepare_seconds: float
    build_seconds: float


def weekly_frame(
    spark, dw: DiscoverWeekly, partitions: int | None = None, created_at: datetime | None = None
):
    """A DataFrame of every listener's list rows and notes (``OUTPUT_SCHEMA``), built by
    `DiscoverWeekly.tables` in each partition from a broadcast copy of ``dw``."""
    n_users = dw.interactions.shape[0]
    # One listener's list is built in one Python worker; threads inside it would only fight
    # Spark's own task slots for the cores.
    shipped = _without_threads(dw)
    state = spark.sparkContext.broadcast(shipped)
    stamp = (created_at or datetime.now()).replace(microsecond=0)
    parts = partitions or max(1, spark.sparkContext.defaultParallelism)
    lists_cols = WEEKLY_LISTS_SCHEMA.names

    def build(batches):
        weekly = state.value
        for frame in batches:
            users = frame["id"].to_numpy(np.int64)
            if not len(users):
                continue
            rows, notes = weekly.tables(users, stamp)
            out = rows.to_pandas()
            out["note"] = None
            if notes.num_rows:
                extra = notes.to_pandas()
                for column in lists_cols:
                    if column not in extra:
                        extra[column] = None
                out = pd.concat([out, extra[[*lists_cols, "note"]]], ignore_index=True)
            out["position"] = out["position"].astype("Int32")
            for column in ("user_id", "week", "item_id", "source", "reason", "note"):
                # plain objects: pandas 3's Arrow-backed strings do not cross into Spark 4.3
                out[column] = out[column].astype(object).where(out[column].notna(), None)
            yield out[[*lists_cols, "note"]]

    users = spark.range(0, n_users, numPartitions=parts)
    return users.mapInPandas(build, schema=OUTPUT_SCHEMA), state


def run_weekly(
    store: Store,
    spark,
    week_start: date,
    out: str,
    *,
    model_id: str | None = None,
    ranker: str = "auto",
    ranker_id: str | None = None,
    partitions: int | None = None,
) -> SparkWeeklyResult:
    """Build the week's lists on Spark and write them to ``out`` (module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    began = time.perf_counter()
    # The registered models, as the embedded engine reads them (a missing part is learnt and
    # registered once on the driver, so the store is opened for writing).
    dw = prepare_weekly(store, week_start, model_id=model_id, ranker=ranker, ranker_id=ranker_id)
    prepared = time.perf_counter()
    frame, state = weekly_frame(spark, dw, partitions)
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        lists = frame.where(F.col("position").isNotNull()).select(*WEEKLY_LISTS_SCHEMA.names)
        lists.write.mode("overwrite").parquet(f"{out.rstrip('/')}/weekly_lists")
        notes = frame.where(F.col("note").isNotNull()).select(*WEEKLY_NOTES_SCHEMA.names)
        notes.write.mode("overwrite").parquet(f"{out.rstrip('/')}/weekly_notes")
        counts = frame.agg(
            F.count("position").alias("rows"),
            F.countDistinct(F.when(F.col("position").isNotNull(), F.col("user_id"))).alias("lists"),
            F.count("note").alias("short"),
        ).collect()[0]
    finally:
        frame.unpersist()
        state.unpersist()
    built = time.perf_counter()
    result = SparkWeeklyResult(
        week=dw.week,
        lists=int(counts["lists"]),
        rows=int(counts["rows"]),
        short=int(counts["short"]),
        ranker=dw.ranker.kind,
        path=out,
        prepare_seconds=prepared - began,
        build_seconds=built - prepared,
    )
    log.info(
        "%s: %d lists, %d rows written to %s (prepared in %.1f s, built in %.1f s)",
        result.week,
        result.lists,
        result.rows,
        out,
        result.prepare_seconds,
        result.build_seconds,
    )
    return result


def _without_threads(dw: DiscoverWeekly) -> DiscoverWeekly:
    """A shallow copy of ``dw`` whose config builds one batch at a time."""
    copy = DiscoverWeekly.__new__(DiscoverWeekly)
    copy.__dict__.update(dw.__dict__)
    copy.config = replace(dw.config, workers=1)
    return copy
