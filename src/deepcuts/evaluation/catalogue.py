"""The models of a standard evaluation run: ours, the baselines, and outside peers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import BM25Recommender

from deepcuts.evaluation.harness import ModelSpec
from deepcuts.evaluation.peers import ImplicitPeer
from deepcuts.models.cf import DEFAULT_MODEL, MODELS, make_model
from deepcuts.signals import RAW_COUNTS, ConfidenceConfig

PEERS = ("implicit-als", "implicit-bm25")

DESCRIPTIONS = {
    "hybrid": "EASE with tag similarity, blended with ALS, tag neighbours, playlist "
    "co-occurrence and friends' listening (the project's default)",
    "als": "ALS (implicit's conjugate-gradient solver) on log-scaled confidence",
    "bpr": "BPR (implicit) on the positive pairs",
    "item-knn": "item kNN with BM25 weighting (implicit's all-pairs kNN) on log confidence",
    "ease": "EASE (Steck 2019) on binarised plays",
    "popularity": "the most listened items",
    "regional-popularity": "the most listened items in the user's region",
}


def _seeded(name: str, params: dict[str, Any], seed: int):
    params = dict(params)
    if "random_state" in MODELS[name].params:
        params["random_state"] = seed
    return make_model(name, params)


def model_spec(
    name: str,
    params: dict[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    *,
    label: str | None = None,
    description: str = "",
    default: bool | None = None,
) -> ModelSpec:
    """A spec for one of our models (``deepcuts.models.cf.MODELS``) with given parameters."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; models: {', '.join([*MODELS, *PEERS])}")
    params = dict(params or {})
    effective = make_model(name, params).get_params()  # checks the parameters now
    effective.pop("random_state", None)  # the run's seed
    return ModelSpec(
        name=label or name,
        build=lambda seed: _seeded(name, params, seed),
        confidence=confidence or ConfidenceConfig(),
        description=description or DESCRIPTIONS.get(name, name),
        params=effective,
        default=(name == DEFAULT_MODEL) if default is None else default,
    )


def peer_spec(name: str) -> ModelSpec:
    """implicit's own models with the library's default hyperparameters, on raw play counts."""
    if name == "implicit-als":
        return ModelSpec(
            name=name,
            build=lambda seed: ImplicitPeer(lambda: AlternatingLeastSquares(random_state=seed)),
            confidence=RAW_COUNTS,
            description="implicit's AlternatingLeastSquares, library defaults, raw play counts",
            params={"library": "implicit", "class": "AlternatingLeastSquares", "defaults": True},
            peer=True,
        )
    if name == "implicit-bm25":
        return ModelSpec(
            name=name,
            build=lambda seed: ImplicitPeer(BM25Recommender),
            confidence=RAW_COUNTS,
            description="implicit's BM25Recommender (item kNN), library defaults, raw play counts",
            params={"library": "implicit", "class": "BM25Recommender", "defaults": True},
            peer=True,
        )
    raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")


STANDARD = (
    "popularity",
    "regional-popularity",
    "implicit-als",
    "implicit-bm25",
    "ease",
    "item-knn",
    "bpr",
    "als",
    DEFAULT_MODEL,
)
"""The models of ``deepcuts evaluate`` unless --models says otherwise."""

BASELINE_PARAMS: dict[str, dict[str, Any]] = {
    "ease": {"l2": 250.0, "weighting": "binary"},
}


def standard_specs(
    names: Sequence[str] = STANDARD,
    default_params: dict[str, Any] | None = None,
    confidence: ConfidenceConfig | None = None,
    default_confidence: ConfidenceConfig | None = None,
) -> list[ModelSpec]:
    """Specs for the named models: peers as their library ships them, ours with their defaults
    (EASE as the baseline with λ = 250), the default model with ``default_params`` and
    ``default_confidence`` if given; ``confidence`` weighs the others' matrices."""
    specs = []
    for name in names:
        if name in PEERS:
            specs.append(peer_spec(name))
        elif name == DEFAULT_MODEL:
            specs.append(
                model_spec(name, default_params, default_confidence or confidence, default=True)
            )
        else:
            specs.append(model_spec(name, BASELINE_PARAMS.get(name), confidence, default=False))
    return specs
