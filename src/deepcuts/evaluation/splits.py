"""Splits of a store's interactions into training and test data.

- **user-holdout**: every user with at least ``min_items`` positive items holds out
  ``round(test_fraction * n)`` of them, chosen at random (seeded); the held-out pairs are the
  test data and are removed from every training signal of that user (plays, and via
  ``SideInfo``'s ``exclude``, the user's own tag assignments and playlist entries on them).
- **time**: the last ``test_days`` days of listening are the test window; training uses only
  what happened before it; a user's test items are the items they streamed in the window and
  had no training evidence for (training items are excluded from the ranking anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp

from deepcuts.signals import RAW_COUNTS, IdMap, build_interactions, positive_part
from deepcuts.store import Store

SPLITS = ("user-holdout", "time")


class SplitError(ValueError):
    """A split cannot be made from the data (too little of it, no times)."""


@dataclass
class Split:
    """Test pairs and the training window.

    Attributes
    ----------
    kind : "user-holdout" or "time".
    seed : the seed of a holdout split (None for time).
    test : CSR float32 (n_users, n_items), 1 for each test pair.
    until : the end of the training window (time split), else None.
    """

    kind: str
    seed: int | None
    test: sp.csr_matrix
    until: datetime | None = None

    @property
    def test_users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.test.indptr) > 0)


def holdout_pairs(
    positives: sp.csr_matrix, test_fraction: float = 0.2, seed: int = 0, min_items: int = 5
) -> sp.csr_matrix:
    """Per-user random holdout of positive pairs (module docstring). Returns the test pairs.

    Example
    -------
    >>> m = sp.csr_matrix(np.ones((2, 10)))
    >>> holdout_pairs(m, 0.2, seed=1).sum(axis=1).A.ravel().tolist()
    [2.0, 2.0]
    """
    if not 0 < test_fraction < 1:
        raise SplitError(f"test fraction must be between 0 and 1, not {test_fraction}")
    if min_items < 2:
        raise SplitError(f"min_items must be at least 2, not {min_items}")
    m = positives.tocsr().copy()
    m.sort_indices()
    counts = np.diff(m.indptr)
    n_test = np.where(
        counts >= min_items, np.floor(test_fraction * counts + 0.5).astype(np.int64), 0
    )
    n_test = np.minimum(n_test, counts - 1)
    rng = np.random.default_rng(seed)
    keys = rng.random(m.nnz)
    row_of = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((keys, row_of))  # within each row, a random order
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)[order]
    chosen = rank < n_test[row_of]
    test = sp.csr_matrix(
        (np.ones(int(chosen.sum()), np.float32), (row_of[chosen], m.indices[chosen])),
        shape=m.shape,
    )
    test.sort_indices()
    return test


def user_holdout_split(
    positives: sp.csr_matrix, test_fraction: float = 0.2, seed: int = 0, min_items: int = 5
) -> Split:
    test = holdout_pairs(positives, test_fraction, seed, min_items)
    if test.nnz == 0:
        raise SplitError(f"no user has {min_items} or more items to hold out from")
    return Split("user-holdout", seed, test)


def time_split(
    store: Store, users: IdMap, items: IdMap, test_days: float = 7.0, end: datetime | None = None
) -> Split:
    """The last ``test_days`` of listening as test (module docstring).

    ``end`` moves the end of the test window back from the latest listen (validation windows
    for tuning sit just before the test window).
    """
    latest = store.conn.execute("SELECT max(played_at) FROM listens").fetchall()[0][0]
    if latest is None:
        raise SplitError("a time split needs listens with times (played_at); this data has none")
    if not test_days > 0:
        raise SplitError(f"test days must be positive, not {test_days}")
    if end is not None:
        latest = min(latest, end)
    until = latest - timedelta(days=test_days)
    earliest = store.conn.execute("SELECT min(played_at) FROM listens").fetchall()[0][0]
    if earliest >= until:
        raise SplitError(
            f"all listens fall within the last {test_days:g} days: nothing left to train on"
        )
    full = build_interactions(
        store, RAW_COUNTS, users=users, items=items, until=None if end is None else end
    )
    train = build_interactions(store, RAW_COUNTS, users=users, items=items, until=until)
    new_plays = positive_part(full.matrix - train.matrix)
    seen = train.seen()
    test = positive_part(new_plays - new_plays.multiply(seen), binary=True)
    has_train = np.diff(positive_part(train.matrix).indptr) > 0
    test = sp.diags(has_train.astype(np.float32)) @ test
    test = sp.csr_matrix(test)
    test.eliminate_zeros()
    test.sort_indices()
    if test.nnz == 0:
        raise SplitError("no user streamed anything new in the test window")
    return Split("time", None, test, until)
