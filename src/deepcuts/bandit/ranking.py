"""Randomised rankings and their exact position probabilities.

A policy fills positions 0, 1, ..., K-1 from n candidates without replacement. These functions
give, for each way the policies here randomise, the draw itself and the exact probabilities:

- the *marginal* matrix ``P[k, a]`` = P(candidate a ends up at position k), shape (K, n); each
  row sums to 1 (K <= n);
- the *conditional* probability of each draw given the earlier positions.

Epsilon-greedy ranking (BaRT's exploration applied to every position): at each position, with
probability ``1 - epsilon`` take the best remaining candidate by score, otherwise a uniformly
random remaining one. Its marginal probabilities depend only on each candidate's rank, and are
computed exactly by a small dynamic programme (`epsilon_greedy_marginals`). Greedy is
``epsilon = 0`` and uniform random order is ``epsilon = 1``.

An ensemble ranking (bootstrap Thompson sampling) draws one of M score vectors uniformly and
ranks greedily by it: its marginals are the average of the M greedy rankings.
"""

from __future__ import annotations

import math

import numpy as np

from deepcuts.bandit.types import BanditInputError


def greedy_order(scores: np.ndarray) -> np.ndarray:
    """Candidate indices from best to worst score; ties go to the lower index."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise BanditInputError(f"scores: must be a non-empty 1-d array, not shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise BanditInputError("scores: has non-finite values")
    return np.argsort(-scores, kind="stable")


def _check(n: int, n_positions: int, epsilon: float) -> None:
    if not 0.0 <= epsilon <= 1.0:
        raise BanditInputError(f"epsilon: must be in [0, 1], not {epsilon!r}")
    if not 1 <= n_positions <= n:
        raise BanditInputError(
            f"n_positions: must be between 1 and the {n} candidates, not {n_positions!r}"
        )


def epsilon_greedy_rank_marginals(n: int, n_positions: int, epsilon: float) -> np.ndarray:
    """P(the candidate of rank r is placed at position k), shape (n_positions, n).

    Dynamic programme over, for each rank r, the number u of better-ranked candidates still
    unplaced while r itself is unplaced. With m candidates left at a step:

    - u = 0 (r is the best left): r is placed with probability (1 - eps) + eps / m;
    - u > 0: r is placed with probability eps / m; u drops by one with probability
      (1 - eps) + eps * u / m (greedy takes the best left, or exploration takes a better one).

    O(n_positions * n^2) time.
    """
    _check(n, n_positions, epsilon)
    eps = float(epsilon)
    out = np.zeros((n_positions, n))
    # state[r, u]: P(rank r unplaced and u better-ranked ones unplaced)
    state = np.zeros((n, n))
    state[np.arange(n), np.arange(n)] = 1.0
    u = np.arange(n)[None, :]
    for t in range(n_positions):
        m = n - t
        pick = np.where(u == 0, (1.0 - eps) + eps / m, eps / m)
        down = np.where(u > 0, (1.0 - eps) + eps * u / m, 0.0)
        stay = 1.0 - pick - down
        out[t] = (state * pick).sum(axis=1)
        new = state * stay
        new[:, :-1] += state[:, 1:] * down[:, 1:]
        state = new
    return out


# `epsilon_greedy_rank_marginals` by (n, n_positions, epsilon), as an array and as lists of
# Python floats: a policy ranks pages of the same few sizes over and over.
_MARGINAL_CACHE: dict[tuple[int, int, float], tuple[np.ndarray, list[list[float]]]] = {}


def _rank_marginals(
    n: int, n_positions: int, epsilon: float
) -> tuple[np.ndarray, list[list[float]]]:
    key = (n, n_positions, epsilon)
    kept = _MARGINAL_CACHE.get(key)
    if kept is None:
        by_rank = epsilon_greedy_rank_marginals(n, n_positions, epsilon)
        kept = (by_rank, by_rank.tolist())
        if len(_MARGINAL_CACHE) < 4096:
            _MARGINAL_CACHE[key] = kept
    return kept


def epsilon_greedy_marginals(
    scores: np.ndarray, n_positions: int, epsilon: float, order: np.ndarray | None = None
) -> np.ndarray:
    """P(candidate a at position k) under epsilon-greedy ranking by ``scores``, shape (K, n).
    ``order``, where given, is `greedy_order(scores)` already made."""
    order = greedy_order(scores) if order is None else order
    by_rank, _ = _rank_marginals(order.size, int(n_positions), float(epsilon))
    out = np.empty_like(by_rank)
    out[:, order] = by_rank
    return out


def draw_epsilon_greedy(
    scores: list[float], n_positions: int, epsilon: float, rng: np.random.Generator
) -> tuple[list[int], list[float], list[float]]:
    """`sample_epsilon_greedy` and the drawn candidates' `epsilon_greedy_marginals` for a
    few candidates, in plain Python: (chosen, P(each chosen one at its position), P(each draw
    | earlier ones)). The same draws from ``rng`` and the same numbers: a served page ranks
    its shelves and each shown shelf's cards, a dozen candidates or so each, and NumPy's cost
    a call is most of what a ranking that small costs."""
    n = len(scores)
    _check(n, n_positions, epsilon)
    if not all(map(math.isfinite, scores)):
        raise BanditInputError("scores: has non-finite values")
    # best first, ties to the lower index: `greedy_order` (a reversed sort keeps ties in order)
    order = sorted(range(n), key=scores.__getitem__, reverse=True)
    _, by_rank = _rank_marginals(n, n_positions, float(epsilon))
    remaining = list(range(n))  # the ranks not yet placed, best first
    chosen, marginal, cond = [], [], []
    for t in range(n_positions):
        m = n - t
        i = int(rng.integers(m)) if epsilon > 0 and rng.random() < epsilon else 0
        r = remaining.pop(i)
        chosen.append(order[r])
        marginal.append(by_rank[t][r])
        cond.append(((1.0 - epsilon) if i == 0 else 0.0) + epsilon / m)
    return chosen, marginal, cond


def sample_epsilon_greedy(
    scores: np.ndarray,
    n_positions: int,
    epsilon: float,
    rng: np.random.Generator,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw an epsilon-greedy ranking (``order``, where given, is `greedy_order(scores)`).

    Returns
    -------
    (chosen, conditional): int array (K,) of candidate indices by position, and float array
    (K,) of P(that draw | earlier positions).
    """
    order = greedy_order(scores) if order is None else order
    n = order.size
    _check(n, n_positions, epsilon)
    remaining = order.tolist()  # best first
    chosen = np.empty(n_positions, dtype=np.int64)
    cond = np.empty(n_positions)
    for t in range(n_positions):
        m = len(remaining)
        if epsilon > 0 and rng.random() < epsilon:
            i = int(rng.integers(m))
        else:
            i = 0
        a = remaining.pop(i)
        chosen[t] = a
        cond[t] = ((1.0 - epsilon) if i == 0 else 0.0) + epsilon / m
    return chosen, cond


def ensemble_marginals(member_scores: np.ndarray, n_positions: int) -> np.ndarray:
    """P(candidate a at position k) when one of M score rows is drawn uniformly and followed
    greedily, shape (K, n). ``member_scores`` has shape (M, n)."""
    member_scores = np.asarray(member_scores, dtype=np.float64)
    if member_scores.ndim != 2 or member_scores.shape[0] == 0:
        raise BanditInputError(
            f"member_scores: must have shape (M, n) with M >= 1, not {member_scores.shape}"
        )
    n = member_scores.shape[1]
    _check(n, n_positions, 0.0)
    out = np.zeros((n_positions, n))
    for row in member_scores:
        order = greedy_order(row)[:n_positions]
        out[np.arange(n_positions), order] += 1.0
    return out / member_scores.shape[0]


def sample_ensemble(
    member_scores: np.ndarray, n_positions: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a member uniformly and rank greedily by it; return (chosen, conditional) as in
    `sample_epsilon_greedy`. The conditional probability of the draw at position k is the share
    of members that agree with the earlier positions and put the same candidate at k."""
    member_scores = np.asarray(member_scores, dtype=np.float64)
    n = member_scores.shape[1]
    _check(n, n_positions, 0.0)
    orders = np.stack([greedy_order(row)[:n_positions] for row in member_scores])
    m = int(rng.integers(len(orders)))
    chosen = orders[m].copy()
    cond = np.empty(n_positions)
    agree = np.ones(len(orders), dtype=bool)
    for t in range(n_positions):
        same = agree & (orders[:, t] == chosen[t])
        cond[t] = same.sum() / agree.sum()
        agree = same
    return chosen, cond
