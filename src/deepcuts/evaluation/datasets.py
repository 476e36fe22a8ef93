"""Datasets to evaluate on: a folder in a known format, loaded into a throwaway store."""

from __future__ import annotations

import logging
from collections.abc import Callable

from deepcuts.io import FORMATS
from deepcuts.store import Store

log = logging.getLogger(__name__)


def dataset_store(
    fmt: str, paths: list[str], progress: Callable[[int, int, str], None] | None = None
) -> Store:
    """An in-memory store holding the given files or folders, read by the ``fmt`` importer
    (``lastfm-hetrec``, ``native``, ...)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; formats: {', '.join(sorted(FORMATS))}")
    importer = FORMATS[fmt]()
    files = importer.files(list(paths))
    store = Store(":memory:", create=True)
    for n, path in enumerate(files):
        if progress:
            progress(n, len(files), f"load {path.name}")
        counts = importer.ingest_file(store, path)
        log.debug("%s: %s", path, counts)
    if progress:
        progress(len(files), len(files), "loaded")
    return store
