"""Vectorised random draws shared by the simulator's stages."""

from __future__ import annotations

import numpy as np


def categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (n, K), rows summing to 1: an index in [0, K) per row."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random((len(probs), 1)) * cum[:, -1:]
    return np.minimum((cum <= u).sum(axis=1), probs.shape[1] - 1)


def block_cdf(weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The cumulative distribution of ``weights`` within each run of equal, sorted ``groups``.

    Each block's values rise to exactly 1 at its last element, so ``group + cdf`` is one sorted
    array in which ``searchsorted(group + u, side="right")`` with u in [0, 1) draws an element
    of that group with probability proportional to its weight (see ``draw_in_blocks``).
    """
    cs = np.cumsum(weights, dtype=np.float64)
    block_end = np.flatnonzero(np.r_[groups[1:] != groups[:-1], True])
    block = np.cumsum(np.r_[False, groups[1:] != groups[:-1]])
    before = np.r_[0.0, cs[block_end[:-1]]][block]
    total = cs[block_end][block] - before
    cdf = np.divide(cs - before, total, out=np.ones_like(cs), where=total > 0)
    np.minimum(cdf, 1.0, out=cdf)
    cdf[block_end] = 1.0
    return cdf


def draw_in_blocks(
    rng: np.random.Generator, sorted_cdf: np.ndarray, blocks: np.ndarray
) -> np.ndarray:
    """Positions in ``sorted_cdf`` (``group + block_cdf``), one drawn within each given block."""
    return np.searchsorted(sorted_cdf, blocks + rng.random(blocks.shape), side="right")
