"""The bundled model classes by name, and loading a saved model of any of them.

Kept apart from `deepcuts.models.base` (the contract every model keeps) so that the contract
imports no model package: this module imports the packages, they import the contract.
"""

from __future__ import annotations

from pathlib import Path

from deepcuts.models.base import ModelFormatError, Recommender, read_saved
from deepcuts.models.cf import ALS, BPR, EASE, Hybrid, ItemKNN, Popularity, RegionalPopularity
from deepcuts.models.coldstart import ColdStartRecommender
from deepcuts.models.playlist import (
    PlaylistCF,
    PlaylistContinuation,
    PlaylistSequence,
    PlaylistTitle,
)
from deepcuts.signals.ids import IdMap

MODEL_CLASSES: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        Hybrid,
        ALS,
        BPR,
        ItemKNN,
        EASE,
        Popularity,
        RegionalPopularity,
        ColdStartRecommender,
        PlaylistContinuation,
        PlaylistCF,
        PlaylistSequence,
        PlaylistTitle,
    )
}
"""Every bundled `Recommender` that can be saved and loaded, by the name saved in its file."""


def model_class(name: str, path: str | Path | None = None) -> type[Recommender]:
    """The class saved under a model name."""
    try:
        return MODEL_CLASSES[name]
    except KeyError as exc:
        where = f"{path}: " if path else ""
        raise ModelFormatError(
            f"{where}unknown model {name!r}; known: {', '.join(sorted(MODEL_CLASSES))}"
        ) from exc


def load_model(
    path: str | Path, expected: type[Recommender] | None = None
) -> tuple[Recommender, IdMap | None, IdMap | None]:
    """A saved model and the id maps saved with it (None where there were none)."""
    meta, arrays = read_saved(path)
    cls = model_class(meta.get("model", ""), path)
    if expected is not None and not issubclass(cls, expected):
        raise ModelFormatError(f"{path}: holds a {meta['model']} model, not {expected.name}")
    users = IdMap(arrays.pop("__users__")) if "__users__" in arrays else None
    items = IdMap(arrays.pop("__items__")) if "__items__" in arrays else None
    return cls._from_state(meta, arrays), users, items
