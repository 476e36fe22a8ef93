"""Training on Spark: ALS on the events layout's confidence matrix, saved and registered as the
embedded engine saves and registers its models, so `deepcuts weekly` uses it unchanged.

The confidence values are computed once, by `deepcuts.signals.confidence` (through
`export_events`), and read by Spark from ``EVENTS/confidence``; with no events folder given,
they are exported first to a temporary one (a local master reads it; a cluster needs a folder
every executor can read: ``--events hdfs://...``, ``gs://...``, ``s3a://...``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from deepcuts.engines.events import LAYOUT, LAYOUT_VERSION, export_events, read_manifest
from deepcuts.engines.spark.als import fit_factors
from deepcuts.engines.spark.ratings import confidence_to_ratings
from deepcuts.models.cf import make_model
from deepcuts.models.cf.als import ALS
from deepcuts.models.cf.training import TrainedModel, model_dir
from deepcuts.models.registry import next_version, register_model
from deepcuts.signals import ConfidenceConfig, IdMap
from deepcuts.store import Store, StoreError

log = logging.getLogger(__name__)

Step = Callable[[str], None]


def is_local(uri: str) -> bool:
    """Whether a path is on this machine's file system (no scheme, or file:)."""
    return "://" not in uri or uri.startswith("file:")


def _local(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri.removeprefix("file:"))


def read_events_manifest(spark, events: str) -> dict[str, Any]:
    """The manifest of an events folder: read here if local, else through Spark (any URI)."""
    if is_local(events):
        return read_manifest(_local(events))
    try:
        text = "".join(
            r.value
            for r in spark.read.text(
                f"{events.rstrip('/')}/manifest.json", wholetext=True
            ).collect()
        )
    except Exception as exc:  # Spark's AnalysisException: the path does not exist
        raise FileNotFoundError(
            f"{events}: no manifest.json; write it with `deepcuts export-events --out PATH`"
        ) from exc
    manifest = json.loads(text)
    if manifest.get("layout") != LAYOUT or manifest.get("version") != LAYOUT_VERSION:
        raise ValueError(f"{events}: not a {LAYOUT} folder of version {LAYOUT_VERSION}")
    return manifest


def read_id_map(spark, events: str, name: str) -> IdMap:
    """``users`` or ``items`` of an events folder, in index order."""
    column = "user_id" if name == "users" else "item_id"
    if is_local(events):
        table = pq.read_table(_local(events) / f"{name}.parquet").sort_by("idx")
        return IdMap(table.column(column).to_pylist())
    frame = spark.read.parquet(f"{events.rstrip('/')}/{name}.parquet").orderBy("idx").toPandas()
    return IdMap(frame[column].astype(object).tolist())


def _same_confidence(wanted: ConfidenceConfig, written: Mapping[str, Any]) -> bool:
    mine = wanted.to_dict()
    theirs = dict(written)
    if mine.get("now") is None:
        theirs["now"] = None  # the export resolved "the latest event"; so would this run
    return mine == theirs


def train_on_spark(
    store: Store,
    spark,
    params: Mapping[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    *,
    events: str | None = None,
    out: str | Path | None = None,
    make_default: bool = True,
    blocks: int | None = None,
    step: Step | None = None,
) -> TrainedModel:
    """Fit ALS on Spark and register it in ``store`` as the embedded `train_from_store` does.

    Parameters
    ----------
    params : `ALS` parameters (factors, regularization, alpha, iterations, random_state).
    confidence : the weighting; an ``events`` folder must have been exported with the same.
    events : an events folder (`export_events`); None exports one to a temporary folder.
    out : the model file [default: ``models/als-v<version>.npz`` beside the store].
    """
    report = step or (lambda _: None)
    confidence = confidence or ConfidenceConfig()
    model = make_model("als", dict(params or {}))
    assert isinstance(model, ALS)
    model._validate()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepcuts-events-") as scratch:
        if events is None:
            report("exporting the confidence matrix")
            events = str(Path(scratch) / "events")
            export_events(store, events, confidence)
        manifest = read_events_manifest(spark, events)
        if not _same_confidence(confidence, manifest["confidence"]):
            raise ValueError(
                f"{events} was exported with other confidence settings ({manifest['confidence']}); "
                "export it again with these, or train with its settings"
            )
        root = events.rstrip("/")
        users, items = read_id_map(spark, events, "users"), read_id_map(spark, events, "items")
        if len(users) != manifest["users"] or len(items) != manifest["items"]:
            raise StoreError(f"{events}: users.parquet / items.parquet do not match manifest.json")
        exported = time.perf_counter()
        report(f"fitting ALS on Spark ({spark.sparkContext.master})")
        ratings = confidence_to_ratings(spark.read.parquet(f"{root}/confidence"), model.alpha)
        model.user_factors_, model.item_factors_ = fit_factors(
            ratings,
            len(users),
            len(items),
            factors=model.factors,
            regularization=model.regularization,
            iterations=model.iterations,
            seed=model.random_state,
            blocks=blocks,
        )
        fitted = time.perf_counter()
    model.n_users_, model.n_items_ = len(users), len(items)
    model._after_load()
    if out is None:
        out = model_dir(store) / f"als-v{next_version(store, 'als')}.npz"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report(f"saving {out}")
    model.save(out, users=users, items=items)
    metrics = {
        "users": len(users),
        "items": len(items),
        "interactions": int(manifest["pairs"]),
        "signals_seconds": round(exported - began, 3),
        "fit_seconds": round(fitted - exported, 3),
        "data_until": manifest.get("data_until"),
        "engine": "spark",
        "master": spark.sparkContext.master,
    }
    record = register_model(
        store,
        "als",
        out,
        params={"model": model.get_params(), "confidence": confidence.to_dict()},
        metrics=metrics,
        make_default=make_default,
    )
    log.info("registered %s (%s), fitted on Spark", record.model_id, out)
    return TrainedModel(model, users, items, confidence, record)
