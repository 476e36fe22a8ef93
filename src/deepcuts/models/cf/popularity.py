"""Popularity baselines: the most listened items, overall or in the listener's region."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import check_matrix, check_positive, positives
from deepcuts.signals.side import SideInfo, regional_popularity


class Popularity(Recommender):
    """Every user gets the items with the most listeners (users with positive evidence).

    Attributes
    ----------
    popularity_ : float32 (n_items,): share of users who listen to each item.
    """

    name = "popularity"
    fitted = ("popularity_",)

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> Popularity:
        matrix = positives(check_matrix(user_items))
        counts = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float32)
        self.popularity_ = counts / max(matrix.shape[0], 1)
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        return np.tile(self.popularity_, (len(np.atleast_1d(userids)), 1))


class RegionalPopularity(Recommender):
    """Items most listened to in the user's region (``side.user_region``), shrunk towards the
    overall popularity: ``(n_ri + m * p_i) / (n_r + m)`` with ``n_ri`` listeners of item i in
    region r, ``n_r`` listeners in r, ``p_i`` the overall share and ``m = shrinkage``. Users
    with no known region (and new users) get the overall popularity.

    Attributes
    ----------
    region_scores_ : float32 (n_regions, n_items)
    user_region_ : int32 (n_users,), -1 where unknown
    popularity_ : float32 (n_items,)
    """

    name = "regional-popularity"
    params = ("shrinkage",)
    fitted = ("region_scores_", "user_region_", "popularity_")

    def __init__(self, shrinkage: float = 20.0):
        self.shrinkage = shrinkage

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> RegionalPopularity:
        check_positive("shrinkage", self.shrinkage, allow_zero=True)
        matrix = positives(check_matrix(user_items))
        n_users, n_items = matrix.shape
        counts = np.bincount(matrix.indices, minlength=n_items).astype(np.float32)
        self.popularity_ = counts / max(n_users, 1)
        region = None if side is None else side.user_region
        if region is None or not (region >= 0).any():
            self.user_region_ = np.full(n_users, -1, np.int32)
            self.region_scores_ = np.zeros((0, n_items), np.float32)
        else:
            region = np.asarray(region, np.int32)
            n_regions = int(region.max()) + 1
            share = regional_popularity(matrix, region, n_regions)
            listeners = np.bincount(region[region >= 0], minlength=n_regions).astype(np.float32)
            m = float(self.shrinkage)
            self.region_scores_ = (
                (share * listeners[:, None] + m * self.popularity_[None, :])
                / (listeners[:, None] + m if m > 0 else np.maximum(listeners[:, None], 1))
            ).astype(np.float32)
            self.user_region_ = region
        self.n_users_, self.n_items_ = n_users, n_items
        return self

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        userids = np.atleast_1d(np.asarray(userids, np.int64))
        out = np.tile(self.popularity_, (len(userids), 1))
        known = self.known_users(userids)
        region = np.full(len(userids), -1, np.int32)
        region[known] = self.user_region_[userids[known]]
        has = region >= 0
        if has.any():
            out[has] = self.region_scores_[region[has]]
        return out
