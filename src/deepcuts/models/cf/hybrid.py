"""The default model: EASE with tags, blended with ALS, tag neighbours, playlists and friends."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import (
    check_int,
    check_matrix,
    check_positive,
    cosine_top_k,
    positives,
    scale_rows,
    tfidf,
)
from deepcuts.models.cf.als import ALS
from deepcuts.models.cf.ease import EASE
from deepcuts.signals.side import SideInfo, friends_listening

log = logging.getLogger(__name__)


class Hybrid(Recommender):
    """A weighted blend of five views of a listener's taste, each scaled per user to [-1, 1]:

    - ``ease``: `EASE` on the binarised plays, its Gram matrix enriched with tag similarity
      (``ease_side_weight``): the strongest single model on listening data;
    - ``als``: `ALS` on the confidence values (log plays, skips, saves): a smooth, dense view
      that reaches the long tail EASE leaves out;
    - ``tags``: item neighbours by tag text (TF-IDF cosine, ``tag_neighbours`` per item);
    - ``playlists``: item neighbours by playlist co-occurrence (cosine);
    - ``friends``: the share of the user's friends who listen to each item.

    A view without data (no tags, no playlists, no friends in the store) or with weight 0 is
    left out. New users are scored from their rows: EASE and the neighbour views use the row as
    it is, ALS folds the user in, and the friends view is empty for them.

    EASE keeps each item's ``ease_neighbours`` strongest weights, sparse (0: all, dense): on
    HetRec Last.fm 2K the saved model is 43.7 MB instead of 220 MB, NDCG@20 0.3027 against
    0.3040 over 5 seeds (README).

    The weights were tuned by ``deepcuts tune`` on a validation split carved from the training
    part of HetRec Last.fm 2K (never its test part); tune them again for another catalogue.

    Attributes
    ----------
    ease_ : EASE or None; als_ : ALS or None
    tag_similarity_, playlist_similarity_ : CSR float32 (n_items, n_items) or None
    friend_items_ : CSR float32 (n_users, n_items) or None
    """

    name = "hybrid"
    params = (
        "ease_l2",
        "ease_side_weight",
        "ease_min_users",
        "ease_max_items",
        "ease_neighbours",
        "als_factors",
        "als_regularization",
        "als_alpha",
        "als_iterations",
        "tag_neighbours",
        "playlist_neighbours",
        "w_ease",
        "w_als",
        "w_tags",
        "w_playlists",
        "w_friends",
        "random_state",
        "num_threads",
    )
    fitted = ("tag_similarity_", "playlist_similarity_", "friend_items_")
    components = ("ease_", "als_")

    def __init__(
        self,
        ease_l2: float = 200.0,
        ease_side_weight: float = 20.0,
        ease_min_users: int = 2,
        ease_max_items: int = 20_000,
        ease_neighbours: int = 300,
        als_factors: int = 32,
        als_regularization: float = 0.5,
        als_alpha: float = 1.0,
        als_iterations: int = 15,
        tag_neighbours: int = 200,
        playlist_neighbours: int = 200,
        w_ease: float = 1.0,
        w_als: float = 0.7,
        w_tags: float = 0.2,
        w_playlists: float = 0.2,
        w_friends: float = 0.3,
        random_state: int | None = 0,
        num_threads: int = 0,
    ):
        self.ease_l2 = ease_l2
        self.ease_side_weight = ease_side_weight
        self.ease_min_users = ease_min_users
        self.ease_max_items = ease_max_items
        self.ease_neighbours = ease_neighbours
        self.als_factors = als_factors
        self.als_regularization = als_regularization
        self.als_alpha = als_alpha
        self.als_iterations = als_iterations
        self.tag_neighbours = tag_neighbours
        self.playlist_neighbours = playlist_neighbours
        self.w_ease = w_ease
        self.w_als = w_als
        self.w_tags = w_tags
        self.w_playlists = w_playlists
        self.w_friends = w_friends
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> Hybrid:
        for name in ("w_ease", "w_als", "w_tags", "w_playlists", "w_friends"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_int("tag_neighbours", self.tag_neighbours)
        check_int("playlist_neighbours", self.playlist_neighbours)
        matrix = check_matrix(user_items)
        side = side or SideInfo()
        self.ease_ = self.als_ = None
        self.tag_similarity_ = self.playlist_similarity_ = self.friend_items_ = None
        if self.w_ease > 0:
            self.ease_ = EASE(
                l2=self.ease_l2,
                weighting="binary",
                min_users=self.ease_min_users,
                max_items=self.ease_max_items,
                side_weight=self.ease_side_weight,
                neighbours=self.ease_neighbours,
            ).fit(matrix, side)
        if self.w_als > 0:
            self.als_ = ALS(
                factors=self.als_factors,
                regularization=self.als_regularization,
                alpha=self.als_alpha,
                iterations=self.als_iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
            ).fit(matrix)
        if self.w_tags > 0 and side.item_tags is not None and side.item_tags.nnz:
            self.tag_similarity_ = cosine_top_k(tfidf(side.item_tags), self.tag_neighbours)
        if (
            self.w_playlists > 0
            and side.item_cooccurrence is not None
            and side.item_cooccurrence.nnz
        ):
            self.playlist_similarity_ = _cooccurrence_similarity(
                side.item_cooccurrence, self.playlist_neighbours
            )
        if self.w_friends > 0 and side.friends is not None and side.friends.nnz:
            self.friend_items_ = friends_listening(side.friends, positives(matrix))
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def component_scores(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> dict[str, np.ndarray]:
        """Each view's scores (n, n_items), scaled per user, before weighting."""
        self._check_fitted()
        userids = np.atleast_1d(np.asarray(userids, np.int64))
        rows = user_items.tocsr()
        binary = positives(rows)
        out: dict[str, np.ndarray] = {}
        if self.ease_ is not None:
            out["ease"] = self.ease_.score(userids, rows)
        if self.als_ is not None:
            out["als"] = self.als_.score(userids, rows, recalculate_user)
        if self.tag_similarity_ is not None:
            out["tags"] = np.asarray((binary @ self.tag_similarity_).toarray(), np.float32)
        if self.playlist_similarity_ is not None:
            out["playlists"] = np.asarray(
                (binary @ self.playlist_similarity_).toarray(), np.float32
            )
        if self.friend_items_ is not None:
            friends = np.zeros((len(userids), self.n_items_), np.float32)
            known = self.known_users(userids)
            if known.any():
                friends[known] = self.friend_items_[userids[known]].toarray()
            out["friends"] = friends
        for scores in out.values():
            scale_rows(scores)
        return out

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        parts = self.component_scores(userids, user_items, recalculate_user)
        total = np.zeros((len(np.atleast_1d(userids)), self.n_items_), np.float32)
        for key, scores in parts.items():
            total += np.float32(getattr(self, f"w_{key}")) * scores
        return total

    def item_vectors(self) -> np.ndarray | None:
        self._check_fitted()
        return None if self.als_ is None else self.als_.item_factors_


def _cooccurrence_similarity(cooc: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Cosine of co-occurrence counts: C_ij / sqrt(n_i n_j), the k largest per item."""
    c = cooc.tocsr().astype(np.float32)
    n = np.sqrt(np.maximum(np.asarray(c.sum(axis=1)).ravel(), 1e-12)).astype(np.float32)
    scaled = sp.diags(1 / n) @ c @ sp.diags(1 / n)
    scaled = scaled.tocsr()
    rows, cols, vals = [], [], []
    for r in range(scaled.shape[0]):
        start, end = scaled.indptr[r], scaled.indptr[r + 1]
        if end - start > k:
            top = np.argpartition(-scaled.data[start:end], k - 1)[:k] + start
        else:
            top = np.arange(start, end)
        rows.append(np.full(len(top), r))
        cols.append(scaled.indices[top])
        vals.append(scaled.data[top])
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=scaled.shape,
        dtype=np.float32,
    )
    out.sort_indices()
    return out
