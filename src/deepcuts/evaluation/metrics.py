"""Ranking metrics at K, beyond-accuracy measures, and activity buckets.

Definitions (per user with at least one relevant item; a model's figure is the mean over users):

- ``recall@K`` = hits in the top K / number of relevant items;
- ``ndcg@K`` = DCG / ideal DCG, with gain 1 per hit and discount ``1 / log2(rank + 1)``
  (rank from 1), the ideal list holding ``min(K, relevant)`` hits;
- ``map@K`` = sum over hit ranks r of precision@r, divided by ``min(K, relevant)``;
- ``hitrate@K`` = 1 if any of the top K is relevant.

Over a whole run: ``coverage@K`` is the share of the catalogue that appears in anyone's top K;
``novelty@K`` the mean self-information ``-log2(p_i)`` of recommended items, ``p_i`` being the
share of training users who listen to item i; ``diversity@K`` the mean intra-list diversity,
``1 - cosine`` between the listener sets of two recommended items, averaged over pairs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

ACCURACY = ("recall", "ndcg", "map", "hitrate")
BEYOND = ("coverage", "novelty", "diversity")


def hits_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean (n, K): whether each recommended item is relevant to its row's user.

    ``relevant`` holds one row per row of ``recommended``; padding ids (-1) never hit.
    """
    recommended = np.asarray(recommended)
    rel = relevant.tocsr()
    n, k = recommended.shape
    n_items = rel.shape[1]
    coo = rel.tocoo()
    rel_keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    rec_keys = np.arange(n, dtype=np.int64)[:, None] * n_items + recommended.astype(np.int64)
    hits = np.zeros((n, k), dtype=bool)
    if len(rel_keys):
        pos = np.searchsorted(rel_keys, rec_keys)
        pos = np.minimum(pos, len(rel_keys) - 1)
        hits = rel_keys[pos] == rec_keys
    hits &= recommended >= 0
    return hits


def ranking_metrics(
    recommended: np.ndarray, relevant: sp.csr_matrix, k: int
) -> dict[str, np.ndarray]:
    """Per-user recall, ndcg, map and hitrate at k (arrays of shape (n,)).

    Users with no relevant items get NaN.

    Example
    -------
    >>> import scipy.sparse as sp
    >>> rel = sp.csr_matrix(np.array([[0, 1, 0, 1, 0]]))
    >>> m = ranking_metrics(np.array([[1, 2, 3]]), rel, 3)
    >>> round(float(m["recall"][0]), 3), round(float(m["ndcg"][0]), 3), round(float(m["map"][0]), 3)
    (1.0, 0.92, 0.833)
    """
    recommended = np.asarray(recommended)[:, :k]
    hits = hits_matrix(recommended, relevant).astype(np.float64)
    n_rel = np.diff(relevant.tocsr().indptr).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_n = np.minimum(n_rel, k).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[ideal_n]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits.sum(axis=1) / n_rel
        ndcg = (hits[:, : recommended.shape[1]] * discount[: recommended.shape[1]]).sum(
            axis=1
        ) / ideal
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
        ap = (precision_at * hits).sum(axis=1) / np.minimum(n_rel, k)
        hit = (hits.sum(axis=1) > 0).astype(np.float64)
    none = n_rel == 0
    for arr in (recall, ndcg, ap, hit):
        arr[none] = np.nan
    return {"recall": recall, "ndcg": ndcg, "map": ap, "hitrate": hit}


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the n_items that appear in at least one list."""
    ids = np.asarray(recommended).ravel()
    ids = ids[ids >= 0]
    return float(len(np.unique(ids)) / n_items) if n_items else 0.0


def novelty(recommended: np.ndarray, item_share: np.ndarray, n_users: int) -> float:
    """Mean ``-log2(p_i)`` of the recommended items (p_i floored at 1 / n_users)."""
    ids = np.asarray(recommended).ravel()
    ids = ids[ids >= 0]
    if not len(ids):
        return 0.0
    p = np.maximum(np.asarray(item_share, np.float64)[ids], 1.0 / max(n_users, 1))
    return float(np.mean(-np.log2(p)))


def intra_list_diversity(
    recommended: np.ndarray, item_features: sp.csr_matrix, max_users: int = 3000, seed: int = 0
) -> float:
    """Mean over lists of the mean pairwise ``1 - cosine`` of the items' feature rows.

    ``item_features`` is (n_items, d), e.g. the items' listener sets; at most ``max_users``
    lists (a seeded sample) are measured.
    """
    recs = np.asarray(recommended)
    if len(recs) > max_users:
        recs = recs[np.random.default_rng(seed).choice(len(recs), max_users, replace=False)]
    from sklearn.preprocessing import normalize  # scikit-learn takes ~1 s to import

    unit = normalize(item_features.tocsr().astype(np.float32), norm="l2", axis=1)
    values = []
    for row in recs:
        ids = row[row >= 0]
        m = len(ids)
        if m < 2:
            continue
        f = unit[ids]
        sim = np.asarray((f @ f.T).toarray())
        mean_sim = (sim.sum() - np.trace(sim)) / (m * (m - 1))
        values.append(1.0 - mean_sim)
    return float(np.mean(values)) if values else 0.0


def activity_bucket_edges(max_count: int) -> list[int]:
    """Lower edges of the activity buckets 1-4, 5-9, 10-19, 20-39, 40-79, ... up to max_count."""
    edges = [1, 5]
    while edges[-1] <= max_count:
        edges.append(edges[-1] * 2)
    return edges[:-1] if len(edges) > 2 and edges[-1] > max_count else edges


def activity_buckets(train_counts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bucket index of each user by number of training items, and the bucket labels."""
    counts = np.asarray(train_counts)
    edges = activity_bucket_edges(int(counts.max()) if len(counts) else 1)
    labels = []
    for j, lo in enumerate(edges):
        hi = edges[j + 1] - 1 if j + 1 < len(edges) else None
        labels.append(f"{lo}-{hi}" if hi is not None else f"{lo}+")
    bucket = np.searchsorted(np.asarray(edges), counts, side="right") - 1
    return np.maximum(bucket, 0), labels


# -- playlist continuation (RecSys Challenge 2018) -------------------------------------------
def r_precision(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Per row: the share of the relevant tracks found among the first ``|relevant|``
    recommended (track level; rows with nothing relevant get NaN).

    >>> rel = sp.csr_matrix(np.array([[0, 1, 0, 1, 0]]))
    >>> r_precision(np.array([[1, 2, 3]]), rel).tolist()
    [0.5]
    """
    recommended = np.asarray(recommended)
    hits = hits_matrix(recommended, relevant)
    n_rel = np.diff(relevant.tocsr().indptr)
    within = np.arange(recommended.shape[1])[None, :] < n_rel[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (hits & within).sum(axis=1) / n_rel.astype(np.float64)
    out[n_rel == 0] = np.nan
    return out


def r_precision_artist_credit(
    recommended: np.ndarray, relevant: sp.csr_matrix, artists: np.ndarray, credit: float = 0.25
) -> np.ndarray:
    """Per row: R-precision with the RecSys Challenge 2018's partial credit for artists. Each
    of the first ``|relevant|`` recommended counts 1 if it is relevant, else ``credit`` if its
    artist is an artist of a relevant track not credited yet in that row (each artist once),
    as the challenge's winning team's evaluator counts it; the sum is divided by
    ``|relevant|``. ``artists``: each item's artist number, -1 where unknown (never credited).

    >>> rel = sp.csr_matrix(np.array([[0, 1, 0, 1, 0, 0]]))
    >>> r_precision_artist_credit(np.array([[1, 2, 5]]), rel, np.array([0, 7, 3, 3, 7, 3])).tolist()
    [0.625]
    """
    recommended = np.asarray(recommended)
    artists = np.asarray(artists, np.int64)
    rel = relevant.tocsr()
    hits = hits_matrix(recommended, rel)
    n_rel = np.diff(rel.indptr)
    out = np.full(len(recommended), np.nan)
    for r in np.flatnonzero(n_rel):
        first = recommended[r, : n_rel[r]]
        wanted = set(artists[rel.indices[rel.indptr[r] : rel.indptr[r + 1]]].tolist()) - {-1}
        near = artists[first[(first >= 0) & ~hits[r, : n_rel[r]]]]
        credited = len(wanted.intersection(near.tolist()))
        out[r] = (hits[r, : n_rel[r]].sum() + credit * credited) / n_rel[r]
    return out


def recommended_songs_clicks(
    recommended: np.ndarray, relevant: sp.csr_matrix, page: int = 10, missed: int = 51
) -> np.ndarray:
    """Per row: how many refreshes of ``page`` suggestions a listener needs before the first
    relevant track shows, ``floor((rank - 1) / page)`` with rank from 1, and ``missed`` where
    no suggestion is relevant (the challenge's 51: one more than the pages of 500 tracks).

    >>> rel = sp.csr_matrix(np.array([[0, 0, 0, 1, 0]]))
    >>> recommended_songs_clicks(np.array([[0, 1, 2, 3]]), rel, page=2).tolist()
    [1.0]
    """
    recommended = np.asarray(recommended)
    hits = hits_matrix(recommended, relevant)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
    out = np.where(first >= 0, first // page, missed).astype(np.float64)
    out[np.diff(relevant.tocsr().indptr) == 0] = np.nan
    return out
