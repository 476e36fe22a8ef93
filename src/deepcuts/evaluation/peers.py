"""Outside models run side by side with ours: implicit's own classes, untouched.

`ImplicitPeer` adapts any implicit recommender to the `Recommender` contract for evaluation
only (it is not saved): fit and recommend are implicit's own calls, so the figures and timings
are those of the library as its users run it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.signals.side import SideInfo


class ImplicitPeer(Recommender):
    """An implicit model behind the contract (evaluation only; `save` is not supported).

    Parameters
    ----------
    factory : makes the unfitted implicit model, e.g.
        ``lambda: implicit.cpu.als.AlternatingLeastSquares(random_state=0)``.
    """

    name = "implicit"

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> ImplicitPeer:
        self.model_ = self.factory()
        self.model_.fit(user_items.tocsr(), show_progress=False)
        self.n_users_, self.n_items_ = user_items.shape
        return self

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        if hasattr(self.model_, "similarity"):
            return np.asarray((user_items.tocsr() @ self.model_.similarity).toarray(), np.float32)
        return np.asarray(
            self.model_.user_factors[np.asarray(userids)] @ self.model_.item_factors.T, np.float32
        )

    def recommend(
        self,
        userids: int | np.ndarray,
        user_items: sp.csr_matrix,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: np.ndarray | None = None,
        recalculate_user: bool = False,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        single, users, user_items = self._check_users(userids, user_items)
        ids, scores = self.model_.recommend(
            users,
            user_items,
            N=N,
            filter_already_liked_items=filter_already_liked_items,
            filter_items=filter_items,
        )
        ids = np.asarray(ids)
        scores = np.asarray(scores, dtype=np.float32)
        if ids.ndim == 1:
            ids, scores = ids[None, :], scores[None, :]
        if ids.shape[1] < N:  # implicit's item-item models return fewer where few items score
            pad = N - ids.shape[1]
            ids = np.hstack([ids, np.full((len(ids), pad), -1)])
            scores = np.hstack([scores, np.full((len(scores), pad), -np.inf, np.float32)])
        ids = ids.astype(np.int32)
        bad = ~np.isfinite(scores) | (ids < 0)
        ids[bad] = -1
        scores[bad] = -np.inf
        return (ids[0], scores[0]) if single else (ids, scores)

    def save(self, path: Any, **_: Any) -> None:
        raise NotImplementedError("implicit peers are for evaluation only and are not saved")
