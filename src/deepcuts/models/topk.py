"""The compiled selection behind `deepcuts.models.base.top_n`.

Kept out of `models.base` so that importing the model contract does not import numba.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK = 64  # columns per vectorised count (a constant width is what lets it vectorise)
STRIDE = 16  # a wide row is sampled at every STRIDE-th column to guess its threshold
MAX_SORTED = 16  # a guess that keeps more than MAX_SORTED * k entries sends the row to the heap


@numba.njit(nogil=True, cache=True)
def top_rows(scores, k, ids, vals):  # pragma: no cover - compiled
    """The k best finite entries of each row of `scores` into `ids` / `vals` (pre-filled with
    -1 / -inf), best first, ties to the lower index.

    A wide row first tries a threshold: a value from a sample of the row (every STRIDE-th
    column) that about twice k entries should reach. One pass keeps the entries at or above
    it; if at least k did, the k-th best is among them with all its ties, and a stable sort
    of those few orders them exactly. Otherwise (few finite entries, a sample that guessed
    too high, or too low: a row of equal scores, such as a listener with no history, keeps
    every entry, and one pass of the heap costs less than sorting them all) the row goes
    through `_heap_row`, which needs no guess. Free of the GIL, so batches selected in threads
    run on every core."""
    n_rows, n_cols = scores.shape
    heap_v = np.empty(k, scores.dtype)
    heap_i = np.empty(k, np.int64)
    n_sample = (n_cols + STRIDE - 1) // STRIDE
    rank = 2 * k // STRIDE + 1  # the sample's rank-th best: about 2k entries of the row reach it
    guess = n_cols >= 8 * k and rank < n_sample
    best = np.empty(rank, scores.dtype)
    kept_v = np.empty(n_cols if guess else 0, scores.dtype)
    kept_i = np.empty(n_cols if guess else 0, np.int64)
    for r in range(n_rows):
        row = scores[r]
        if guess:
            threshold = _sample_rank(row, rank, best)
            if threshold > -np.inf:  # not -inf, not NaN
                kept = _at_least(row, threshold, kept_v, kept_i)
                if k <= kept <= MAX_SORTED * k:
                    # ascending columns, so a stable sort keeps ties to the lower index
                    order = np.argsort(-kept_v[:kept], kind="mergesort")
                    for out in range(k):
                        vals[r, out] = kept_v[order[out]]
                        ids[r, out] = kept_i[order[out]]
                    continue
        _heap_row(row, k, ids[r], vals[r], heap_v, heap_i)


@numba.njit(nogil=True, cache=True)
def _sample_rank(row, rank, best):  # pragma: no cover - compiled
    """The rank-th best of every STRIDE-th entry of `row` (-inf if fewer are finite), kept in
    `best` in descending order as the sample passes: most entries cost one comparison."""
    best[:] = -np.inf
    last = rank - 1
    for s in range(0, len(row), STRIDE):
        v = row[s]
        if v > best[last]:  # NaN never
            p = last
            while p > 0 and best[p - 1] < v:
                best[p] = best[p - 1]
                p -= 1
            best[p] = v
    return best[last]


@numba.njit(nogil=True, cache=True)
def _at_least(row, threshold, kept_v, kept_i):  # pragma: no cover - compiled
    """The entries of `row` at or above `threshold` (NaN never), in column order; their count.
    Most blocks of columns hold none, and a count over a block of constant width vectorises."""
    n_cols = len(row)
    kept = 0
    end = n_cols - n_cols % BLOCK
    for j in range(0, end, BLOCK):
        block = row[j : j + BLOCK]
        above = 0
        for q in range(BLOCK):
            above += block[q] >= threshold
        if above:
            for q in range(BLOCK):
                if block[q] >= threshold:
                    kept_v[kept] = block[q]
                    kept_i[kept] = j + q
                    kept += 1
    for q in range(end, n_cols):
        if row[q] >= threshold:
            kept_v[kept] = row[q]
            kept_i[kept] = q
            kept += 1
    return kept


@numba.njit(nogil=True, cache=True, inline="always")
def _heap_row(row, k, ids, vals, heap_v, heap_i):  # pragma: no cover - compiled
    """One row's k best by one pass that keeps the k best so far in a min-heap whose root is
    the worst of them (the lowest value, and of equal values the highest index). Columns
    come in ascending order, so a later column enters only with a strictly higher value than
    the root: one comparison per entry, and the heap is touched about k * ln(n / k) times."""
    n_cols = len(row)
    size = 0
    j = 0
    while j < n_cols and size < k:
        v = row[j]
        if v > -np.inf:  # -inf and NaN are never chosen
            # Sift up past every parent better than the new entry: of equal values the
            # parent's is better, since its index is lower than any column to come.
            c = size
            size += 1
            while c > 0:
                p = (c - 1) // 2
                if heap_v[p] < v:
                    break
                heap_v[c] = heap_v[p]
                heap_i[c] = heap_i[p]
                c = p
            heap_v[c] = v
            heap_i[c] = j
        j += 1
    # The heap is full: most blocks of columns hold nothing better than its worst, and a
    # count over a block of constant width vectorises, so such blocks cost little.
    while j + BLOCK <= n_cols:
        worst = heap_v[0]
        above = 0
        for q in range(BLOCK):
            if row[j + q] > worst:
                above += 1
        if above:
            for q in range(j, j + BLOCK):
                if row[q] > heap_v[0]:
                    _replace_root(heap_v, heap_i, size, row[q], q)
        j += BLOCK
    for q in range(j, n_cols):
        if row[q] > heap_v[0]:
            _replace_root(heap_v, heap_i, size, row[q], q)
    # Pop the worst into the last free place: best first, ties to the lower index.
    for out in range(size - 1, -1, -1):
        vals[out] = heap_v[0]
        ids[out] = heap_i[0]
        last_v, last_i = heap_v[out], heap_i[out]
        if out > 0:
            _replace_root(heap_v, heap_i, out, last_v, last_i)


@numba.njit(nogil=True, cache=True, inline="always")
def _replace_root(heap_v, heap_i, size, v, i):  # pragma: no cover - compiled
    """Put (v, i) at the root of the first `size` entries and sift it down. An entry is worse
    than another when its value is lower, or equal with a higher index."""
    c = 0
    while True:
        left = 2 * c + 1
        if left >= size:
            break
        worst = left
        right = left + 1
        if right < size and (
            heap_v[right] < heap_v[left]
            or (heap_v[right] == heap_v[left] and heap_i[right] > heap_i[left])
        ):
            worst = right
        if heap_v[worst] < v or (heap_v[worst] == v and heap_i[worst] > i):
            heap_v[c] = heap_v[worst]
            heap_i[c] = heap_i[worst]
            c = worst
        else:
            break
    heap_v[c] = v
    heap_i[c] = i
