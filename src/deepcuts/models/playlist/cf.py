"""Playlist-track collaborative filtering: item-item and playlist-playlist neighbours, sparse.

Both models read a playlists x tracks matrix (`deepcuts.signals.playlists.playlist_matrix`;
any positive value is membership) and never build the dense track x track matrix: the MPD
sample has 103,099 tracks, whose dense square would take 42 GB. They score a playlist by two
sparse products through the training playlists instead:

- ``item``: ``s = (x / n_i^alpha) Wᵀ W / n_j^alpha``, W the training rows each weighed by
  ``1 / log2(1 + length)``: the co-occurrence of every track with the seed tracks, long
  playlists counting less and popular tracks shrunk on both sides (item-based kNN over the
  whole neighbourhood, as the strong RecSys 2018 entries used it);
- ``playlist``: the ``k`` training playlists most like the seed set (overlap divided by
  ``sqrt(|seed| |p|)``), each raised to ``power``, and the sum of their rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import check_int, check_matrix, check_positive, positives
from deepcuts.signals.side import SideInfo

KINDS = ("item", "playlist")


class PlaylistCF(Recommender):
    """Neighbourhood CF on the playlist x track matrix (see the module docstring).

    Parameters
    ----------
    kind : "item" (track-track co-occurrence) or "playlist" (similar playlists).
    alpha : item: popularity shrinkage exponent; playlist: exponent of the length
        normalisation of the similarity.
    neighbours : playlist: how many similar playlists vote.
    power : playlist: the similarity is raised to this power (sharpens the vote).

    Attributes
    ----------
    rows_ : CSR float32 (n_playlists, n_items), the weighed training rows.
    item_counts_ : float32 (n_items,), playlists per track.
    lengths_ : float32 (n_playlists,), distinct tracks per playlist.

    Example
    -------
    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1, 2, 0], [1, 2, 3], [0, 0, 1]], np.float32))
    >>> model = PlaylistCF("item").fit(m)
    >>> int(model.recommend(0, sp.csr_matrix(np.array([[1, 0, 0]], np.float32)), N=1)[0][0])
    1
    """

    name = "playlist-cf"
    params = ("kind", "alpha", "neighbours", "power")
    fitted = ("rows_", "item_counts_", "lengths_")

    def __init__(
        self, kind: str = "item", alpha: float = 0.5, neighbours: int = 100, power: float = 2.0
    ):
        self.kind = kind
        self.alpha = alpha
        self.neighbours = neighbours
        self.power = power

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> PlaylistCF:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("power", self.power)
        check_int("neighbours", self.neighbours)
        binary = positives(check_matrix(user_items))
        self.lengths_ = np.diff(binary.indptr).astype(np.float32)
        self.item_counts_ = np.bincount(binary.indices, minlength=binary.shape[1]).astype(
            np.float32
        )
        if self.kind == "item":
            weights = 1.0 / np.log2(1.0 + np.maximum(self.lengths_, 1.0))
            self.rows_ = sp.csr_matrix(sp.diags(weights.astype(np.float32)) @ binary)
        else:
            self.rows_ = binary
        self.n_users_, self.n_items_ = binary.shape
        self._after_load()
        return self

    def _after_load(self) -> None:
        self._columns = self.rows_.T.tocsr()  # tracks x playlists: the first product's right side
        shrink = (
            np.power(np.maximum(self.item_counts_, 1.0), -self.alpha)
            if self.kind == "item"
            else None
        )
        self._shrink = None if shrink is None else shrink.astype(np.float32)

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        """Scores of every track for the given rows (the rows are all the model uses)."""
        self._check_fitted()
        x = positives(user_items.tocsr())
        if self.kind == "item":
            x = sp.csr_matrix(x @ sp.diags(self._shrink))
            votes = sp.csr_matrix(x @ self._columns)
            out = np.asarray((votes @ self.rows_).todense(), np.float32)
            out *= self._shrink[None, :]
            return out
        overlap = sp.csr_matrix(x @ self._columns)
        size = np.diff(x.indptr).astype(np.float32)
        return self._vote(overlap, size)

    def _vote(self, overlap: sp.csr_matrix, size: np.ndarray) -> np.ndarray:
        out = np.zeros((overlap.shape[0], self.rows_.shape[1]), np.float32)
        for r in range(overlap.shape[0]):
            start, end = overlap.indptr[r], overlap.indptr[r + 1]
            if start == end:
                continue
            cols = overlap.indices[start:end]
            sims = overlap.data[start:end] / np.power(
                np.maximum(size[r], 1.0) * np.maximum(self.lengths_[cols], 1.0), self.alpha
            )
            if len(sims) > self.neighbours:
                keep = np.argpartition(-sims, self.neighbours - 1)[: self.neighbours]
                cols, sims = cols[keep], sims[keep]
            weights = np.power(sims, self.power).astype(np.float32)
            out[r] = self.rows_[cols].T @ weights
        return out

    def cooccurrence(self, seeds: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(len(seeds), len(items)): how many training playlists hold both tracks."""
        self._check_fitted()
        member = self._columns
        a = (member[np.asarray(seeds)] > 0).astype(np.float32)
        b = (member[np.asarray(items)] > 0).astype(np.float32)
        return np.asarray((a @ b.T).todense(), np.float32)
