"""Alternating least squares on implicit feedback (implicit's conjugate-gradient solver)."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.topk import topk

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import check_int, check_matrix, check_positive, fold_in
from deepcuts.signals.side import SideInfo

log = logging.getLogger(__name__)


class ALS(Recommender):
    """Implicit-feedback matrix factorisation (Hu, Koren and Volinsky 2008), fitted by implicit's
    ALS with the conjugate-gradient solver (Takács, Pilászy and Tikk 2011).

    The confidence of each pair is ``alpha`` times the value in the matrix built by
    ``deepcuts.signals`` (log-scaled plays, skips as negatives, saves and adds as strong
    positives); the weighting is chosen there, not here.

    The defaults are what ``deepcuts tune`` found on a validation split carved from the
    training part of HetRec Last.fm 2K (64 factors, λ = 1, with log confidence ``1 + log(1 + p)``).

    Parameters
    ----------
    factors : latent dimensions.
    regularization : L2 penalty λ.
    alpha : multiplies every confidence value.
    iterations : ALS sweeps.
    cg_steps : conjugate-gradient steps per user or item and sweep.
    use_cg : the CG solver (True) or the exact Cholesky one.
    random_state : seed of the initial factors.
    num_threads : threads for fitting and batch recommendation (0: all cores).

    Attributes
    ----------
    user_factors_ : float32 (n_users, factors)
    item_factors_ : float32 (n_items, factors)

    Example
    -------
    >>> import scipy.sparse as sp
    >>> m = sp.random(50, 40, density=0.2, format="csr", dtype="float32", random_state=0)
    >>> model = ALS(factors=8, iterations=5).fit(m)
    >>> ids, scores = model.recommend(0, m[0], N=5)
    >>> ids.shape
    (5,)
    """

    name = "als"
    params = (
        "factors",
        "regularization",
        "alpha",
        "iterations",
        "cg_steps",
        "use_cg",
        "random_state",
        "num_threads",
    )
    fitted = ("user_factors_", "item_factors_")

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 1.0,
        iterations: int = 15,
        cg_steps: int = 3,
        use_cg: bool = True,
        random_state: int | None = 0,
        num_threads: int = 0,
    ):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.use_cg = use_cg
        self.random_state = random_state
        self.num_threads = num_threads

    def _validate(self) -> None:
        check_int("factors", self.factors)
        check_int("iterations", self.iterations)
        check_int("cg_steps", self.cg_steps)
        check_positive("regularization", self.regularization, allow_zero=True)
        check_positive("alpha", self.alpha)
        check_int("num_threads", self.num_threads, minimum=0)

    def _implicit_model(self) -> AlternatingLeastSquares:
        model = AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            dtype=np.float32,
            use_native=True,
            use_cg=self.use_cg,
            iterations=self.iterations,
            calculate_training_loss=False,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )
        model.cg_steps = self.cg_steps
        return model

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> ALS:
        self._validate()
        matrix = check_matrix(user_items)
        model = self._implicit_model()
        model.fit(matrix, show_progress=False)
        self.user_factors_ = model.user_factors
        self.item_factors_ = model.item_factors
        self.n_users_, self.n_items_ = matrix.shape
        self._yty = None
        return self

    def _after_load(self) -> None:
        self._yty = None

    def user_vectors(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        """Factors of the given users: learnt ones, or solved from their rows (fold-in) for new
        users and where ``recalculate_user``."""
        userids = np.asarray(userids, dtype=np.int64)
        known = self.known_users(userids)
        redo = ~known | bool(recalculate_user)
        out = np.empty((len(userids), self.item_factors_.shape[1]), dtype=np.float32)
        if (~redo).any():
            out[~redo] = self.user_factors_[userids[~redo]]
        if redo.any():
            if self._yty is None:
                y = self.item_factors_.astype(np.float64)
                self._yty = y.T @ y
            out[redo] = fold_in(
                self.item_factors_,
                user_items.tocsr()[np.flatnonzero(redo)],
                self.regularization,
                self.alpha,
                self._yty,
            )
        return out

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        return self.user_vectors(userids, user_items, recalculate_user) @ self.item_factors_.T

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
        vectors = self.user_vectors(users, user_items, recalculate_user)
        if not user_items.has_sorted_indices:
            user_items = user_items.copy()
            user_items.sort_indices()
        ids, scores = topk(
            self.item_factors_,
            vectors,
            N,
            filter_query_items=user_items if filter_already_liked_items else None,
            filter_items=None if filter_items is None else np.asarray(filter_items, dtype=np.int32),
            num_threads=self.num_threads,
        )
        ids = ids.astype(np.int32, copy=False)
        scores = scores.astype(np.float32, copy=False)
        bad = ~np.isfinite(scores) | (ids < 0)
        ids[bad] = -1
        scores[bad] = -np.inf
        return (ids[0], scores[0]) if single else (ids, scores)

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors_
