"""Item-based nearest neighbours (implicit's all-pairs kNN with BM25, TF-IDF or cosine)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import all_pairs_knn, bm25_weight, tfidf_weight

from deepcuts.models.base import Recommender, top_n
from deepcuts.models.cf._util import check_int, check_matrix, check_positive, positives
from deepcuts.signals.side import SideInfo

WEIGHTINGS = ("bm25", "tfidf", "cosine", "none")


class ItemKNN(Recommender):
    """Item-item collaborative filtering: a user's score for an item is the sum of the item's
    similarities to the user's items, weighed by the user's confidence in them.

    Similarities are dot products of the items' user vectors after weighting (``bm25``:
    Okapi BM25 with ``K1`` and ``B``, as in implicit's BM25Recommender; ``tfidf``; ``cosine``;
    ``none``), each item keeping its ``neighbours`` most similar items.

    Attributes
    ----------
    similarity_ : CSR float32 (n_items, n_items)
    """

    name = "item-knn"
    params = ("neighbours", "weighting", "K1", "B", "binary", "num_threads")
    fitted = ("similarity_",)

    def __init__(
        self,
        neighbours: int = 100,
        weighting: str = "bm25",
        K1: float = 1.2,
        B: float = 0.75,
        binary: bool = False,
        num_threads: int = 0,
    ):
        self.neighbours = neighbours
        self.weighting = weighting
        self.K1 = K1
        self.B = B
        self.binary = binary
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> ItemKNN:
        check_int("neighbours", self.neighbours)
        check_positive("K1", self.K1, allow_zero=True)
        check_positive("B", self.B, allow_zero=True)
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"weighting must be one of {', '.join(WEIGHTINGS)}, not {self.weighting!r}"
            )
        matrix = positives(check_matrix(user_items), binary=self.binary)
        item_users = matrix.T.tocsr()
        if self.weighting == "bm25":
            weighted = bm25_weight(item_users, self.K1, self.B).tocsr()
        elif self.weighting == "tfidf":
            weighted = tfidf_weight(item_users).tocsr()
        elif self.weighting == "cosine":
            from sklearn.preprocessing import normalize  # scikit-learn takes ~1 s to import

            weighted = normalize(item_users, norm="l2", axis=1)
        else:
            weighted = item_users
        # all_pairs_knn takes users x items and compares the columns
        sim = (
            all_pairs_knn(
                weighted.T.astype(np.float64).tocsr(),
                self.neighbours,
                show_progress=False,
                num_threads=self.num_threads,
            )
            .tocsr()
            .astype(np.float32)
        )
        sim.sort_indices()
        self.similarity_ = sim
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        rows = positives(user_items, binary=self.binary)
        return np.asarray((rows @ self.similarity_).toarray(), dtype=np.float32)

    def similar_items(
        self, itemids: int | np.ndarray, N: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        single = np.isscalar(itemids)
        items = np.atleast_1d(np.asarray(itemids))
        scores = np.asarray(self.similarity_[items].toarray(), dtype=np.float32)
        scores[scores == 0] = -np.inf
        scores[np.arange(len(items)), items] = np.inf
        ids, vals = top_n(scores, N)
        vals[:, 0] = np.where(ids[:, 0] == items, 1.0, vals[:, 0])
        return (ids[0], vals[0]) if single else (ids, vals)
