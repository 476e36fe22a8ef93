"""Discover Weekly measured against plain CF top-30, side by side in one run.

Both lists come from the same model, fit on the same training data, with the same filter
(nothing the listener ever played, banned, or had on a recent list). Plain CF takes the model's
30 best; Discover Weekly adds its other sources, ranking, caps and diversity. Ground truth is the
split's test pairs: what listeners streamed, new to them, in the week after training (time
split), or the artists held out per listener (user holdout).

Figures per side: ``hit_rate`` (share of test listeners with at least one test item on their
list), ``distinct_artists`` (mean distinct artists per list), ``intra_list_diversity`` (mean
pairwise 1 - cosine of the items' listener sets in the training data, as in the CF evaluation),
``long_tail_share`` (share of listed items outside the 20% most played in training).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.candidates.base import NONE, top_k_masked
from deepcuts.evaluation.harness import EvaluationData
from deepcuts.evaluation.metrics import intra_list_diversity
from deepcuts.models.base import Recommender
from deepcuts.models.cf import DEFAULT_MODEL, make_model
from deepcuts.signals import (
    ConfidenceConfig,
    Interactions,
    build_interactions,
    build_side_info,
    positive_part,
)
from deepcuts.surfaces.weekly import DiscoverWeekly, learn_ranker, store_content_vectors

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
N = 30
FIGURES = ("hit_rate", "distinct_artists", "intra_list_diversity", "long_tail_share")


def evaluate_weekly(
    data: EvaluationData,
    *,
    split_kind: str = "time",
    seed: int = 0,
    test_fraction: float = 0.2,
    min_items: int = 5,
    test_days: float = 7.0,
    model_name: str = DEFAULT_MODEL,
    params: dict[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    max_users: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Figures for ``weekly`` and ``plain_cf`` (module docstring), with the protocol."""
    report = progress or (lambda done, total, what: None)
    began = time.perf_counter()
    confidence = confidence or ConfidenceConfig()
    split = data.split(split_kind, seed, test_fraction, min_items, test_days)
    train = data.matrix(confidence, split)
    side = data.side(split)
    report(0, 3, f"fitting {model_name}")
    model = make_model(model_name, dict(params or {})).fit(train, side)
    inter = Interactions(train, data.users, data.items, data.banned(split), confidence)
    until = split.until or datetime.combine(datetime.now().date(), datetime.min.time())
    week_start = until.date()
    ranker = None
    content = store_content_vectors(data.store, data.items)
    if split.until is not None:  # listening with times: learn the ranker on the week before
        report(1, 3, "learning the ranker on the week before")

        def fit_model(earlier: Interactions, earlier_until: datetime) -> Recommender:
            earlier_side = build_side_info(data.store, data.users, data.items, until=earlier_until)
            return make_model(model_name, dict(params or {})).fit(earlier.matrix, earlier_side)

        ranker = learn_ranker(
            data.store,
            fit_model,
            lambda t: build_interactions(
                data.store, confidence, users=data.users, items=data.items, until=t
            ),
            week_start,
            seed=seed,
            content_vectors=content,
        )
    played = None if split.until is not None else _seen(train)
    dw = DiscoverWeekly(
        data.store,
        model,
        inter,
        week_start,
        ranker=ranker,
        played=played,
        until=until,
        content_vectors=content,
    )
    users = split.test_users
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    report(2, 3, f"building {len(users)} lists")
    weekly_lists = np.full((len(users), N), NONE, np.int64)
    plain_lists = np.full((len(users), N), NONE, np.int64)
    size = dw.config.batch_size
    for start in range(0, len(users), size):
        batch = dw.batch(users[start : start + size])
        plain_lists[start : start + len(batch.users)] = top_k_masked(batch.scores, N)[0]
        pool = dw.pool(batch)
        for r, wl in enumerate(dw._lists(batch, pool)):
            items = [t.item for t in wl.tracks]
            weekly_lists[start + r, : len(items)] = items
    listeners = positive_part(train, binary=True).T.tocsr()
    popularity = np.asarray(listeners.sum(axis=1)).ravel()
    relevant = split.test[users]
    result = {
        "weekly": _figures(
            weekly_lists, relevant, dw.world.catalogue.artist, listeners, popularity
        ),
        "plain_cf": _figures(
            plain_lists, relevant, dw.world.catalogue.artist, listeners, popularity
        ),
        "protocol": {
            "split": split_kind,
            "seed": seed,
            "test_fraction": test_fraction if split_kind == "user-holdout" else None,
            "until": split.until.isoformat() if split.until else None,
            "users": int(len(users)),
            "items": int(train.shape[1]),
            "model": model_name,
            "ranker": dw.ranker.kind,
            "list_length": N,
            "seconds": round(time.perf_counter() - began, 2),
        },
    }
    report(3, 3, "done")
    return result


def _seen(train: sp.csr_matrix) -> sp.csr_matrix:
    seen = train.copy()
    seen.data = np.ones_like(seen.data)
    return seen


def _figures(
    lists: np.ndarray,
    relevant: sp.csr_matrix,
    artist_of: np.ndarray,
    listeners: sp.csr_matrix,
    popularity: np.ndarray,
) -> dict[str, float]:
    head = np.argsort(-popularity, kind="stable")[: int(np.ceil(0.2 * len(popularity)))]
    in_tail = np.ones(len(popularity), bool)
    in_tail[head] = False
    hits, artists, tail, lengths = [], [], [], []
    for row, items in enumerate(lists):
        items = items[items != NONE]
        truth = relevant.indices[relevant.indptr[row] : relevant.indptr[row + 1]]
        hits.append(bool(np.isin(items, truth).any()))
        a = artist_of[items]
        artists.append(len(np.unique(a[a >= 0])) + int((a < 0).sum()))
        tail.append(float(in_tail[items].mean()) if len(items) else 0.0)
        lengths.append(len(items))
    return {
        "hit_rate": float(np.mean(hits)),
        "distinct_artists": float(np.mean(artists)),
        "intra_list_diversity": intra_list_diversity(np.where(lists == NONE, -1, lists), listeners),
        "long_tail_share": float(np.mean(tail)),
        "mean_length": float(np.mean(lengths)),
    }
