"""The embedded store (DuckDB): schema, migrations and loading."""

from deepcuts.store.db import Store, StoreError
from deepcuts.store.ids import AmbiguousId, IdLookupError, IdNotFound, resolve_item, resolve_user
from deepcuts.store.ingest import FileLoad, IngestCounts, reader_types
from deepcuts.store.schema import TABLES

__all__ = [
    "AmbiguousId",
    "FileLoad",
    "IdLookupError",
    "IdNotFound",
    "IngestCounts",
    "Store",
    "StoreError",
    "TABLES",
    "reader_types",
    "resolve_item",
    "resolve_user",
]
