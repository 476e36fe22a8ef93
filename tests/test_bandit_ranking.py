"""Randomised rankings: exact marginal and conditional probabilities against frequencies."""

from collections import Counter

import numpy as np
import pytest

from deepcuts.bandit import BanditInputError
from deepcuts.bandit.ranking import (
    ensemble_marginals,
    epsilon_greedy_marginals,
    epsilon_greedy_rank_marginals,
    greedy_order,
    sample_ensemble,
    sample_epsilon_greedy,
)


def brute_force_marginals(n, k, eps):
    """Enumerate every sequence of draws (n <= 5) to get P(rank r at position t)."""
    out = np.zeros((k, n))

    def walk(remaining, t, prob):
        if t == k:
            return
        m = len(remaining)
        for i, a in enumerate(remaining):
            p = (1 - eps if i == 0 else 0.0) + eps / m
            if p == 0:
                continue
            out[t, a] += prob * p
            walk(remaining[:i] + remaining[i + 1 :], t + 1, prob * p)

    walk(list(range(n)), 0, 1.0)
    return out


@pytest.mark.parametrize(
    "n,k,eps", [(1, 1, 0.3), (3, 3, 0.1), (4, 2, 0.5), (5, 5, 0.25), (5, 3, 0.0), (5, 4, 1.0)]
)
def test_dynamic_programme_matches_enumeration(n, k, eps):
    np.testing.assert_allclose(
        epsilon_greedy_rank_marginals(n, k, eps), brute_force_marginals(n, k, eps), atol=1e-12
    )


def test_marginal_rows_and_columns_are_probabilities():
    m = epsilon_greedy_rank_marginals(12, 6, 0.2)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert np.all(m.sum(axis=0) <= 1 + 1e-12)
    # greedy and uniform are the two ends
    np.testing.assert_allclose(epsilon_greedy_rank_marginals(4, 4, 0.0), np.eye(4))
    np.testing.assert_allclose(epsilon_greedy_rank_marginals(4, 3, 1.0), np.full((3, 4), 0.25))


def test_marginals_follow_scores_not_indices():
    scores = np.array([0.1, 2.0, -1.0, 0.5])
    m = epsilon_greedy_marginals(scores, 2, 0.1)
    assert m[0].argmax() == 1 and m[1].argmax() == 3
    assert list(greedy_order(np.array([1.0, 3.0, 3.0]))) == [1, 2, 0]  # ties: lower index first


def test_sampled_rankings_match_marginals_and_conditionals():
    rng = np.random.default_rng(0)
    scores = np.array([0.3, 1.2, -0.4, 0.9, 0.0])
    eps, k, n = 0.3, 3, 40_000
    marg = epsilon_greedy_marginals(scores, k, eps)
    counts = np.zeros_like(marg)
    by_prefix: dict = {}
    for _ in range(n):
        chosen, cond = sample_epsilon_greedy(scores, k, eps, rng)
        counts[np.arange(k), chosen] += 1
        # conditional at position 1 given position 0
        by_prefix.setdefault(int(chosen[0]), Counter())[(int(chosen[1]), float(cond[1]))] += 1
    se = np.sqrt(marg * (1 - marg) / n)
    assert np.all(np.abs(counts / n - marg) <= 4 * se + 1e-3)
    for first, counter in by_prefix.items():
        total = sum(counter.values())
        if total < 2000:
            continue
        for (second, p), c in counter.items():
            assert abs(c / total - p) <= 4 * np.sqrt(p * (1 - p) / total) + 2e-3, (first, second)


def test_ensemble_marginals_and_conditionals():
    rng = np.random.default_rng(1)
    members = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    m = ensemble_marginals(members, 2)
    np.testing.assert_allclose(m, [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]])
    chosen, cond = sample_ensemble(members, 2, np.random.default_rng(0))
    assert cond[0] in (0.5, 0.25) and 0 < cond[1] <= 1
    counts = Counter(tuple(sample_ensemble(members, 2, rng)[0]) for _ in range(8000))
    assert abs(counts[(0, 1)] / 8000 - 0.25) < 0.03 and abs(counts[(0, 2)] / 8000 - 0.25) < 0.03


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: epsilon_greedy_rank_marginals(3, 2, 1.5), "epsilon"),
        (lambda: epsilon_greedy_rank_marginals(3, 4, 0.1), "n_positions"),
        (lambda: epsilon_greedy_rank_marginals(3, 0, 0.1), "n_positions"),
        (lambda: epsilon_greedy_marginals(np.array([]), 1, 0.1), "scores"),
        (lambda: epsilon_greedy_marginals(np.array([1.0, np.nan]), 1, 0.1), "scores"),
        (lambda: ensemble_marginals(np.zeros(3), 1), "member_scores"),
    ],
)
def test_invalid_rankings_are_refused(call, name):
    with pytest.raises(BanditInputError, match=name):
        call()
