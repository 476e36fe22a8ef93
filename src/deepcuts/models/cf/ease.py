"""EASE: a shallow linear autoencoder with a closed form (Steck 2019), optionally with tags."""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import check_int, check_matrix, check_positive, positives, tfidf
from deepcuts.signals.side import SideInfo

log = logging.getLogger(__name__)

WEIGHTINGS = ("binary", "log", "raw")


class EASE(Recommender):
    """Embarrassingly shallow autoencoder: item-item weights ``B`` with zero diagonal that best
    rebuild the user x item matrix, ``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹``.

    The inversion is cubic in the number of items, so it is done for the items with at least
    ``min_users`` users (at most ``max_items`` of them, the most popular); other items score 0.
    With ``side_weight > 0`` and item tags in ``side``, the Gram matrix gets
    ``side_weight * TTᵀ`` added (T: L2-normalised TF-IDF tag vectors), as if each tag were a
    listener of the items it describes: items that share tags are drawn together.

    Parameters
    ----------
    l2 : λ.
    weighting : ``binary`` (positives as 1), ``log`` (log(1 + value)) or ``raw`` values.
    min_users, max_items : the item set of the inversion.
    side_weight : weight of the tag Gram matrix.
    neighbours : keep only each item's this many largest weights (by magnitude: the items that
        rebuild it most), as a sparse matrix; 0 keeps the dense matrix. On HetRec Last.fm 2K the
        dense weights are 220 MB saved; see the README for size against NDCG.

    Attributes
    ----------
    items_ : int32 (k,): the items of the model, ascending.
    B_ : float32 (k, k), or CSR float32 (k, k) with ``neighbours`` per column.
    """

    name = "ease"
    params = ("l2", "weighting", "min_users", "max_items", "side_weight", "neighbours")
    fitted = ("items_", "B_")

    def __init__(
        self,
        l2: float = 250.0,
        weighting: str = "binary",
        min_users: int = 2,
        max_items: int = 20_000,
        side_weight: float = 0.0,
        neighbours: int = 0,
    ):
        self.l2 = l2
        self.weighting = weighting
        self.min_users = min_users
        self.max_items = max_items
        self.side_weight = side_weight
        self.neighbours = neighbours

    def _weigh(self, user_items: sp.csr_matrix) -> sp.csr_matrix:
        if self.weighting == "binary":
            return positives(user_items, binary=True)
        m = positives(user_items, binary=False)
        if self.weighting == "log":
            m.data = np.log1p(m.data)
        return m

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> EASE:
        check_positive("l2", self.l2)
        check_int("min_users", self.min_users)
        check_int("max_items", self.max_items)
        check_positive("side_weight", self.side_weight, allow_zero=True)
        if (
            not isinstance(self.neighbours, int)
            or isinstance(self.neighbours, bool)
            or self.neighbours < 0
        ):
            raise ValueError(f"neighbours must be a non-negative integer, not {self.neighbours!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"weighting must be one of {', '.join(WEIGHTINGS)}, not {self.weighting!r}"
            )
        matrix = check_matrix(user_items)
        X = self._weigh(matrix)
        users_per_item = np.bincount(X.indices, minlength=X.shape[1])
        items = np.flatnonzero(users_per_item >= self.min_users)
        if len(items) > self.max_items:
            order = np.argsort(-users_per_item[items], kind="stable")[: self.max_items]
            items = np.sort(items[order])
        log.debug("EASE on %d of %d items", len(items), X.shape[1])
        Xk = X[:, items]
        G = np.asarray((Xk.T @ Xk).toarray(), dtype=np.float32)
        if self.side_weight > 0 and side is not None and side.item_tags is not None:
            from sklearn.preprocessing import normalize  # scikit-learn takes ~1 s to import

            T = normalize(tfidf(side.item_tags[items]), norm="l2", axis=1)
            G += self.side_weight * np.asarray((T @ T.T).toarray(), dtype=np.float32)
        self.items_ = items.astype(np.int32)
        B = _ease_weights(G, float(self.l2))
        self.B_ = _prune_columns(B, self.neighbours) if 0 < self.neighbours < len(items) else B
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        X = self._weigh(user_items.tocsr())
        out = np.zeros((X.shape[0], self.n_items_), dtype=np.float32)
        if len(self.items_):
            product = X[:, self.items_] @ self.B_
            out[:, self.items_] = product.toarray() if sp.issparse(product) else product
        return out

    def item_vectors(self) -> np.ndarray:
        """Each item's column of weights (how it is rebuilt from the others), zero outside."""
        self._check_fitted()
        out = np.zeros((self.n_items_, len(self.items_)), dtype=np.float32)
        out[self.items_] = self.B_.T.toarray() if sp.issparse(self.B_) else self.B_.T
        return out


def _ease_weights(G: np.ndarray, l2: float) -> np.ndarray:
    """``B = I - P / diag(P)`` (zero diagonal) with ``P = (G + l2 I)⁻¹``, by Cholesky, in place."""
    k = G.shape[0]
    if k == 0:
        return np.zeros((0, 0), np.float32)
    G[np.diag_indices(k)] += l2
    chol, info = scipy.linalg.lapack.spotrf(G, lower=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: Gram matrix not positive definite (info {info})")
    P, info = scipy.linalg.lapack.spotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inversion failed (info {info})")
    upper = np.triu(P)
    P = upper + np.triu(upper, 1).T
    B = P / (-np.diag(P))[None, :]
    B[np.diag_indices(k)] = 0.0
    return B.astype(np.float32, copy=False)


def _prune_columns(B: np.ndarray, n: int) -> sp.csr_matrix:
    """CSR of ``B`` keeping each column's ``n`` entries largest in magnitude."""
    k = B.shape[0]
    rows = np.argpartition(-np.abs(B), n - 1, axis=0)[:n]  # (n, k): each column's kept rows
    cols = np.broadcast_to(np.arange(k), rows.shape)
    values = B[rows, cols]
    out = sp.csr_matrix(
        (values.ravel(), (rows.ravel(), cols.ravel())), shape=B.shape, dtype=np.float32
    )
    out.sort_indices()
    return out
