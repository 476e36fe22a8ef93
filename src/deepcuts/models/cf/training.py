"""Training on the store, registering the model version, and recommending with it.

``train_from_store`` builds the confidence matrix and side information from the store, fits a
model, saves it with its id maps and records it in the registry. ``recommend_for_users`` serves
known users from what was learnt and new users (created after training) from their events in
the store, folded in without a retrain; as they keep listening, their recommendations follow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.models.catalog import load_model
from deepcuts.models.cf import DEFAULT_MODEL, make_model
from deepcuts.models.registry import (
    ModelRecord,
    default_model,
    get_model_of_kind,
    next_version,
    register_model,
)
from deepcuts.signals import (
    ConfidenceConfig,
    IdMap,
    Interactions,
    build_interactions,
    build_side_info,
    gather_evidence,
    interactions_from_evidence,
)
from deepcuts.store import Store, StoreError

log = logging.getLogger(__name__)

Step = Callable[[str], None]


@dataclass
class TrainedModel:
    """A fitted model with its id maps and the weighting its rows must be built with."""

    model: Recommender
    users: IdMap
    items: IdMap
    confidence: ConfidenceConfig
    record: ModelRecord | None = None

    def interactions(self, store: Store, until: datetime | None = None) -> Interactions:
        """The store's signals in this model's index space, for serving: the trained users
        first, then every listener who arrived since (the model folds them in)."""
        known = set(self.users.ids.tolist())
        everyone = [
            u
            for (u,) in store.conn.execute("SELECT user_id FROM users ORDER BY user_id").fetchall()
        ]
        users = self.users.extended(u for u in everyone if u not in known)
        return build_interactions(
            store, self.confidence, users=users, items=self.items, until=until
        )


def model_dir(store: Store) -> Path:
    """Where saved models go: ``models/`` beside the store file (``./models`` in memory)."""
    if store.path == ":memory:":
        return Path("models")
    return Path(store.path).resolve().parent / "models"


def train_from_store(
    store: Store,
    model_name: str = DEFAULT_MODEL,
    params: Mapping[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    *,
    out: str | Path | None = None,
    register: bool = True,
    make_default: bool = True,
    step: Step | None = None,
) -> TrainedModel:
    """Fit ``model_name`` on everything in the store, save it and register the version.

    Parameters
    ----------
    params : the model's parameters (its defaults where absent).
    confidence : the weighting of the matrix (the default `ConfidenceConfig` if None).
    out : the model file; by default ``<store dir>/models/<name>-v<version>.npz``.
    register : record the version in the store's ``models`` table.
    make_default : make it the default version.
    step : called with a description as each stage starts (progress reporting).
    """
    report = step or (lambda _: None)
    confidence = confidence or ConfidenceConfig()
    model = make_model(model_name, dict(params or {}))
    began = time.perf_counter()
    report("building the confidence matrix")
    inter = build_interactions(store, confidence)
    if inter.matrix.nnz == 0:
        raise StoreError("the store has no listening data to train on: ingest some first")
    report("gathering tags, friends, regions and playlists")
    side = build_side_info(store, inter.users, inter.items)
    built = time.perf_counter()
    report(f"fitting {model_name}")
    model.fit(inter.matrix, side)
    fitted = time.perf_counter()
    metrics = {
        "users": len(inter.users),
        "items": len(inter.items),
        "interactions": int(inter.matrix.nnz),
        "signals_seconds": round(built - began, 3),
        "fit_seconds": round(fitted - built, 3),
        "data_until": inter.now.isoformat() if inter.now else None,
    }
    if out is None:
        out = model_dir(store) / f"{model_name}-v{next_version(store, model_name)}.npz"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report(f"saving {out}")
    model.save(out, users=inter.users, items=inter.items)
    record = None
    if register:
        record = register_model(
            store,
            model_name,
            out,
            params={"model": model.get_params(), "confidence": confidence.to_dict()},
            metrics=metrics,
            kind="cf",
            data_until=inter.now,
            make_default=make_default,
        )
        log.info(
            "registered %s (%s)%s", record.model_id, out, " as the default" if make_default else ""
        )
    return TrainedModel(model, inter.users, inter.items, confidence, record)


def load_trained(store: Store, model_id: str | None = None) -> TrainedModel:
    """A registered model (the default one unless ``model_id`` is given), ready to use."""
    record = get_model_of_kind(store, model_id, "cf") if model_id else default_model(store, "cf")
    if record is None:
        raise StoreError("no trained model in the store: run `deepcuts train` first")
    model, users, items = load_model(record.path)
    if users is None or items is None:
        raise StoreError(f"{record.path}: saved without its id maps")
    confidence = ConfidenceConfig.from_dict(record.params.get("confidence", {}))
    return TrainedModel(model, users, items, confidence, record)


def rows_for_users(
    store: Store, trained: TrainedModel, user_ids: Sequence[str]
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The users' current rows in the model's item space, weighed as in training, from the
    store's events (including those after training), and their banned items. Items the model
    does not know are left out. Returns (rows, banned), one row per given id."""
    users = IdMap(list(dict.fromkeys(user_ids)))
    evidence = gather_evidence(store, trained.confidence, users=users, items=trained.items)
    inter = interactions_from_evidence(evidence, trained.confidence)
    order = users.indices(list(user_ids))
    return inter.matrix[order], inter.banned[order]


def recommend_for_users(
    store: Store,
    trained: TrainedModel,
    user_ids: Sequence[str],
    N: int = 10,
    *,
    recalculate_user: bool = False,
) -> list[list[tuple[str, float]]]:
    """Top-N (item id, score) per user id: known users from what the model learnt, users
    created after training folded in from their events; heard and banned items filtered."""
    rows, banned = rows_for_users(store, trained, user_ids)
    index = trained.users.indices(list(user_ids))
    extra = int(np.diff(banned.indptr).max(initial=0))
    ids, scores = trained.model.recommend(
        index, rows, N=N + extra, recalculate_user=recalculate_user
    )
    out = []
    for r in range(len(user_ids)):
        b = set(banned.indices[banned.indptr[r] : banned.indptr[r + 1]].tolist())
        picks = [
            (trained.items.id(int(i)), float(s))
            for i, s in zip(ids[r], scores[r], strict=True)
            if i >= 0 and int(i) not in b
        ]
        out.append(picks[:N])
    return out


def train_or_load(store: Store) -> TrainedModel:  # pragma: no cover - convenience for surfaces
    """The default model, training one first if the registry is empty."""
    return load_trained(store) if default_model(store) else train_from_store(store)


__all__ = [
    "TrainedModel",
    "load_trained",
    "model_dir",
    "recommend_for_users",
    "rows_for_users",
    "train_from_store",
    "train_or_load",
]
