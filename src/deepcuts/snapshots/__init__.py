"""Published snapshots: the immutable, versioned read model between batch jobs and serving."""

from deepcuts.snapshots.published import PART_FILES, Published, SnapshotReader
from deepcuts.snapshots.versions import (
    SnapshotError,
    current_version,
    publish,
    read_manifest,
    snapshot_root,
    versions,
)

__all__ = [
    "PART_FILES",
    "Published",
    "SnapshotError",
    "SnapshotReader",
    "current_version",
    "publish",
    "read_manifest",
    "snapshot_root",
    "versions",
]
