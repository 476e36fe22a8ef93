"""Rankers: a learned one (what users went on to stream) and a hand-weighted blend fallback."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepcuts.ranking.features import Pool

# Hand-set weights of the fallback blend; features not named weigh 0.
BLEND_WEIGHTS = {
    "cf": 1.0,
    "taste_clusters": 0.6,
    "playlists": 0.4,
    "content": 0.3,
    "friends": 0.4,
    "region": 0.3,
    "new_releases": 0.3,
    "preference": 0.4,
    "artist_familiarity": 0.5,
    "novelty": 0.05,  # about -log(share of plays): a nudge towards the long tail
}


@dataclass
class BlendRanker:
    """A weighted sum of features: the fallback where there is nothing to learn from."""

    weights: dict[str, float] = field(default_factory=lambda: dict(BLEND_WEIGHTS))
    kind = "blend"

    def score(self, pool: Pool) -> np.ndarray:
        w = np.array([self.weights.get(name, 0.0) for name in pool.names], np.float32)
        return pool.features @ w


@dataclass
class LearnedRanker:
    """Logistic regression on standardised features, trained on later streams (>= 30 s).

    Attributes
    ----------
    names : feature names, in column order.
    mean_, scale_ : standardisation learnt in `fit`.
    coef_, intercept_ : the model.
    """

    names: list[str] = field(default_factory=list)
    C: float = 1.0
    kind = "learned"
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    coef_: np.ndarray | None = None
    intercept_: float = 0.0
    fit_figures: dict = field(default_factory=dict)  # candidates and labels it learnt from

    def fit(self, pool: Pool, labels: np.ndarray) -> LearnedRanker:
        from sklearn.linear_model import LogisticRegression

        if labels.sum() == 0 or labels.sum() == len(labels):
            raise ValueError(
                "the ranker needs both streamed and not-streamed candidates to learn from"
            )
        self.names = list(pool.names)
        x = pool.features.astype(np.float64)
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1
        model = LogisticRegression(C=self.C, max_iter=500)
        model.fit((x - self.mean_) / self.scale_, labels.astype(int))
        self.coef_ = model.coef_.ravel()
        self.intercept_ = float(model.intercept_[0])
        self.fit_figures = {"candidates": int(len(labels)), "streamed": int(labels.sum())}
        return self

    def score(self, pool: Pool) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("LearnedRanker used before fit")
        if list(pool.names) != self.names:
            raise ValueError(f"the ranker was trained on features {self.names}, not {pool.names}")
        x = (pool.features - self.mean_) / self.scale_
        return (x @ self.coef_ + self.intercept_).astype(np.float32)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(
                {
                    "format_version": 1,
                    "names": self.names,
                    "C": self.C,
                    "mean": self.mean_.tolist(),
                    "scale": self.scale_.tolist(),
                    "coef": self.coef_.tolist(),
                    "intercept": self.intercept_,
                }
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> LearnedRanker:
        data = json.loads(Path(path).read_text())
        if data.get("format_version") != 1:
            raise ValueError(f"{path}: not a deepcuts ranker file of format 1")
        return cls(
            names=data["names"],
            C=data["C"],
            mean_=np.array(data["mean"]),
            scale_=np.array(data["scale"]),
            coef_=np.array(data["coef"]),
            intercept_=data["intercept"],
        )


def load_ranker(store, model_id: str | None = None):
    """(ranker, record) of a registered weekly ranker (the default one unless ``model_id``), or
    None where none is registered."""
    from deepcuts.models.registry import default_model, get_model_of_kind

    record = (
        get_model_of_kind(store, model_id, "weekly-ranker")
        if model_id
        else default_model(store, "weekly-ranker")
    )
    if record is None:
        return None
    return LearnedRanker.load(record.path), record
