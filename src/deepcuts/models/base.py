"""The contract every recommender keeps (collaborative filtering, text, audio, hybrids).

Models work on internal integer ids only (rows and columns of the user x item matrix built by
``deepcuts.signals``); mapping external ids happens once, outside model code. Everything a
model learns in ``fit`` is a public attribute with a trailing underscore. Saved models are a
``.npz`` of arrays plus JSON metadata, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

FORMAT_VERSION = 1


class ModelFormatError(Exception):
    """A saved model file is not one this deepcuts can load."""


class Recommender(ABC):
    """Base class of all recommenders.

    Subclasses set ``name`` and implement `fit` and `score`; `recommend` and `similar_items`
    then come for free (subclasses with a faster path override them). To be saved, a subclass
    lists its constructor arguments in ``params`` and its fitted arrays in ``fitted``.
    """

    name: ClassVar[str]
    params: ClassVar[tuple[str, ...]] = ()
    fitted: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def fit(self, user_items: sp.csr_matrix) -> Recommender:
        """Learn from a users x items confidence matrix (CSR, float32). Returns self."""

    @abstractmethod
    def score(self, userids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        """Predicted preference of each given user for every item.

        Parameters
        ----------
        userids : int array, shape (n,)
        user_items : CSR, shape (n, n_items): those users' rows (used by models that fold in
            users from their items, and by item-based models).

        Returns
        -------
        float32 array, shape (n, n_items)
        """

    def recommend(
        self,
        userids: int | np.ndarray,
        user_items: sp.csr_matrix,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-N items for one user or a batch of users.

        Parameters
        ----------
        userids : int or int array, shape (n,)
        user_items : CSR, shape (n, n_items): the given users' rows, one per user id.
        N : how many items per user.
        filter_already_liked_items : leave out items in the user's row.
        filter_items : item ids never to recommend.

        Returns
        -------
        (ids, scores): int32 and float32 arrays of shape (n, N) (shape (N,) for a single id).
        Where fewer than N items remain, ids are padded with -1 and scores with -inf.
        """
        single = np.isscalar(userids)
        users = np.atleast_1d(np.asarray(userids))
        if user_items.shape[0] != len(users):
            raise ValueError(
                f"user_items has {user_items.shape[0]} rows for {len(users)} user ids"
            )
        all_ids, all_scores = [], []
        for start in range(0, len(users), batch_size):
            rows = user_items[start : start + batch_size]
            scores = np.asarray(self.score(users[start : start + batch_size], rows), np.float32)
            if filter_already_liked_items:
                coo = rows.tocoo()
                scores[coo.row, coo.col] = -np.inf
            if filter_items is not None and len(filter_items):
                scores[:, filter_items] = -np.inf
            ids, top = top_n(scores, N)
            all_ids.append(ids)
            all_scores.append(top)
        ids, scores = np.vstack(all_ids), np.vstack(all_scores)
        return (ids[0], scores[0]) if single else (ids, scores)

    def similar_items(self, itemids: int | np.ndarray, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items most like the given ones (cosine of item vectors by default).

        Returns (ids, scores) of shape (n, N), or (N,) for a single id; the item itself first.
        """
        vectors = self.item_vectors()
        if vectors is None:
            raise NotImplementedError(f"{self.name} has no item vectors for similar_items")
        single = np.isscalar(itemids)
        items = np.atleast_1d(np.asarray(itemids))
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1
        unit = vectors / norms[:, None]
        ids, scores = top_n(unit[items] @ unit.T, N)
        return (ids[0], scores[0]) if single else (ids, scores)

    def item_vectors(self) -> np.ndarray | None:
        """An embedding per item (n_items, d), where the model has one."""
        return None

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        arrays = {name: getattr(self, name) for name in self.fitted}
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "params": {p: getattr(self, p) for p in self.params},
        }
        np.savez(Path(path), __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        with np.load(Path(path), allow_pickle=False) as data:
            try:
                meta: dict[str, Any] = json.loads(bytes(data["__meta__"]).decode())
            except KeyError as exc:
                raise ModelFormatError(f"{path}: not a deepcuts model file") from exc
            if meta.get("format_version") != FORMAT_VERSION:
                raise ModelFormatError(
                    f"{path}: model format {meta.get('format_version')}, this deepcuts reads "
                    f"{FORMAT_VERSION}"
                )
            if meta["model"] != cls.name:
                raise ModelFormatError(f"{path}: holds a {meta['model']} model, not {cls.name}")
            model = cls(**meta["params"])
            for name in cls.fitted:
                setattr(model, name, data[name])
        return model


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the n largest entries of each row, best first."""
    n_cols = scores.shape[1]
    k = min(n, n_cols)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_cols else np.tile(np.arange(n_cols), (len(scores), 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    ids[~np.isfinite(vals)] = -1
    if k < n:
        ids = np.hstack([ids, np.full((len(ids), n - k), -1, np.int32)])
        vals = np.hstack([vals, np.full((len(vals), n - k), -np.inf, np.float32)])
    return ids, vals
