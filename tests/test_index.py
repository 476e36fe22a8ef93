"""Nearest-neighbour search: Voyager's recall against exact search, and exclusions."""

import numpy as np
import pytest
import scipy.sparse as sp

from deepcuts.index import ExactIndex, VoyagerIndex, make_index


def vectors(n_items=20000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    # Norms spread like CF item vectors (popular items are longer).
    items = rng.standard_normal((n_items, d)) * rng.lognormal(0, 0.5, (n_items, 1))
    return items.astype(np.float32), rng.standard_normal((300, d)).astype(np.float32)


def recall(found, exact):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)])


def test_voyager_recall_against_exact_search():
    items, queries = vectors()
    exact, exact_scores = ExactIndex(items).search(queries, 30)
    found, scores = VoyagerIndex(items, num_threads=1).search(queries, 30)
    assert recall(found, exact) >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 1e-5)  # best first
    np.testing.assert_allclose(scores[:, 0], exact_scores[:, 0], rtol=1e-4)


def test_insertion_by_descending_norm_is_what_keeps_recall():
    """Inserted in random order, HNSW inner-product search misses the long vectors."""
    from voyager import Index, Space

    items, queries = vectors()
    exact, _ = ExactIndex(items).search(queries, 30)
    naive = Index(
        Space.InnerProduct, num_dimensions=items.shape[1], M=16, ef_construction=200, random_seed=0
    )
    naive.add_items(items, num_threads=1)
    naive_found, _ = naive.query(queries, k=30, query_ef=200, num_threads=1)
    ours, _ = VoyagerIndex(items, num_threads=1).search(queries, 30)
    assert recall(ours, exact) > recall(naive_found, exact) + 0.3


def test_excluded_items_are_never_returned():
    items, queries = vectors(5000)
    exact, _ = ExactIndex(items).search(queries, 10)
    exclude = sp.csr_matrix(
        (np.ones(exact.size), (np.repeat(np.arange(len(queries)), 10), exact.ravel())),
        shape=(len(queries), len(items)),
    )
    for index in (ExactIndex(items), VoyagerIndex(items, num_threads=1)):
        found, _ = index.search(queries, 10, exclude=exclude)
        assert all(not set(f) & set(e) for f, e in zip(found, exact, strict=True))
        assert (found >= 0).all()


def test_make_index_picks_by_catalogue_size():
    items, _ = vectors(1000)
    assert make_index(items).kind == "exact"
    assert make_index(items, exact_max_items=500, num_threads=1).kind == "voyager"


def test_one_query_at_a_time_as_a_request_asks():
    """`nearest`: one query, excluded ids never returned, best first; exact search's answer is
    `search`'s, the index's close to it."""
    items, queries = vectors(5000)
    rows = np.flatnonzero(np.arange(len(items)) % 4 > 0)
    exact, ann = ExactIndex(items, rows=rows), VoyagerIndex(items, rows=rows, num_threads=1)
    overlap = []
    for q in queries[:100]:
        banned = exact.nearest(q, 5)
        truth = exact.nearest(q, 10, exclude=banned)
        found = ann.nearest(q, 10, exclude=banned)
        row = sp.csr_matrix((np.ones(5), (np.zeros(5, int), banned)), shape=(1, len(items)))
        np.testing.assert_array_equal(truth, exact.search(q[None, :], 10, exclude=row)[0][0])
        assert len(found) == 10 and not set(found) & set(banned) and np.isin(found, rows).all()
        assert np.all(np.diff(items[found] @ q) <= 1e-5)
        overlap.append(len(set(found) & set(truth)) / 10)
    assert np.mean(overlap) >= 0.9


def test_an_index_of_some_rows_saved_and_loaded_finds_the_same_and_only_those_rows(tmp_path):
    items, queries = vectors(3000)
    rows = np.flatnonzero(np.arange(len(items)) % 3 > 0)  # as a catalogue's items with a vector
    index = VoyagerIndex(items, rows=rows, num_threads=1)
    index.save(tmp_path / "items.voy")
    loaded = VoyagerIndex.load(tmp_path / "items.voy", items)
    found, scores = index.search(queries, 10)
    again, _ = loaded.search(queries, 10)
    np.testing.assert_array_equal(found, again)
    assert np.isin(found, rows).all()
    exact, _ = ExactIndex(items[rows]).search(queries, 10)
    assert recall(found, rows[exact]) >= 0.9
    with pytest.raises(ValueError, match="32-dimensional"):
        VoyagerIndex.load(tmp_path / "items.voy", items[:, :8])
