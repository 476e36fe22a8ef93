"""The shape of a list: caps per artist and album, diversity, and a share of fresh tracks.

`shape_list` picks `n` items greedily by maximal marginal relevance (Carbonell and Goldstein,
1998): at each step the candidate maximising ``lam * relevance - (1 - lam) * max similarity to
what is already picked``, skipping items whose artist or album has reached its cap, and keeping
enough room for the fresh tracks the list must hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class Shape:
    n: int = 30
    max_per_artist: int = 2
    max_per_album: int = 1
    mmr_lambda: float = 0.85
    fresh_share: float = 0.1
    # Long-tail tracks beyond what the model's plain top-n would hold (a share of n).
    extra_tail_share: float = 0.1


def shape_list(
    items: np.ndarray,
    relevance: np.ndarray,
    artist: np.ndarray,
    album: np.ndarray,
    fresh: np.ndarray,
    vectors: np.ndarray | None,
    shape: Shape = Shape(),  # noqa: B008 - frozen
    tail: np.ndarray | None = None,
    min_tail: int = 0,
) -> np.ndarray:
    """Positions (into `items`) of the picked candidates, in list order.

    Parameters
    ----------
    items : (m,) candidate items; relevance : (m,) higher is better.
    artist, album : (m,) int, -1 unknown (unknown counts against no cap).
    fresh : (m,) bool; vectors : (m, d) unit rows for similarity, or None (no MMR term).
    tail, min_tail : (m,) bool long-tail flags, and how many long-tail items the list must
        hold at least (where the candidates have them).
    """
    m = len(items)
    if m == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-relevance, kind="stable")
    rel = np.empty(m)
    rel[order] = 1.0 - np.arange(m) / m  # rank-scaled, so lambda means the same for every user
    max_sim = np.zeros(m)
    open_ = np.ones(m, bool)
    artist_count: dict[int, int] = {}
    album_count: dict[int, int] = {}
    fresh_needed = min(int(round(shape.fresh_share * shape.n)), int(fresh.sum()))
    if tail is None:
        tail = np.zeros(m, bool)
    tail_needed = min(min_tail, int(tail.sum()))
    picked: list[int] = []
    while len(picked) < shape.n and open_.any():
        allowed = open_.copy()
        # Keep room for the fresh and long-tail tracks the list must hold.
        for flag, needed in ((fresh, fresh_needed), (tail, tail_needed)):
            if needed > 0 and shape.n - len(picked) <= needed and (allowed & flag).any():
                allowed &= flag
        gain = shape.mmr_lambda * rel - (1 - shape.mmr_lambda) * max_sim
        gain[~allowed] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        open_[best] = False
        fresh_needed -= int(fresh[best])
        tail_needed -= int(tail[best])
        for key, counts, cap in (
            (artist[best], artist_count, shape.max_per_artist),
            (album[best], album_count, shape.max_per_album),
        ):
            if key >= 0:
                counts[key] = counts.get(key, 0) + 1
                if counts[key] >= cap:
                    open_[(artist if counts is artist_count else album) == key] = False
        if vectors is not None:
            np.maximum(max_sim, vectors @ vectors[best], out=max_sim)
    return np.array(picked, np.int64)


def shape_lists(
    items: np.ndarray,
    relevance: np.ndarray,
    artist: np.ndarray,
    album: np.ndarray,
    fresh: np.ndarray,
    tail: np.ndarray,
    min_tail: np.ndarray,
    item_vectors: np.ndarray | None,
    shape: Shape = Shape(),  # noqa: B008 - frozen
) -> np.ndarray:
    """`shape_list` for a whole batch at once, row by row in compiled code.

    Parameters
    ----------
    items : (n, m) int candidate items (anything where a row has fewer than m candidates).
    relevance : (n, m) float, -inf where a row has fewer than m candidates.
    artist, album : (n, m) int, -1 unknown. fresh, tail : (n, m) bool.
    min_tail : (n,) long-tail items each list must hold (where it has them).
    item_vectors : (n_items, d) unit rows that `items` index, or None (no MMR term).

    Returns
    -------
    (n, shape.n) int: positions into each row, in list order, -1 past the end of a short list.
    """
    n, m = relevance.shape
    picked = np.full((n, shape.n), -1, np.int64)
    if m == 0 or n == 0:
        return picked
    vectors = (
        np.zeros((0, 0), np.float32)
        if item_vectors is None
        else np.ascontiguousarray(item_vectors, np.float32)
    )
    _shape_rows(
        np.ascontiguousarray(items, np.int64),
        np.ascontiguousarray(relevance, np.float64),
        np.ascontiguousarray(artist, np.int64),
        np.ascontiguousarray(album, np.int64),
        np.ascontiguousarray(fresh, np.bool_),
        np.ascontiguousarray(tail, np.bool_),
        np.ascontiguousarray(min_tail, np.int64),
        vectors,
        item_vectors is not None,
        shape.max_per_artist,
        shape.max_per_album,
        np.float32(shape.mmr_lambda),
        np.float32(1 - shape.mmr_lambda),
        int(round(shape.fresh_share * shape.n)),
        picked,
    )
    return picked


@numba.njit(nogil=True, cache=True)
def _shape_rows(
    items,
    relevance,
    artist,
    album,
    fresh,
    tail,
    min_tail,
    vectors,
    use_vectors,
    max_artist,
    max_album,
    lam,
    similarity,
    fresh_share,
    picked,
):  # pragma: no cover - compiled
    """The greedy MMR of `shape_list`, one row after another, written into `picked`: the same
    steps, float32 like the NumPy batch code it replaced, ties to the lower position (as
    `np.argmax`). Compiled and free of the GIL, so the weekly run's threads shape in parallel.

    Similarities are brought up to date lazily: a candidate's similarity to the list only
    grows, so its gain with the picks it has not yet been compared with is an upper bound,
    and a candidate whose bound cannot beat the best so far is skipped without comparing it.
    Those compared are compared with the same picks in the same order as the eager loop, so
    the picks are the same, with a fraction of the dot products."""
    n, m = relevance.shape
    n_pick = picked.shape[1]
    base = np.empty(m, np.float32)
    max_sim = np.empty(m, np.float32)
    compared = np.empty(m, np.int64)  # the picks max_sim has seen: picked[r, :compared[j]]
    open_ = np.empty(m, np.bool_)
    lazy = use_vectors and similarity > 0  # with similarity <= 0 the bound does not hold
    bounded = similarity >= 0 or not use_vectors  # no gain exceeds its relevance
    row_vectors = np.empty(
        (m, vectors.shape[1]), np.float32
    )  # the row's candidates' vectors, close
    for r in range(n):
        count = 0
        for j in range(m):
            open_[j] = np.isfinite(relevance[r, j])
            count += open_[j]
        if count == 0:
            continue
        # Rank-scaled within the row's own candidates, so lambda means the same for everyone.
        order = np.argsort(-relevance[r], kind="mergesort")
        for rank in range(m):
            base[order[rank]] = (np.float32(1.0) - np.float32(rank) / np.float32(count)) * lam
        max_sim[:] = 0
        compared[:] = 0
        if use_vectors and not lazy:
            for j in range(m):
                if open_[j]:
                    row_vectors[j] = vectors[items[r, j]]
        fresh_needed, tail_needed = 0, 0
        for j in range(m):
            if open_[j]:
                fresh_needed += fresh[r, j]
                tail_needed += tail[r, j]
        fresh_needed = min(fresh_share, fresh_needed)
        tail_needed = min(min_tail[r], tail_needed)
        for step in range(n_pick):
            remaining = n_pick - step
            # Keep room for the fresh and long-tail tracks the list must hold.
            only_fresh = False
            if fresh_needed > 0 and remaining <= fresh_needed:
                for j in range(m):
                    if open_[j] and fresh[r, j]:
                        only_fresh = True
                        break
            only_tail = False
            if tail_needed > 0 and remaining <= tail_needed:
                for j in range(m):
                    if open_[j] and tail[r, j] and (fresh[r, j] or not only_fresh):
                        only_tail = True
                        break
            # Candidates by relevance, best first: once one's relevance alone is below the best
            # gain so far, no later one can win (a gain is at most its relevance).
            best, best_gain = -1, np.float32(-np.inf)
            for rank in range(m):
                j = order[rank]
                if bounded and best >= 0 and base[j] < best_gain:
                    break
                if (
                    not open_[j]
                    or (only_fresh and not fresh[r, j])
                    or (only_tail and not tail[r, j])
                ):
                    continue
                gain = base[j] - similarity * max_sim[j]
                if best >= 0 and not _better(gain, j, best_gain, best):
                    continue
                if lazy and compared[j] < step:
                    for s in range(compared[j], step):
                        sim = _dot(vectors[items[r, j]], vectors[items[r, picked[r, s]]])
                        if sim > max_sim[j]:
                            max_sim[j] = sim
                    compared[j] = step
                    gain = base[j] - similarity * max_sim[j]
                    if best >= 0 and not _better(gain, j, best_gain, best):
                        continue
                best, best_gain = j, gain
            if best < 0:
                break
            picked[r, step] = best
            open_[best] = False
            fresh_needed -= fresh[r, best]
            tail_needed -= tail[r, best]
            for keys, cap in ((artist, max_artist), (album, max_album)):
                key = keys[r, best]
                if key < 0:
                    continue
                held = 0
                for p in range(step + 1):
                    held += keys[r, picked[r, p]] == key
                if held >= cap:
                    for j in range(m):
                        if keys[r, j] == key:
                            open_[j] = False
            if use_vectors and not lazy:  # what is still open gets more similar to the list
                for j in range(m):
                    if open_[j]:
                        sim = _dot(row_vectors[j], row_vectors[best])
                        if sim > max_sim[j]:
                            max_sim[j] = sim


@numba.njit(nogil=True, cache=True, inline="always")
def _better(gain, j, best_gain, best):  # pragma: no cover - compiled
    """Whether candidate j's gain beats the best so far: higher, or equal at a lower position
    (as `np.argmax` over positions picks)."""
    return gain > best_gain or (gain == best_gain and j < best)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _dot(a, b):  # pragma: no cover - compiled
    """float32 dot product, vectorised (fastmath lets the sum be reordered)."""
    total = np.float32(0.0)
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total
