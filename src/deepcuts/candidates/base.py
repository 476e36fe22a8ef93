"""Candidate sources: each proposes scored items for a batch of users and keeps its name.

A source sees a `UserBatch` (the users, what they listened to, the model's scores for every
item) and the `World` (everything that is the same for all users: catalogue, item vectors,
friends, regions, playlists) and returns `Candidates`: for each user a fixed number of item
indices with scores and, per item, the index of what it is "because of" (an item, a friend or a
region, depending on the source), from which the explanation is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Protocol

import numba
import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import top_n
from deepcuts.signals.catalogue import Catalogue

NONE = -1  # padding for item and because indices


@dataclass
class World:
    """What every user's candidates are drawn from.

    Attributes
    ----------
    catalogue : item metadata.
    item_vectors : (n_items, d) float32 unit rows, or None: taste similarity between items.
    content_vectors : (n_items, d) float32 unit rows, or None: audio/text vectors (predicted CF
        vectors for items nobody played), for "sounds like" and fresh tracks.
    friends : CSR (n_users, n_users) or None.
    user_names : (n_users,) object: user ids, for "your friend F".
    listeners : CSR (n_users, n_items) or None: who streams what (by confidence).
    user_region : (n_users,) int32, -1 unknown; regions : names.
    rising : (n_regions, n_items) float32 or None: how much each item rose in each region
        over the last week compared with before.
    cooccurrence : CSR (n_items, n_items) or None: playlist co-occurrence.
    clusters : (n_items,) int32 taste cluster of each item (-1 none), from the item vectors.
    week_start : the Monday the list is for.
    """

    catalogue: Catalogue
    week_start: date
    item_vectors: np.ndarray | None = None
    content_vectors: np.ndarray | None = None
    friends: sp.csr_matrix | None = None
    user_names: np.ndarray | None = None
    listeners: sp.csr_matrix | None = None
    user_region: np.ndarray | None = None
    regions: list[str] = field(default_factory=list)
    rising: np.ndarray | None = None
    cooccurrence: sp.csr_matrix | None = None
    clusters: np.ndarray | None = None

    @cached_property
    def streams(self) -> sp.csr_matrix | None:
        """CSR (n_users, n_items): 1 where `listeners` holds a positive entry (its index arrays)."""
        if self.listeners is None:
            return None
        on = (self.listeners.data > 0).astype(np.float32)
        return sp.csr_matrix(
            (on, self.listeners.indices, self.listeners.indptr), self.listeners.shape
        )

    @cached_property
    def risers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, items, rise): each region's rising items, most risen first (ties to the lower
        item), as region r's ``items[indptr[r]:indptr[r + 1]]``."""
        if self.rising is None:
            return np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows, items = np.nonzero(self.rising > 0)
        rise = self.rising[rows, items]
        order = np.lexsort((items, -rise, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(self.rising)))])
        return (
            indptr.astype(np.int64),
            items[order].astype(np.int64),
            rise[order].astype(np.float32),
        )

    @cached_property
    def cluster_members(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, items): the items of taste cluster c are ``items[indptr[c]:indptr[c + 1]]``,
        ascending."""
        labels = self.clusters if self.clusters is not None else np.zeros(0, np.int32)
        in_one = np.flatnonzero(labels >= 0)
        items = in_one[np.argsort(labels[in_one], kind="stable")]
        counts = np.bincount(labels[in_one], minlength=int(labels.max(initial=-1)) + 1)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), items.astype(np.int64)


@dataclass
class UserBatch:
    """A batch of users being served.

    Attributes
    ----------
    users : (n,) int: row indices.
    history : CSR (n, n_items): confidence of what each user did (positive: liked).
    forbidden : CSR (n, n_items) binary: what must not be proposed (played, skipped, banned,
        on a recent list).
    scores : (n, n_items) float32: the model's predicted preference for every item, -inf where
        forbidden.
    played : CSR (n, n_items) or None: what each user played. Where given, favourites are
        chosen among these only (explanations say "Because you played X": a track only saved
        or added to a playlist was not played).
    """

    users: np.ndarray
    history: sp.csr_matrix
    forbidden: sp.csr_matrix
    scores: np.ndarray
    _ranked: tuple[np.ndarray, np.ndarray] | None = None
    _favourites: np.ndarray | None = None
    retrieve: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None  # ANN top-k, if any
    played: sp.csr_matrix | None = None

    RANKED = 100

    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, 100) items and scores: each user's best allowed items by the model, best first."""
        if self._ranked is None:
            self._ranked = (
                self.retrieve(self.RANKED)
                if self.retrieve
                else top_k_masked(self.scores, self.RANKED)
            )
        return self._ranked

    def favourites(self, k: int = 30) -> np.ndarray:
        """(n, k) int: each user's k most liked items by confidence, NONE-padded."""
        if self._favourites is None or self._favourites.shape[1] < k:
            liked = (
                self.history.copy()
                if self.played is None
                else self.history.multiply(self.played > 0).tocsr()
            )
            liked.data = np.where(liked.data > 0, liked.data, 0).astype(np.float32)
            self._favourites = top_k_sparse(
                liked, sp.csr_matrix(liked.shape, dtype=np.float32), max(k, 30)
            )[0]
        return self._favourites[:, :k]


@dataclass
class Candidates:
    """One source's proposals for a batch: (n, k) arrays, NONE-padded."""

    source: str
    items: np.ndarray
    scores: np.ndarray
    because: np.ndarray


class Source(Protocol):
    name: str

    def generate(self, batch: UserBatch, world: World) -> Candidates: ...


def top_k_masked(
    scores: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k best entries per row, among `allowed` columns (bool, n_items).

    Entries of -inf are never chosen (NONE-padded instead).
    """
    if allowed is not None:
        columns = np.flatnonzero(allowed)
        if len(columns) == 0:
            n = len(scores)
            return np.full((n, k), NONE, np.int64), np.full((n, k), -np.inf, np.float32)
        sub = scores[:, columns]
    else:
        columns, sub = None, scores
    part, values = top_n(sub, k)
    items = (
        part.astype(np.int64)
        if columns is None
        else np.where(part >= 0, columns[np.clip(part, 0, None)], NONE)
    )
    return items, values


def top_k_sparse(
    values: sp.csr_matrix, forbidden: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Like `top_k_masked` for a sparse (n, n_items) matrix: only its positive entries count,
    and none that `forbidden` (same shape, nonzero where not allowed) marks."""
    v = values.tocsr().astype(np.float32)
    if forbidden.nnz:
        v = v - v.multiply(forbidden.astype(bool))
    v.sum_duplicates()
    n = v.shape[0]
    # Each row's stored entries side by side, -inf padded: a selection over the widest row
    # instead of over every item.
    counts = np.diff(v.indptr)
    width = max(int(counts.max(initial=0)), 1)
    rows = np.repeat(np.arange(n), counts)
    at = np.arange(v.nnz) - v.indptr[rows]
    padded = np.full((n, width), -np.inf, np.float32)
    padded[rows, at] = np.where(v.data > 0, v.data, -np.inf)
    slots, scores = top_n(padded, k)
    found = slots >= 0
    items = np.full(slots.shape, NONE, np.int64)
    items[found] = v.indices[(v.indptr[:-1, None] + slots)[found]]
    return items, scores


def top_k_in_groups(
    scores: np.ndarray,
    members: tuple[np.ndarray, np.ndarray],
    groups: np.ndarray,
    k: int,
    ranked: tuple[np.ndarray, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each row and each of its groups (columns of ``(n, g)`` `groups`, -1 none), the k best
    entries of that row of `scores` among the group's items, best first and ties to the lower
    item as in `top_n`: ``(n, g * k)`` items and values, group by group, NONE-padded. -inf
    entries are never chosen. `members` is ``(indptr, items)``, each group's items ascending.

    `ranked`, each row's exact best items and values as `top_k_masked` gives them, with
    `labels` (each item's group, -1 none), saves the scan of a group that holds k of a row's
    ranked items: no item outside a row's ranked ones can beat those k, so they are the
    group's best."""
    n, g = groups.shape
    items = np.full((n, g * k), NONE, np.int64)
    values = np.full((n, g * k), -np.inf, np.float32)
    indptr, group_items = members
    if ranked is None or labels is None:
        ranked = (np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32))
        labels = np.zeros(0, np.int64)
    _top_in_groups(
        np.ascontiguousarray(scores, np.float32),
        indptr,
        group_items,
        np.ascontiguousarray(groups, np.int64),
        k,
        np.ascontiguousarray(ranked[0], np.int64),
        np.ascontiguousarray(ranked[1], np.float32),
        np.ascontiguousarray(labels, np.int64),
        items,
        values,
    )
    return items, values


@numba.njit(nogil=True, cache=True)
def _top_in_groups(
    scores, indptr, group_items, groups, k, ranked_items, ranked_values, labels, items, values
):  # pragma: no cover - compiled
    """Insertion into a sorted run of k per (row, group): a group holds a few thousand items at
    most, so one pass over them beats a selection over the whole row. A group that holds k of
    the row's ranked items takes those and is not scanned."""
    n, g = groups.shape
    for r in range(n):
        for s in range(g):
            c = groups[r, s]
            if c < 0:
                continue
            first = s * k
            filled = 0
            if len(labels):
                for p in range(ranked_items.shape[1]):
                    item = ranked_items[r, p]
                    if item >= 0 and labels[item] == c:
                        items[r, first + filled] = item
                        values[r, first + filled] = ranked_values[r, p]
                        filled += 1
                        if filled == k:
                            break
                if filled == k:
                    continue
                for p in range(filled):  # too few: the scan below starts afresh
                    items[r, first + p] = -1
                    values[r, first + p] = -np.inf
                filled = 0
            for p in range(indptr[c], indptr[c + 1]):
                item = group_items[p]
                v = scores[r, item]
                if not np.isfinite(v) or (filled == k and v <= values[r, first + k - 1]):
                    continue
                if filled < k:
                    filled += 1
                j = first + filled - 1
                while j > first and values[r, j - 1] < v:  # an equal value stays ahead: lower item
                    values[r, j] = values[r, j - 1]
                    items[r, j] = items[r, j - 1]
                    j -= 1
                values[r, j] = v
                items[r, j] = item


def top_k_through(
    values: sp.csr_matrix,
    links: sp.csr_matrix,
    forbidden: sp.csr_matrix,
    sources: np.ndarray,
    k: int,
    reason_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k best items of ``values @ links`` per row, as `top_k_sparse` takes them (positive
    entries only, none that `forbidden` marks, ties to the lower item), and for each the first
    of the row's `sources` (``(n, s)`` rows of `links`, NONE-padded) with the largest positive
    link to it (NONE where none links): what the item is "because of".
    `reason_weights` (one per stored entry of CSR `links`) weigh the links for that choice
    instead of the links' own values.

    One pass per row over the rows of `links` its values reach, instead of a sparse product,
    a masked copy and a look-up of every (source, item) pair.
    """
    v, blocked = values.tocsr(), forbidden.tocsr()
    if reason_weights is None:
        links = links.tocsr()
        reason_weights = links.data
    n = v.shape[0]
    items = np.full((n, k), NONE, np.int64)
    scores = np.full((n, k), -np.inf, np.float32)
    because = np.full((n, k), NONE, np.int64)
    _top_k_through(
        v.indptr,
        v.indices,
        v.data.astype(np.float32),
        links.indptr,
        links.indices,
        links.data.astype(np.float32),
        np.asarray(reason_weights, np.float32),
        blocked.indptr,
        blocked.indices,
        np.ascontiguousarray(sources, np.int64),
        links.shape[1],
        items,
        scores,
        because,
    )
    return items, scores, because


@numba.njit(nogil=True, cache=True)
def _top_k_through(
    v_indptr,
    v_indices,
    v_data,
    l_indptr,
    l_indices,
    l_data,
    reason_data,
    f_indptr,
    f_indices,
    sources,
    n_cols,
    items,
    scores,
    because,
):  # pragma: no cover - compiled
    n, k = items.shape
    # Per-column state, valid for row r where its stamp says r (no clearing between rows).
    total = np.zeros(n_cols, np.float32)
    seen = np.full(n_cols, -1, np.int64)
    blocked = np.full(n_cols, -1, np.int64)
    link = np.zeros(n_cols, np.float32)  # the strongest source link so far
    link_from = np.full(n_cols, -1, np.int64)  # its position among the row's sources
    source_row = np.full(len(l_indptr) - 1, -1, np.int64)
    source_at = np.zeros(len(l_indptr) - 1, np.int64)
    touched = np.empty(n_cols, np.int64)
    for r in range(n):
        for p in range(f_indptr[r], f_indptr[r + 1]):
            blocked[f_indices[p]] = r
        for s in range(
            sources.shape[1] - 1, -1, -1
        ):  # backwards: a repeated source keeps its first place
            if sources[r, s] >= 0:
                source_row[sources[r, s]] = r
                source_at[sources[r, s]] = s
        t = 0
        for p in range(v_indptr[r], v_indptr[r + 1]):
            i, x = v_indices[p], v_data[p]
            at = source_at[i] if source_row[i] == r else -1
            for q in range(l_indptr[i], l_indptr[i + 1]):
                j, w = l_indices[q], l_data[q]
                if blocked[j] == r:
                    continue
                if seen[j] != r:
                    seen[j] = r
                    total[j] = 0
                    link[j] = 0
                    link_from[j] = -1
                    touched[t] = j
                    t += 1
                total[j] += x * w
                why = reason_data[q]
                if (
                    at >= 0
                    and why > 0
                    and (why > link[j] or (why == link[j] and at < link_from[j]))
                ):
                    link[j] = why
                    link_from[j] = at
        filled = 0
        for u in range(t):
            j = touched[u]
            value = total[j]
            if not value > 0:
                continue
            if filled == k and (
                value < scores[r, k - 1] or (value == scores[r, k - 1] and j > items[r, k - 1])
            ):
                continue
            if filled < k:
                filled += 1
            c = filled - 1
            while c > 0 and (
                scores[r, c - 1] < value or (scores[r, c - 1] == value and items[r, c - 1] > j)
            ):
                scores[r, c] = scores[r, c - 1]
                items[r, c] = items[r, c - 1]
                c -= 1
            scores[r, c] = value
            items[r, c] = j
        for c in range(filled):
            s = link_from[items[r, c]]
            because[r, c] = sources[r, s] if s >= 0 else -1


def first_allowed(
    ranked: tuple[np.ndarray, np.ndarray, np.ndarray],
    groups: np.ndarray,
    forbidden: sp.csr_matrix,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the first k items of its group's ranked list (``(indptr, items, values)``,
    group g's entries ``indptr[g]:indptr[g + 1]``; `groups` -1: none) that `forbidden` does not
    mark for the row: ``(n, k)`` items and values, NONE-padded."""
    n = len(groups)
    items = np.full((n, k), NONE, np.int64)
    values = np.full((n, k), -np.inf, np.float32)
    blocked = forbidden.tocsr()
    indptr, ranked_items, ranked_values = ranked
    _first_allowed(
        indptr,
        ranked_items,
        ranked_values,
        np.asarray(groups, np.int64),
        blocked.indptr,
        blocked.indices,
        blocked.shape[1],
        items,
        values,
    )
    return items, values


@numba.njit(nogil=True, cache=True)
def _first_allowed(
    indptr, ranked_items, ranked_values, groups, f_indptr, f_indices, n_cols, items, values
):  # pragma: no cover - compiled
    n, k = items.shape
    blocked = np.full(n_cols, -1, np.int64)  # the last row that may not get the item
    for r in range(n):
        g = groups[r]
        if g < 0:
            continue
        for p in range(f_indptr[r], f_indptr[r + 1]):
            blocked[f_indices[p]] = r
        taken = 0
        for p in range(indptr[g], indptr[g + 1]):
            if taken == k:
                break
            if blocked[ranked_items[p]] != r:
                items[r, taken] = ranked_items[p]
                values[r, taken] = ranked_values[p]
                taken += 1
