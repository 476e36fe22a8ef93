"""Importers: real listening data in the formats people have, into the store.

Every importer has ``name``, ``summary``, ``files(paths)`` (what it will read, checked before
anything is written) and ``ingest_file(store, path)`` returning the file's counts.
"""

from __future__ import annotations

from typing import Protocol

from deepcuts.io.errors import FormatError
from deepcuts.io.native import NativeImporter


class Importer(Protocol):
    name: str
    summary: str

    def files(self, paths: list[str]) -> list: ...

    def ingest_file(self, store, path): ...


__all__ = ["FormatError", "Importer", "NativeImporter"]
