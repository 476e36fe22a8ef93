"""The local engine: DuckDB and NumPy in this process (the default).

`train` and `weekly` are what `deepcuts train` and `deepcuts weekly` run without ``--engine``;
`write_weekly` writes lists in the same Parquet layout as the Spark engine's weekly job, so
the two engines' outputs can be compared file for file and loaded the same way
(`deepcuts.surfaces.weekly.load_weekly_lists`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from deepcuts.models.cf.training import TrainedModel, train_from_store
from deepcuts.signals import ConfidenceConfig
from deepcuts.store import Store
from deepcuts.surfaces.weekly import DiscoverWeekly, prepare_weekly

log = logging.getLogger(__name__)


def train(
    store: Store,
    model_name: str,
    params: Mapping[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    **options: Any,
) -> TrainedModel:
    """Fit and register a model in this process (`train_from_store`)."""
    return train_from_store(store, model_name, params, confidence, **options)


def weekly(
    store: Store, week_start: date, *, model_id: str | None = None, ranker: str = "auto",
    ranker_id: str | None = None, fit_missing: bool = True,
) -> DiscoverWeekly:  # fmt: skip
    """The week's Discover Weekly, ready to `build` (`prepare_weekly`)."""
    return prepare_weekly(store, week_start, model_id=model_id, ranker=ranker, ranker_id=ranker_id,
                          fit_missing=fit_missing)  # fmt: skip


def write_weekly(
    dw: DiscoverWeekly, out: str | Path, progress: Callable[[int], None] | None = None
) -> tuple[int, int, int]:
    """Every listener's list as ``out/weekly_lists/`` and ``out/weekly_notes/`` Parquet (the
    Spark engine's layout). Returns (lists, rows, short lists)."""
    out = Path(out)
    users = np.arange(dw.interactions.shape[0])
    rows, notes = (
        dw.tables(users) if progress is None else _tables_with_progress(dw, users, progress)
    )
    for name, table in (("weekly_lists", rows), ("weekly_notes", notes)):
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-00000.parquet")
    lists = len(set(rows.column("user_id").to_pylist()))
    log.info("wrote %d lists (%d rows) to %s", lists, rows.num_rows, out)
    return lists, rows.num_rows, notes.num_rows


def _tables_with_progress(dw: DiscoverWeekly, users: np.ndarray, progress: Callable[[int], None]):
    from deepcuts.surfaces.weekly import weekly_tables

    lists = list(dw.build(users, progress=progress))
    return weekly_tables(lists, dw.interactions.users, dw.interactions.items)
