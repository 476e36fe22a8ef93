"""Bayesian personalised ranking (implicit's CPU implementation)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from implicit.cpu.bpr import BayesianPersonalizedRanking

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import check_int, check_matrix, check_positive, positives
from deepcuts.signals.side import SideInfo


class BPR(Recommender):
    """Matrix factorisation by pairwise ranking (Rendle et al. 2009) on the positive pairs.

    Parameters
    ----------
    factors : latent dimensions (an item bias is added by implicit).
    learning_rate, regularization, iterations : SGD settings.
    random_state, num_threads : as for `ALS`.

    Attributes
    ----------
    user_factors_ : float32 (n_users, factors + 1); the last column is 1 (the bias).
    item_factors_ : float32 (n_items, factors + 1); the last column is the item bias.

    Notes
    -----
    New users are folded in by BPR's own SGD on their positive items with the item vectors
    held fixed (the item bias is kept: it is the user's weight 1 on it).
    """

    name = "bpr"
    params = (
        "factors",
        "learning_rate",
        "regularization",
        "iterations",
        "random_state",
        "num_threads",
    )
    fitted = ("user_factors_", "item_factors_")

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int | None = 0,
        num_threads: int = 0,
    ):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> BPR:
        check_int("factors", self.factors)
        check_int("iterations", self.iterations)
        check_positive("learning_rate", self.learning_rate)
        check_positive("regularization", self.regularization, allow_zero=True)
        matrix = positives(check_matrix(user_items))
        model = BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            dtype=np.float32,
            iterations=self.iterations,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )
        model.fit(matrix, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        userids = np.asarray(userids, dtype=np.int64)
        redo = ~self.known_users(userids) | bool(recalculate_user)
        vectors = np.empty((len(userids), self.user_factors_.shape[1]), np.float32)
        vectors[~redo] = self.user_factors_[userids[~redo]]
        if redo.any():
            rows = positives(user_items.tocsr()[np.flatnonzero(redo)])
            vectors[redo] = self._fold_in(rows)
        return vectors @ self.item_factors_.T

    def _fold_in(self, rows: sp.csr_matrix, epochs: int = 200) -> np.ndarray:
        """User vectors learnt by BPR's own SGD on the users' positive items, item vectors held
        fixed (seeded, so the same row gives the same vector)."""
        rng = np.random.default_rng(self.random_state)
        Y = self.item_factors_.astype(np.float64)
        lr = max(self.learning_rate, 0.05)
        out = np.zeros((rows.shape[0], Y.shape[1]), np.float32)
        for r in range(rows.shape[0]):
            pos = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
            u = np.zeros(Y.shape[1])
            u[-1] = 1.0
            if len(pos):
                for _ in range(epochs):
                    neg = rng.integers(0, len(Y), len(pos))
                    diff = Y[pos] - Y[neg]
                    x = diff @ u
                    g = 1.0 / (1.0 + np.exp(x))  # d log sigmoid(x) / dx
                    step = (g[:, None] * diff).mean(axis=0) - self.regularization * u
                    step[-1] = 0.0  # the bias weight stays 1
                    u += lr * len(pos) * step
            out[r] = u
        return out

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors_[:, :-1]
