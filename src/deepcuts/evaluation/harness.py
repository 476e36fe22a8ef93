"""Offline evaluation: several models, one protocol, several seeds, side by side.

For each seed the split is made once; every model then fits on the same training data (in its
own weighting of the same evidence, with the test pairs removed), recommends the top K for
every test user with that user's training items (and bans) filtered out, and is measured on
the held-out items. Side information (tags, friends, playlists, regions) is built per split
with the test pairs excluded, so nothing a user did with a test item reaches training.

With the time split every seed shares the one split (the last days of listening); the seeds
then vary only the models' own randomness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.evaluation.metrics import (
    ACCURACY,
    activity_buckets,
    coverage,
    intra_list_diversity,
    novelty,
    ranking_metrics,
)
from deepcuts.evaluation.splits import SPLITS, Split, SplitError, time_split, user_holdout_split
from deepcuts.models.base import Recommender
from deepcuts.signals import (
    ConfidenceConfig,
    PairEvidence,
    SideInfo,
    build_side_info,
    gather_evidence,
    positive_part,
    remove_pairs,
    store_id_maps,
)
from deepcuts.signals.confidence import banned_matrix, weigh
from deepcuts.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ModelSpec:
    """A model in an evaluation run.

    Attributes
    ----------
    name : its label in reports.
    build : makes the unfitted model for a seed.
    confidence : how its training matrix is weighed.
    description : one line for the report.
    params : its parameters, for the report.
    default : the project's default model.
    peer : an outside model (a baseline run as its authors ship it).
    """

    name: str
    build: Callable[[int], Recommender]
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    default: bool = False
    peer: bool = False


@dataclass
class ModelResult:
    spec: ModelSpec
    per_seed: list[dict[str, float]] = field(default_factory=list)
    buckets: dict[str, dict[str, list[float]]] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    protocol: dict[str, Any]
    models: list[ModelResult]
    k: int

    def summary(self) -> dict[str, Any]:
        """Every figure, JSON-ready (see `summarise`)."""
        return summarise(self)


class EvaluationData:
    """A store's evidence, id maps and splits, with caches shared by the models of a run."""

    def __init__(self, store: Store, name: str = "store"):
        self.store = store
        self.name = name
        self.users, self.items = store_id_maps(store)
        if not len(self.users) or not len(self.items):
            raise SplitError("the data has no users or no items to evaluate on")
        self._evidence: dict[tuple, PairEvidence] = {}
        self._side: tuple[Split | None, SideInfo] | None = None
        self._time_split: Split | None = None

    def evidence(self, config: ConfidenceConfig, until: datetime | None) -> PairEvidence:
        key = (config.half_life_days, config.now, config.skip_ms, config.use_time, until)
        if key not in self._evidence:
            self._evidence[key] = gather_evidence(
                self.store, config, users=self.users, items=self.items, until=until
            )
        return self._evidence[key]

    def matrix(self, config: ConfidenceConfig, split: Split | None = None) -> sp.csr_matrix:
        """The training matrix in ``config``'s weighting, the split's test pairs removed."""
        until = split.until if split else None
        m = weigh(self.evidence(config, until), config)
        return remove_pairs(m, split.test) if split is not None else m

    def banned(self, split: Split | None = None) -> sp.csr_matrix:
        return banned_matrix(self.evidence(ConfidenceConfig(), split.until if split else None))

    def side(self, split: Split | None) -> SideInfo:
        """Side information with the split's test pairs excluded (cached for the last split)."""
        if self._side is None or self._side[0] is not split:
            self._side = (
                split,
                build_side_info(
                    self.store,
                    self.users,
                    self.items,
                    exclude=split.test if split else None,
                    until=split.until if split else None,
                ),
            )
        return self._side[1]

    def split(
        self, kind: str, seed: int, test_fraction: float, min_items: int, test_days: float
    ) -> Split:
        if kind == "user-holdout":
            base = positive_part(self.matrix(ConfidenceConfig()), binary=True)
            return user_holdout_split(base, test_fraction, seed, min_items)
        if kind == "time":
            if self._time_split is None:
                self._time_split = time_split(self.store, self.users, self.items, test_days)
            return self._time_split
        raise SplitError(f"unknown split {kind!r}; splits: {', '.join(SPLITS)}")


def recommend_filtered(
    model: Recommender,
    users: np.ndarray,
    rows: sp.csr_matrix,
    k: int,
    banned: sp.csr_matrix | None = None,
    batch_size: int = 2048,
) -> np.ndarray:
    """Top-k ids per user with the user's row (and banned items) filtered out."""
    out = np.full((len(users), k), -1, np.int32)
    for start in range(0, len(users), batch_size):
        sl = slice(start, start + batch_size)
        extra = 0
        bans = None
        if banned is not None and banned.nnz:
            bans = banned[users[sl]]
            extra = int(np.diff(bans.indptr).max(initial=0))
        ids, _ = model.recommend(users[sl], rows[sl], N=k + extra, filter_already_liked_items=True)
        ids = np.atleast_2d(ids)
        if extra:
            for r in range(len(ids)):
                b = bans.indices[bans.indptr[r] : bans.indptr[r + 1]]
                keep = ids[r][~np.isin(ids[r], b)]
                ids[r, : len(keep)] = keep
                ids[r, len(keep) :] = -1
        out[sl] = ids[:, :k]
    return out


def evaluate_models(
    data: EvaluationData,
    specs: Sequence[ModelSpec],
    *,
    split: str = "user-holdout",
    seeds: Sequence[int] = (0,),
    k: int = 20,
    test_fraction: float = 0.2,
    min_items: int = 5,
    test_days: float = 7.0,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Run every model on every seed's split; see the module docstring.

    Returns an `EvaluationResult` whose `summary` holds mean and standard deviation over
    seeds of every metric, per model, and the same by user-activity bucket.
    """
    if not specs:
        raise ValueError("no models to evaluate")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names repeat: {names}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds given")
    results = [ModelResult(spec) for spec in specs]
    total = len(seeds) * len(specs)
    done = 0
    protocol: dict[str, Any] = {
        "dataset": data.name,
        "split": split,
        "seeds": seeds,
        "k": k,
        "n_users": len(data.users),
        "n_items": len(data.items),
        "test_users": [],
        "test_pairs": [],
    }
    if split == "user-holdout":
        protocol.update(test_fraction=test_fraction, min_items=min_items)
    else:
        protocol.update(test_days=test_days)
    for seed in seeds:
        sp_ = data.split(split, seed, test_fraction, min_items, test_days)
        base = positive_part(data.matrix(ConfidenceConfig(), sp_), binary=True)
        users = sp_.test_users
        users = users[np.diff(base.indptr)[users] > 0]  # cold users are another protocol
        relevant = sp_.test[users]
        protocol["test_users"].append(int(len(users)))
        protocol["test_pairs"].append(int(relevant.nnz))
        if sp_.until is not None:
            protocol["until"] = sp_.until.isoformat()
        train_counts = np.diff(base.indptr)[users]
        bucket, labels = activity_buckets(train_counts)
        item_share = np.bincount(base.indices, minlength=base.shape[1]) / max(base.shape[0], 1)
        item_features = base.T.tocsr()
        banned = data.banned(sp_)
        side = data.side(sp_)
        for result in results:
            spec = result.spec
            if progress:
                progress(done, total, f"seed {seed}: {spec.name}")
            train = data.matrix(spec.confidence, sp_)
            began = time.perf_counter()
            model = spec.build(seed)
            model.fit(train, side)
            recs = recommend_filtered(model, users, train[users], k, banned)
            seconds = time.perf_counter() - began
            per_user = ranking_metrics(recs, relevant, k)
            figures = {name: float(np.nanmean(per_user[name])) for name in ACCURACY}
            figures["coverage"] = coverage(recs, base.shape[1])
            figures["novelty"] = novelty(recs, item_share, base.shape[0])
            figures["diversity"] = intra_list_diversity(recs, item_features, seed=seed)
            figures["seconds"] = seconds
            result.per_seed.append(figures)
            for b, label in enumerate(labels):
                mask = bucket == b
                slot = result.buckets.setdefault(label, {"users": [], "recall": [], "ndcg": []})
                slot["users"].append(float(mask.sum()))
                slot["recall"].append(
                    float(np.nanmean(per_user["recall"][mask])) if mask.any() else float("nan")
                )
                slot["ndcg"].append(
                    float(np.nanmean(per_user["ndcg"][mask])) if mask.any() else float("nan")
                )
            log.info(
                "seed %d %s: ndcg@%d %.4f recall@%d %.4f (%.1f s)",
                seed,
                spec.name,
                k,
                figures["ndcg"],
                k,
                figures["recall"],
                seconds,
            )
            done += 1
            del model
    if progress:
        progress(total, total, "done")
    return EvaluationResult(protocol, results, k)


def _stats(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(np.mean(arr)),
        "std": float(np.std(arr, ddof=1)) if len(arr) > 1 else 0.0,
        "per_seed": [float(v) for v in arr],
    }


def summarise(result: EvaluationResult) -> dict[str, Any]:
    """JSON-ready figures: per model ``recall@K``, ``ndcg@K``, ``map@K``, ``hitrate@K``,
    ``coverage@K``, ``novelty@K``, ``diversity@K`` (each mean, std over seeds with ddof 1, and
    per_seed), ``seconds`` (mean per seed of fit plus recommendation), ``by_activity``, and the
    default model's margin over each peer and baseline."""
    k = result.k
    models: dict[str, Any] = {}
    for r in result.models:
        entry: dict[str, Any] = {
            "description": r.spec.description,
            "default": r.spec.default,
            "peer": r.spec.peer,
            "params": r.spec.params,
            "confidence": r.spec.confidence.to_dict(),
        }
        for metric in (*ACCURACY, "coverage", "novelty", "diversity"):
            entry[f"{metric}@{k}"] = _stats([s[metric] for s in r.per_seed])
        seconds = [s["seconds"] for s in r.per_seed]
        entry["seconds"] = float(np.mean(seconds))
        entry["seconds_per_seed"] = [float(s) for s in seconds]
        entry["by_activity"] = {
            label: {
                "users": float(np.mean(v["users"])),
                f"recall@{k}": float(np.nanmean(v["recall"]))
                if not np.all(np.isnan(v["recall"]))
                else None,
                f"ndcg@{k}": float(np.nanmean(v["ndcg"]))
                if not np.all(np.isnan(v["ndcg"]))
                else None,
            }
            for label, v in r.buckets.items()
        }
        models[r.spec.name] = entry
    out: dict[str, Any] = {"protocol": result.protocol, "models": models}
    defaults = [r.spec.name for r in result.models if r.spec.default]
    if defaults:
        name = defaults[0]
        mine = models[name][f"ndcg@{k}"]
        comparison = {}
        for other, entry in models.items():
            if other == name:
                continue
            theirs = entry[f"ndcg@{k}"]
            margin = mine["mean"] - theirs["mean"]
            larger_std = max(mine["std"], theirs["std"])
            comparison[other] = {
                "ndcg_margin": margin,
                "larger_std": larger_std,
                "beats": bool(margin > larger_std),
            }
        out["default_model"] = name
        out["default_vs_others"] = comparison
        out["default_beats_all"] = all(c["beats"] for c in comparison.values())
    return out
