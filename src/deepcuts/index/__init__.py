"""Nearest-neighbour search over any embedding: exact for small catalogues, Voyager (HNSW)
for large ones (`make_index` picks)."""

from deepcuts.index.search import EXACT_MAX_ITEMS, ExactIndex, VoyagerIndex, make_index

__all__ = ["EXACT_MAX_ITEMS", "ExactIndex", "VoyagerIndex", "make_index"]
