"""Features of each (user, candidate) pair: what every source thought of it, and what it is.

Candidates from all sources are merged per user: an item proposed by several sources appears
once, with each source's rank-based score (1 for its first item, falling to 0 past its last; 0
where the source did not propose it). To these come the model's predicted preference (as a
z-score within the user's candidates), the item's popularity and novelty, the listener's
familiarity with its artist, and its age.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from deepcuts.candidates.base import NONE, Candidates, UserBatch, World
from deepcuts.candidates.sources import EPOCH_ORDINAL

ITEM_FEATURES = (
    "preference",
    "log_popularity",
    "novelty",
    "artist_familiarity",
    "log_age_days",
    "fresh",
)


@dataclass
class Pool:
    """All candidates of a batch, merged: one row per (user, item) pair.

    Attributes
    ----------
    row : (m,) int: the user's position in the batch.
    item : (m,) int: the item.
    features : (m, f) float32, columns named by `names`.
    because : (m, n_sources) int: each source's "because" index (NONE where it did not propose).
    sources : source names, in column order of `because` and of the first features.
    """

    row: np.ndarray
    item: np.ndarray
    features: np.ndarray
    because: np.ndarray
    sources: list[str]
    names: list[str]

    def column(self, name: str) -> np.ndarray:
        return self.features[:, self.names.index(name)]


def merge(
    batch: UserBatch, world: World, proposals: list[Candidates], fresh_days: int = 28
) -> Pool:
    """Merge every source's proposals for a batch and compute the features."""
    n_items = world.catalogue.n_items
    n = len(batch.users)
    sources = [c.source for c in proposals]
    # Every source's proposals side by side: which source each column is, and its rank score
    # there (1 for its first item, falling towards 0).
    widths = [c.items.shape[1] for c in proposals]
    nothing = np.zeros((n, 0), np.int64)
    items = np.hstack([c.items for c in proposals] + [nothing])
    because_of = np.hstack([c.because for c in proposals] + [nothing])
    column_source = np.repeat(np.arange(len(proposals)), widths)
    column_score = np.concatenate([1.0 - np.arange(w) / w for w in widths] + [np.zeros(0)]).astype(
        np.float32
    )
    row, item, at = _distinct_per_row(np.ascontiguousarray(items, np.int64), n_items)
    source_scores = np.zeros((len(row), len(proposals)), np.float32)
    because = np.full((len(row), len(proposals)), NONE, np.int64)
    r, c = np.nonzero(at >= 0)
    source_scores[at[r, c], column_source[c]] = column_score[c]
    because[at[r, c], column_source[c]] = because_of[r, c]
    item_features = _item_features(batch, world, row, item, fresh_days)
    return Pool(
        row=row,
        item=item,
        features=np.hstack([source_scores, item_features]),
        because=because,
        sources=sources,
        names=sources + list(ITEM_FEATURES),
    )


def _item_features(
    batch: UserBatch, world: World, row: np.ndarray, item: np.ndarray, fresh_days: int
) -> np.ndarray:
    cat = world.catalogue
    raw = batch.scores[row, item].astype(np.float64)
    finite = np.isfinite(raw)
    raw = np.where(finite, raw, 0.0)
    n = len(batch.users)
    count = np.maximum(np.bincount(row, weights=finite, minlength=n), 1)
    mean = np.bincount(row, weights=raw * finite, minlength=n) / count
    var = np.bincount(row, weights=(raw - mean[row]) ** 2 * finite, minlength=n) / count
    std = np.sqrt(var)
    std[std == 0] = 1
    preference = np.where(finite, (raw - mean[row]) / std[row], -3.0)
    plays = cat.plays[item]
    log_pop = np.log1p(plays)
    novelty = -np.log((plays + 1) / (cat.plays.sum() + cat.n_items))
    familiarity = _artist_familiarity(batch, cat.artist, row, item)
    today = world.week_start.toordinal() - EPOCH_ORDINAL
    day = cat.release_day[item].astype(np.int64)
    known = day > np.iinfo(np.int32).min
    age = np.where(known, np.clip(today - day, 0, None), 3650)
    fresh = ((age < fresh_days) & known) | (plays == 0)
    return np.column_stack(
        [preference, log_pop, novelty, familiarity, np.log1p(age), fresh]
    ).astype(np.float32)


def _artist_familiarity(
    batch: UserBatch, artist_of: np.ndarray, row: np.ndarray, item: np.ndarray
) -> np.ndarray:
    """Share of the user's positive history (by confidence) that is by the candidate's artist."""
    liked = batch.history.copy()
    liked.data = np.clip(liked.data, 0, None)
    known = artist_of >= 0
    n_artists = int(artist_of[known].max()) + 1 if known.any() else 0
    if n_artists == 0:
        return np.zeros(len(row))
    to_artist = sp.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (np.flatnonzero(known), artist_of[known])),
        shape=(len(artist_of), n_artists),
    )
    per_artist = (liked @ to_artist).tocsr()
    totals = np.asarray(liked.sum(axis=1)).ravel()
    totals[totals == 0] = 1
    artist = artist_of[item]
    out = np.zeros(len(row))
    has = artist >= 0
    out[has] = np.asarray(per_artist[row[has], artist[has]]).ravel() / totals[row[has]]
    return out


@numba.njit(nogil=True, cache=True)
def _distinct_per_row(
    items: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Each row's distinct items (NONE skipped), ascending, rows in order: (row, item) of
    each, and for every entry of `items` its place in that list (-1 for NONE)."""
    n, w = items.shape
    seen = np.full(n_items, -1, np.int64)  # the last row that had the item
    place = np.empty(n_items, np.int64)
    out_row = np.empty(n * w, np.int64)
    out_item = np.empty(n * w, np.int64)
    at = np.full((n, w), -1, np.int64)
    total = 0
    for r in range(n):
        start = total
        for c in range(w):
            item = items[r, c]
            if item >= 0 and seen[item] != r:
                seen[item] = r
                out_item[total] = item
                total += 1
        out_item[start:total].sort()
        for p in range(start, total):
            out_row[p] = r
            place[out_item[p]] = p
        for c in range(w):
            if items[r, c] >= 0:
                at[r, c] = place[items[r, c]]
    return out_row[:total].copy(), out_item[:total].copy(), at
