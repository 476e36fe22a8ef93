"""Sequence-aware co-occurrence: which tracks follow the last tracks of a playlist.

From the training playlists in their order, ``follows_[a, b]`` adds ``1 / d`` every time track
``b`` comes ``d`` places after track ``a`` with ``d <= window``; each row is then divided by
``n_a ** alpha`` (``n_a``: playlists holding ``a``), so that a track found everywhere does not
drown the rest. A playlist is scored from its last ``last`` tracks (the largest values of its
row in a `playlist_matrix`: positions), the most recent weighing most (``decay`` per step back).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender
from deepcuts.models.cf._util import check_int, check_matrix, check_positive
from deepcuts.signals.side import SideInfo


class PlaylistSequence(Recommender):
    """What follows the last tracks (see the module docstring).

    Parameters
    ----------
    window : how many places after a track still count as following it.
    last : how many of the playlist's last tracks vote.
    decay : weight of each step back from the last track (the last has weight 1).
    alpha : row normalisation exponent.

    Attributes
    ----------
    follows_ : CSR float32 (n_items, n_items).

    Example
    -------
    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1, 2, 3, 0], [0, 1, 2, 3]], np.float32))
    >>> model = PlaylistSequence(window=1).fit(m)
    >>> int(model.recommend(0, sp.csr_matrix(np.array([[0, 1, 0, 0]], np.float32)), N=1)[0][0])
    2
    """

    name = "playlist-sequence"
    params = ("window", "last", "decay", "alpha")
    fitted = ("follows_",)

    def __init__(self, window: int = 5, last: int = 10, decay: float = 0.8, alpha: float = 0.3):
        self.window = window
        self.last = last
        self.decay = decay
        self.alpha = alpha

    def fit(self, user_items: sp.csr_matrix, side: SideInfo | None = None) -> PlaylistSequence:
        check_int("window", self.window)
        check_int("last", self.last)
        check_positive("decay", self.decay)
        check_positive("alpha", self.alpha, allow_zero=True)
        matrix = check_matrix(user_items)
        n_items = matrix.shape[1]
        src, dst, val = [], [], []
        for r in range(matrix.shape[0]):
            seq = _in_order(matrix, r)
            for d in range(1, self.window + 1):
                if len(seq) <= d:
                    break
                src.append(seq[:-d])
                dst.append(seq[d:])
                val.append(np.full(len(seq) - d, 1.0 / d, np.float32))
        if src:
            follows = sp.csr_matrix(
                (np.concatenate(val), (np.concatenate(src), np.concatenate(dst))),
                shape=(n_items, n_items),
            )
            follows.sum_duplicates()
        else:
            follows = sp.csr_matrix((n_items, n_items), dtype=np.float32)
        counts = np.bincount(matrix.indices, minlength=n_items).astype(np.float32)
        scale = np.power(np.maximum(counts, 1.0), -self.alpha).astype(np.float32)
        self.follows_ = sp.csr_matrix(sp.diags(scale) @ follows, dtype=np.float32)
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def query(self, user_items: sp.csr_matrix) -> sp.csr_matrix:
        """(n, n_items) weights of each row's last tracks (the rest zero)."""
        rows = user_items.tocsr()
        r_idx, c_idx, w = [], [], []
        for r in range(rows.shape[0]):
            seq = _in_order(rows, r)[-self.last :][::-1]
            r_idx.append(np.full(len(seq), r))
            c_idx.append(seq)
            w.append(np.power(self.decay, np.arange(len(seq))).astype(np.float32))
        if not r_idx:
            return sp.csr_matrix(rows.shape, dtype=np.float32)
        return sp.csr_matrix(
            (np.concatenate(w), (np.concatenate(r_idx), np.concatenate(c_idx))),
            shape=rows.shape,
            dtype=np.float32,
        )

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        return np.asarray((self.query(user_items) @ self.follows_).todense(), np.float32)


def _in_order(matrix: sp.csr_matrix, r: int) -> np.ndarray:
    start, end = matrix.indptr[r], matrix.indptr[r + 1]
    cols, vals = matrix.indices[start:end], matrix.data[start:end]
    return cols[np.argsort(vals, kind="stable")].astype(np.int64)
