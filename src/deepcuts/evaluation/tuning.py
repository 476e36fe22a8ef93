"""Hyperparameter search on a validation split carved from the training data, never the test.

The test split is made exactly as ``deepcuts evaluate`` makes it for the seed; its test pairs
are set aside and play no part. From what remains, a validation split is carved (a user
holdout of the training items with an independent seed, or for a time split the window just
before the test window), models fit on the rest and are scored on the validation pairs.

The search is coordinate ascent: starting from the model's defaults, each parameter in turn
takes each of its candidate values with the others held, and the best value (NDCG@K on the
validation pairs) is kept; ``rounds`` passes. For the hybrid, blend weights (``w_*``) are
searched without refitting: the views' scores are computed once per fit and re-weighed.
Confidence settings are searched as ``confidence.<field>`` (e.g. ``confidence.alpha``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.evaluation.harness import EvaluationData, recommend_filtered
from deepcuts.evaluation.metrics import ranking_metrics
from deepcuts.evaluation.splits import Split, SplitError, time_split, user_holdout_split
from deepcuts.models.base import top_n
from deepcuts.models.cf import MODELS, Hybrid, make_model
from deepcuts.signals import ConfidenceConfig, positive_part

log = logging.getLogger(__name__)

VALIDATION_SEED_OFFSET = 1_000_003

SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "hybrid": {
        "ease_l2": [50.0, 100.0, 200.0, 400.0],
        "ease_side_weight": [0.0, 5.0, 10.0, 20.0],
        "w_als": [0.0, 0.1, 0.2, 0.3, 0.5],
        "w_tags": [0.0, 0.1, 0.2, 0.3, 0.5],
        "w_friends": [0.0, 0.05, 0.1, 0.2, 0.3],
        "w_playlists": [0.0, 0.1, 0.2, 0.4],
        "als_factors": [64, 128, 192],
        "als_regularization": [0.1, 0.5, 1.0],
        "als_iterations": [10, 15, 25],
        "confidence.alpha": [0.5, 1.0, 2.0, 4.0],
    },
    "als": {
        "factors": [64, 128, 192, 256],
        "regularization": [0.01, 0.05, 0.1, 0.5, 1.0],
        "confidence.alpha": [0.5, 1.0, 2.0, 4.0, 8.0],
        "confidence.eps": [0.1, 1.0, 10.0, 100.0],
        "iterations": [10, 15, 30],
    },
    "ease": {"l2": [25.0, 50.0, 100.0, 200.0, 400.0, 800.0], "side_weight": [0.0, 5.0, 10.0, 20.0]},
    "item-knn": {
        "neighbours": [20, 50, 100, 200, 400],
        "K1": [0.5, 1.2, 2.0],
        "B": [0.25, 0.5, 0.75, 1.0],
    },
    "bpr": {
        "factors": [32, 64, 128],
        "learning_rate": [0.005, 0.01, 0.05],
        "regularization": [0.001, 0.01, 0.1],
        "iterations": [50, 100, 200],
    },
    "regional-popularity": {"shrinkage": [0.0, 5.0, 20.0, 100.0]},
    "popularity": {},
}

Progress = Callable[[int, int, str], None]


@dataclass
class TuneResult:
    """The best parameters found, and every trial.

    ``params`` are the model's, ``confidence`` the weighting's; both go to
    ``deepcuts train --params`` as the JSON that `to_dict` gives.
    """

    model: str
    params: dict[str, Any]
    confidence: dict[str, Any]
    metric: str
    score: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2, default=str)


def validation_split(
    data: EvaluationData,
    kind: str,
    seed: int,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    min_items: int = 5,
    test_days: float = 7.0,
) -> tuple[Split, sp.csr_matrix]:
    """The split to fit on (its ``test`` holds every pair kept out of training: test and
    validation) and the validation pairs to score on."""
    test = data.split(kind, seed, test_fraction, min_items, test_days)
    if kind == "user-holdout":
        train_pos = positive_part(data.matrix(ConfidenceConfig(), test), binary=True)
        val = user_holdout_split(
            train_pos, validation_fraction, seed + VALIDATION_SEED_OFFSET, min_items
        )
        held = (test.test + val.test).tocsr()
        held.data[:] = 1
        return Split(kind, seed, held), val.test
    val = time_split(data.store, data.users, data.items, test_days, end=test.until)
    if val.until is None or test.until is None or val.until >= test.until - timedelta(0):
        raise SplitError("no room for a validation window before the test window")
    return val, val.test


def _apply_confidence(base: ConfidenceConfig, params: Mapping[str, Any]) -> ConfidenceConfig:
    changes = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("confidence.")}
    return replace(base, **changes) if changes else base


def _model_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not k.startswith("confidence.")}


def tune_model(
    data: EvaluationData,
    model: str = "hybrid",
    *,
    space: Mapping[str, Sequence[Any]] | None = None,
    base_params: Mapping[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    split: str = "user-holdout",
    seed: int = 0,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    min_items: int = 5,
    test_days: float = 7.0,
    k: int = 20,
    rounds: int = 1,
    progress: Progress | None = None,
) -> TuneResult:
    """Coordinate-ascent search of ``space`` (module docstring). Returns the best found."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    space = dict(SEARCH_SPACES.get(model, {}) if space is None else space)
    cls = MODELS[model]
    for name in space:
        if not name.startswith("confidence.") and name not in cls.params:
            raise ValueError(
                f"{model} has no parameter {name!r}; its parameters: {', '.join(cls.params)}"
            )
        if (
            name.startswith("confidence.")
            and name.split(".", 1)[1] not in ConfidenceConfig.__dataclass_fields__
        ):
            raise ValueError(f"no confidence setting {name.split('.', 1)[1]!r}")
    base_conf = confidence or ConfidenceConfig()
    defaults = {p: getattr(cls(), p) for p in cls.params}
    current: dict[str, Any] = {**defaults, **dict(base_params or {})}
    for name in space:
        if name.startswith("confidence."):
            current[name] = getattr(base_conf, name.split(".", 1)[1])
    fit_split, relevant_all = validation_split(
        data,
        split,
        seed,
        test_fraction=test_fraction,
        validation_fraction=validation_fraction,
        min_items=min_items,
        test_days=test_days,
    )
    side = data.side(fit_split)
    base = positive_part(data.matrix(base_conf, fit_split), binary=True)
    users = np.flatnonzero(np.diff(relevant_all.indptr) > 0)
    users = users[np.diff(base.indptr)[users] > 0]
    relevant = relevant_all[users]
    banned = data.banned(fit_split)
    log.info(
        "tuning %s on %d validation users, %d validation pairs", model, len(users), relevant.nnz
    )

    cache: dict[str, dict[str, float]] = {}
    trials: list[dict[str, Any]] = []
    fitted_views: dict[str, Any] = {}  # hybrid: structure key -> (views, rows)

    def key_of(params: Mapping[str, Any]) -> str:
        return json.dumps(params, sort_keys=True, default=str)

    def run(params: dict[str, Any]) -> dict[str, float]:
        key = key_of(params)
        if key in cache:
            return cache[key]
        began = time.perf_counter()
        conf = _apply_confidence(base_conf, params)
        mparams = _model_params(params)
        train = data.matrix(conf, fit_split)
        rows = train[users]
        if model == Hybrid.name:
            structure = {p: v for p, v in params.items() if not p.startswith("w_")}
            skey = key_of(structure)
            if skey not in fitted_views:
                fitted_views.clear()
                fit_params = dict(mparams)
                for w in ("w_ease", "w_als", "w_tags", "w_playlists", "w_friends"):
                    if w in space or fit_params.get(w, 0) > 0:
                        fit_params[w] = (
                            max(fit_params.get(w, 0.0), 1e-3) if w in space else fit_params[w]
                        )
                hybrid = make_model(model, fit_params).fit(train, side)
                fitted_views[skey] = hybrid.component_scores(users, rows)
            views = fitted_views[skey]
            total = np.zeros((len(users), train.shape[1]), np.float32)
            for view, scores in views.items():
                total += np.float32(mparams.get(f"w_{view}", 0.0)) * scores
            filt = rows.tocoo()
            total[filt.row, filt.col] = -np.inf
            if banned.nnz:
                b = banned[users].tocoo()
                total[b.row, b.col] = -np.inf
            recs, _ = top_n(total, k)
        else:
            fitted = make_model(model, mparams).fit(train, side)
            recs = recommend_filtered(fitted, users, rows, k, banned)
        per_user = ranking_metrics(recs, relevant, k)
        figures = {
            f"ndcg@{k}": float(np.nanmean(per_user["ndcg"])),
            f"recall@{k}": float(np.nanmean(per_user["recall"])),
            "seconds": time.perf_counter() - began,
        }
        cache[key] = figures
        trials.append({"params": dict(params), **figures})
        log.info("trial %s: ndcg@%d %.4f", {p: params[p] for p in space}, k, figures[f"ndcg@{k}"])
        return figures

    metric = f"ndcg@{k}"
    total_steps = 1 + rounds * sum(len(v) for v in space.values())
    step = 0
    if progress:
        progress(step, total_steps, "defaults")
    best = run(current)[metric]
    step += 1
    for _ in range(rounds):
        for name, values in space.items():
            for value in values:
                if progress:
                    progress(step, total_steps, f"{name}={value}")
                step += 1
                if value == current.get(name):
                    continue
                trial = {**current, name: value}
                score = run(trial)[metric]
                if score > best + 1e-5:
                    best, current = score, trial
    if progress:
        progress(total_steps, total_steps, "done")
    conf = _apply_confidence(base_conf, current)
    return TuneResult(
        model=model,
        params=_model_params(current),
        confidence=conf.to_dict(),
        metric=metric,
        score=best,
        trials=trials,
        protocol={
            "dataset": data.name,
            "split": split,
            "seed": seed,
            "k": k,
            "validation_users": int(len(users)),
            "validation_pairs": int(relevant.nnz),
            "test_fraction": test_fraction,
            "validation_fraction": validation_fraction,
            "min_items": min_items,
            "test_days": test_days,
            "rounds": rounds,
            "note": "scored on validation pairs carved from the training data; the test "
            "pairs of this seed were set aside and never used",
        },
    )
