"""Maximum inner-product search: the best items for a batch of query vectors.

`ExactIndex` scores every item (a matrix product and a partial sort): exact, and fastest for
small catalogues. `VoyagerIndex` uses Spotify's Voyager (HNSW) in inner-product space. HNSW's
inner-product search only finds the large-norm items that dominate inner products if they are
inserted first: items go in by descending vector norm, or recall collapses (in a test of 50,000
random items it fell from 0.95 to 0.02). `tests/test_index.py` measures recall against exact.

Both take ``exclude`` (CSR, one row per query, nonzero where an item must not be returned)
and return (ids, scores) of shape (n, k), best first, padded with -1 and -inf.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import top_n

EXACT_MAX_ITEMS = 50_000  # above this, make_index builds an HNSW index (and publish one)


def _excluded(scores: np.ndarray, exclude: sp.csr_matrix | None) -> np.ndarray:
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        scores[coo.row, coo.col] = -np.inf
    return scores


class ExactIndex:
    """Brute-force inner-product search (over ``rows`` of ``vectors`` only, where given)."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray, rows: np.ndarray | None = None):
        self.vectors = np.ascontiguousarray(vectors, np.float32)
        # the rows left out, as ids: a catalogue leaves out few, and a query masks only those
        absent = np.ones(len(self.vectors), bool)
        absent[np.arange(len(absent)) if rows is None else np.asarray(rows, np.int64)] = False
        self._absent = np.flatnonzero(absent)

    def search(
        self, queries: np.ndarray, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = _excluded(np.asarray(queries, np.float32) @ self.vectors.T, exclude)
        scores[:, self._absent] = -np.inf
        ids, top = top_n(scores, k)
        return ids.astype(np.int64), top

    def nearest(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """One query's best ``k`` ids, best first, none of ``exclude`` (a request's search:
        `search` without building an exclusion matrix, which costs more than the search)."""
        scores = self.vectors @ np.asarray(query, np.float32)
        scores[self._absent] = -np.inf
        if exclude is not None:
            scores[np.asarray(exclude, np.int64)] = -np.inf
        ids, _ = top_n(scores[None, :], k)
        return ids[0][ids[0] >= 0].astype(np.int64)


class VoyagerIndex:
    """Voyager HNSW in inner-product space, items inserted by descending norm.

    Parameters
    ----------
    vectors : (n_items, d); ids found are rows of it.
    rows : the rows to insert (default: all), e.g. only the items that have a vector.
    M, ef_construction : HNSW graph parameters; query_ef : search breadth (>= k).

    `save` writes the graph to a file and `load` reads it back beside the same vectors, so a
    published snapshot carries the index instead of each server building it.
    """

    kind = "voyager"

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        M: int = 16,
        ef_construction: int = 200,
        query_ef: int = 200,
        seed: int = 0,
        num_threads: int = -1,
        rows: np.ndarray | None = None,
    ):
        from voyager import Index, Space

        self.vectors = np.ascontiguousarray(vectors, np.float32)
        self.query_ef = query_ef
        self.num_threads = num_threads
        self.index = Index(
            Space.InnerProduct,
            num_dimensions=self.vectors.shape[1],
            M=M,
            ef_construction=ef_construction,
            random_seed=seed,
        )
        rows = np.arange(len(self.vectors)) if rows is None else np.asarray(rows, np.int64)
        order = rows[np.argsort(-np.linalg.norm(self.vectors[rows], axis=1), kind="stable")]
        self.index.add_items(self.vectors[order], ids=order, num_threads=num_threads)

    def nearest(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """One query's best ``k`` ids, best first, none of ``exclude`` (see `ExactIndex.nearest`):
        as many more are asked of the graph as are excluded, then dropped."""
        banned = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        want = min(k + len(banned), len(self.index))
        if want <= 0:
            return np.zeros(0, np.int64)
        found, _ = self.index.query(
            np.asarray(query, np.float32), k=want, num_threads=1, query_ef=max(self.query_ef, want)
        )  # by distance, which in inner-product space is 1 - the inner product: best first
        found = np.asarray(found, np.int64)
        if len(banned):
            found = found[~np.isin(found, banned)]
        return found[:k]

    def save(self, path: str | Path) -> None:
        self.index.save(str(path))

    @classmethod
    def load(
        cls, path: str | Path, vectors: np.ndarray, *, query_ef: int = 200, num_threads: int = 1
    ) -> VoyagerIndex:
        """An index `save` wrote, over the ``vectors`` it was built from."""
        from voyager import Index

        return cls.wrap(Index.load(str(path)), vectors, query_ef=query_ef, num_threads=num_threads)

    @classmethod
    def wrap(
        cls, index: Any, vectors: np.ndarray, *, query_ef: int = 200, num_threads: int = 1
    ) -> VoyagerIndex:
        """A loaded ``voyager.Index`` over the ``vectors`` it was built from."""
        vectors = np.ascontiguousarray(vectors, np.float32)
        if index.num_dimensions != vectors.shape[1]:
            raise ValueError(
                f"an index of {index.num_dimensions}-dimensional vectors, "
                f"for vectors of {vectors.shape[1]}"
            )
        self = cls.__new__(cls)
        self.vectors, self.index = vectors, index
        self.query_ef, self.num_threads = query_ef, num_threads
        return self

    def search(
        self, queries: np.ndarray, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, np.float32)
        n = len(queries)
        ids = np.full((n, k), -1, np.int64)
        top = np.full((n, k), -np.inf, np.float32)
        if n == 0:
            return ids, top
        extra = 0 if exclude is None else int(np.diff(exclude.indptr).max(initial=0))
        want = min(k + extra, len(self.index))
        found, _ = self.index.query(
            queries, k=want, num_threads=self.num_threads, query_ef=max(self.query_ef, want)
        )
        found = np.asarray(found, np.int64)
        scores = np.einsum("nd,nkd->nk", queries, self.vectors[found])
        if exclude is not None and exclude.nnz:
            rows = np.repeat(np.arange(n), found.shape[1])
            blocked = np.asarray(exclude[rows, found.ravel()]).reshape(found.shape) != 0
            scores[blocked] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        found, scores = (
            np.take_along_axis(found, order, axis=1),
            np.take_along_axis(scores, order, axis=1),
        )
        width = found.shape[1]
        ids[:, :width] = np.where(np.isfinite(scores), found, -1)
        top[:, :width] = scores
        return ids, top


def make_index(
    vectors: np.ndarray, *, exact_max_items: int = EXACT_MAX_ITEMS, **voyager_options
) -> ExactIndex | VoyagerIndex:
    """Exact search for catalogues up to `exact_max_items`, Voyager HNSW above."""
    if len(vectors) <= exact_max_items:
        return ExactIndex(vectors)
    return VoyagerIndex(vectors, **voyager_options)
