"""Importers: real listening data in the formats people have, into the store.

Every importer has ``name``, ``summary``, ``files(paths)`` (what it will read, checked before
anything is written) and ``ingest_file(store, path)`` returning that file's counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from deepcuts.io.errors import FormatError
from deepcuts.io.hetrec import HetRecImporter
from deepcuts.io.listenbrainz import ListenBrainzImporter
from deepcuts.io.mpd import MpdImporter
from deepcuts.io.native import NativeImporter
from deepcuts.io.spotify import SpotifyImporter
from deepcuts.store import IngestCounts, Store


class Importer(Protocol):
    name: str
    summary: str

    def files(self, paths: list[str]) -> list[Path]: ...

    def ingest_file(self, store: Store, path: Path) -> IngestCounts: ...


FORMATS: dict[str, type] = {
    cls.name: cls
    for cls in (NativeImporter, SpotifyImporter, ListenBrainzImporter, HetRecImporter, MpdImporter)
}

__all__ = ["FORMATS", "FormatError", "Importer", "NativeImporter"]
