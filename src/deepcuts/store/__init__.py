"""The embedded store (DuckDB): schema, migrations and loading."""

from deepcuts.store.db import Store, StoreError
from deepcuts.store.ingest import FileLoad, IngestCounts, reader_types
from deepcuts.store.schema import TABLES

__all__ = ["FileLoad", "IngestCounts", "Store", "StoreError", "TABLES", "reader_types"]
