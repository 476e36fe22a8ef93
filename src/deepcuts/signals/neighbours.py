"""Each item's strongest playlist neighbours, straight from playlist membership.

Kept apart from `deepcuts.signals.side` so that importing the side information does not import
numba.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


def strongest_cooccurrence(membership: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Items x items: for each item, the k items sharing the most playlists with it (of equal
    ones the lower item), with their counts, each row by column; the diagonal is left out.

    The same matrix as taking each row's k largest entries of ``membership.T @ membership``
    with its diagonal zeroed, without building that product (millions of entries for a
    catalogue of 50,000 tracks) first. `membership` is playlists x items.
    """
    by_playlist = membership.tocsr().astype(np.float32)
    by_playlist.sum_duplicates()
    by_item = by_playlist.T.tocsr()
    n_items = by_playlist.shape[1]
    counts = np.zeros(n_items + 1, np.int64)
    indices = np.empty(n_items * k, np.int32)
    data = np.empty(n_items * k, np.float32)
    _strongest(
        by_playlist.indptr,
        by_playlist.indices,
        by_playlist.data,
        by_item.indptr,
        by_item.indices,
        by_item.data,
        k,
        counts,
        indices,
        data,
    )
    indptr = np.cumsum(counts)
    return sp.csr_matrix(
        (data[: indptr[-1]], indices[: indptr[-1]], indptr), shape=(n_items, n_items)
    )


@numba.njit(nogil=True, cache=True)
def _strongest(
    p_indptr, p_indices, p_data, i_indptr, i_indices, i_data, k, counts, out_indices, out_data
):  # pragma: no cover - compiled
    """Row i of the product, accumulated over i's playlists in a scratch row stamped with i (no
    clearing between rows), then its k largest entries appended at the front of the output."""
    n_items = len(i_indptr) - 1
    total = np.zeros(n_items, np.float32)
    stamp = np.full(n_items, -1, np.int64)
    touched = np.empty(n_items, np.int64)
    written = 0
    for i in range(n_items):
        t = 0
        for q in range(i_indptr[i], i_indptr[i + 1]):
            p, weight = i_indices[q], i_data[q]
            for w in range(p_indptr[p], p_indptr[p + 1]):
                j = p_indices[w]
                if j == i:
                    continue
                if stamp[j] != i:
                    stamp[j] = i
                    total[j] = 0
                    touched[t] = j
                    t += 1
                total[j] += weight * p_data[w]
        row = np.sort(touched[:t])
        values = np.empty(t, np.float32)
        kept = 0
        for c in range(t):
            values[c] = total[row[c]]
        if t > k:  # the k largest; of equal ones the lower item (a stable sort of ascending items)
            best = np.sort(np.argsort(-values, kind="mergesort")[:k])
        else:
            best = np.arange(t)
        for c in best:
            if values[c] > 0:
                out_indices[written] = row[c]
                out_data[written] = values[c]
                written += 1
                kept += 1
        counts[i + 1] = kept
