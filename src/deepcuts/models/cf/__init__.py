"""Collaborative filtering: ALS (the workhorse), BPR, item-kNN, EASE, popularity baselines, and
the hybrid that blends them with tags, playlists and friends (the default of ``deepcuts train``).
"""

from deepcuts.models.base import Recommender
from deepcuts.models.cf.als import ALS
from deepcuts.models.cf.bpr import BPR
from deepcuts.models.cf.ease import EASE
from deepcuts.models.cf.hybrid import Hybrid
from deepcuts.models.cf.knn import ItemKNN
from deepcuts.models.cf.popularity import Popularity, RegionalPopularity

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (Hybrid, ALS, BPR, ItemKNN, EASE, Popularity, RegionalPopularity)
}
"""The models ``deepcuts train`` can fit, by name."""

DEFAULT_MODEL = Hybrid.name
"""The model ``deepcuts train`` fits unless told otherwise: the best the evaluation found."""


def make_model(name: str, params: dict | None = None) -> Recommender:
    """A model by name, with parameters (unknown names or parameters are a ValueError)."""
    try:
        cls = MODELS[name]
    except KeyError as exc:
        raise ValueError(f"unknown model {name!r}; models: {', '.join(MODELS)}") from exc
    params = dict(params or {})
    unknown = set(params) - set(cls.params)
    if unknown:
        raise ValueError(
            f"{name} has no parameter(s) {', '.join(sorted(unknown))}; "
            f"its parameters: {', '.join(cls.params) or 'none'}"
        )
    return cls(**params)


__all__ = [
    "ALS",
    "BPR",
    "DEFAULT_MODEL",
    "EASE",
    "MODELS",
    "Hybrid",
    "ItemKNN",
    "Popularity",
    "RegionalPopularity",
    "make_model",
]
