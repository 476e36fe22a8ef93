"""The shape of a list: caps per artist and album, diversity, and a share of fresh tracks.

`shape_list` picks `n` items greedily by maximal marginal relevance (Carbonell and Goldstein,
1998): at each step the candidate maximising ``lam * relevance - (1 - lam) * max similarity to
what is already picked``, skipping items whose artist or album has reached its cap, and keeping
enough room for the fresh tracks the list must hold.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        for key, counts, cap in ((artist[best], artist_count, shape.max_per_artist), (album[best], album_count, shape.max_per_album)):
            if key >= 0:
                counts[key] = counts.get(key, 0) + 1
                if counts[key] >= cap:
                    open_[(artist if counts is artist_count else album) == key] = False
        if vectors is not None:
            np.maximum(max_sim, vectors @ vectors[best], out=max_sim)
    return np.array(picked, np.int64)


def shape_lists(
    relevance: np.ndarray,
    artist: np.ndarray,
    album: np.ndarray,
    fresh: np.ndarray,
    tail: np.ndarray,
    min_tail: np.ndarray,
    vectors: np.ndarray | None,
    shape: Shape = Shape(),  # noqa: B008 - frozen
) -> np.ndarray:
    """`shape_list` for a whole batch at once.

    Parameters
    ----------
    relevance : (n, m) float, -inf where a row has fewer than m candidates.
    artist, album : (n, m) int, -1 unknown. fresh, tail : (n, m) bool.
    min_tail : (n,) long-tail items each list must hold (where it has them).
    vectors : (n, m, d) unit rows, or None.

    Returns
    -------
    (n, shape.n) int: positions into each row, in list order, -1 past the end of a short list.
    """
    n, m = relevance.shape
    picked = np.full((n, shape.n), -1, np.int64)
    if m == 0:
        return picked
    rows = np.arange(n)
    open_ = np.isfinite(relevance)
    order = np.argsort(-relevance, axis=1, kind="stable")
    # Rank-scaled within each row's own candidates, as in `shape_list`.
    count = np.maximum(open_.sum(axis=1, keepdims=True), 1).astype(np.float32)
    rel = np.empty((n, m), np.float32)
    np.put_along_axis(rel, order, np.float32(1.0) - np.arange(m, dtype=np.float32) / count, axis=1)
    rel *= shape.mmr_lambda
    # What a candidate is worth before the similarity term; -inf once picked or capped out.
    base = np.where(open_, rel, -np.inf).astype(np.float32)
    max_sim = np.zeros((n, m), np.float32)
    keys = [(artist, shape.max_per_artist), (album, shape.max_per_album)]
    picked_keys = [np.full((n, shape.n), -1, np.int64) for _ in keys]
    fresh_needed = np.minimum(int(round(shape.fresh_share * shape.n)), (fresh & open_).sum(axis=1))
    tail_needed = np.minimum(min_tail, (tail & open_).sum(axis=1))
    similarity = 1 - shape.mmr_lambda
    # Every step updates every row at once (no per-row copies): a row with nothing left to
    # pick stays so, and its updates below change nothing it will use.
    for step in range(shape.n):
        gain = base - similarity * max_sim if vectors is not None else base.copy()
        remaining = shape.n - step
        for flag, needed in ((fresh, fresh_needed), (tail, tail_needed)):
            must = np.flatnonzero((needed > 0) & (remaining <= needed))
            if len(must):  # keep room for the fresh and long-tail tracks the list must hold
                only = np.where(flag[must], gain[must], -np.inf)
                has = np.isfinite(only).any(axis=1)
                gain[must[has]] = only[has]
        best = gain.argmax(axis=1)
        ok = np.isfinite(gain[rows, best])
        if not ok.any():
            break
        picked[ok, step] = best[ok]
        base[rows[ok], best[ok]] = -np.inf
        fresh_needed -= fresh[rows, best] & ok
        tail_needed -= tail[rows, best] & ok
        for (key, cap), history in zip(keys, picked_keys, strict=True):
            chosen = np.where(ok, key[rows, best], -1)
            history[:, step] = chosen
            full = np.flatnonzero((chosen >= 0) & ((history[:, : step + 1] == chosen[:, None]).sum(axis=1) >= cap))
            if len(full):
                base[full] = np.where(key[full] == chosen[full, None], -np.inf, base[full])
        if vectors is not None:
            sims = np.einsum("nmd,nd->nm", vectors, vectors[rows, best])
            np.maximum(max_sim, sims, out=max_sim)
    return picked
