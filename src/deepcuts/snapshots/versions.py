"""Versioned, immutable snapshot folders and the pointer that makes one of them current.

A snapshot lives in ``<store dir>/<store stem>.snapshots/`` as one folder per version
(``v000012/``) holding its parts (Parquet tables, NumPy arrays, the reward model) and a
``manifest.json`` that names every part with its SHA-256. ``CURRENT`` holds the name of the
version to serve.

Publishing is crash-safe by construction: a version is written under a temporary name, its
files flushed to disk, the folder renamed into place (atomic), and only then is ``CURRENT``
replaced (``os.replace``, atomic). A publish killed at any point leaves either the previous
version current or the new one complete; a half-written folder keeps its temporary name and is
never served. A reader loads a version once and keeps it; parts whose hash it already holds
are reused, so a version that changes only the reward model loads only that.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deepcuts.store.db import StoreError

FORMAT = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
KEEP = 3  # versions kept besides the current one (a worker may still be loading one)
_VERSION = re.compile(r"^v(\d{6})$")


class SnapshotError(StoreError):
    """No usable snapshot: none published, or one that cannot be read (a store problem for the
    command line: exit code 4)."""


def snapshot_root(store_path: str | Path) -> Path:
    """Where a store's snapshots live: ``<dir>/<stem>.snapshots/`` beside the store file."""
    path = Path(store_path)
    return path.with_name(f"{path.stem}.snapshots")


@dataclass(frozen=True)
class Manifest:
    """What a published version holds: its parts (name -> file, sha256) and metadata."""

    version: int
    created_at: datetime
    parts: dict[str, dict[str, str]]
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return version_name(self.version)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "created_at": self.created_at.isoformat(),
                "parts": self.parts,
                "meta": self.meta,
            },
            indent=1,
            default=str,
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            data = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{folder}: no readable {MANIFEST} ({exc})") from exc
        if data.get("format") != FORMAT:
            raise SnapshotError(
                f"{folder}: snapshot format {data.get('format')!r}, this deepcuts reads {FORMAT}"
            )
        return cls(
            int(data["version"]),
            datetime.fromisoformat(data["created_at"]),
            dict(data["parts"]),
            dict(data.get("meta", {})),
        )


def version_name(version: int) -> str:
    return f"v{version:06d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def versions(root: Path) -> list[int]:
    """Complete versions under ``root`` (folders with their final name), oldest first."""
    if not root.is_dir():
        return []
    found = [int(m.group(1)) for p in root.iterdir() if (m := _VERSION.match(p.name))]
    return sorted(found)


def current_version(root: Path) -> int | None:
    """The version ``CURRENT`` names, or None before the first publish."""
    try:
        text = (root / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    m = _VERSION.match(text)
    if not m:
        raise SnapshotError(f"{root / CURRENT}: names {text!r}, not a version")
    return int(m.group(1))


def read_manifest(root: Path, version: int | None = None) -> Manifest:
    """The manifest of ``version`` (default the current one)."""
    if version is None:
        version = current_version(root)
        if version is None:
            raise SnapshotError(
                f"nothing published in {root}: run `deepcuts publish` (after `deepcuts train`)"
            )
    return Manifest.read(root / version_name(version))


PartWriter = Callable[[Path], None]


def publish(
    root: Path,
    parts: dict[str, tuple[str, PartWriter]],
    meta: dict[str, Any],
    *,
    reuse: Manifest | None = None,
    keep: int = KEEP,
) -> Manifest:
    """Write a new version and make it current.

    ``parts`` maps a part's name to (file name, a function writing that file); parts of
    ``reuse`` (a published manifest) not in ``parts`` are carried over as hard links (copies
    where links are not possible), so a version that changes one part costs that part only.
    Returns the new manifest. Versions older than the newest ``keep`` are removed.
    """
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(root)
    version = (existing[-1] if existing else 0) + 1
    tmp = root / f".{version_name(version)}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    entries: dict[str, dict[str, str]] = {}
    if reuse is not None:
        source = root / reuse.name
        for name, entry in reuse.parts.items():
            if name in parts:
                continue
            target = tmp / entry["file"]
            try:
                os.link(source / entry["file"], target)
            except OSError:
                shutil.copy2(source / entry["file"], target)
            entries[name] = dict(entry)
    for name, (file_name, write) in parts.items():
        path = tmp / file_name
        write(path)
        _fsync(path)
        entries[name] = {"file": file_name, "sha256": _sha256(path)}
    manifest = Manifest(version, datetime.now(UTC), entries, meta)
    (tmp / MANIFEST).write_text(manifest.to_json())
    _fsync(tmp / MANIFEST)
    _fsync(tmp)
    final = root / version_name(version)
    os.rename(tmp, final)
    _fsync(root)
    pointer = root / f".{CURRENT}.tmp-{os.getpid()}"
    pointer.write_text(version_name(version) + "\n")
    _fsync(pointer)
    os.replace(pointer, root / CURRENT)
    _fsync(root)
    _prune(root, keep)
    return manifest


def _prune(root: Path, keep: int) -> None:
    """Remove old versions and leftovers of publishes that died (never current)."""
    done = versions(root)
    current = current_version(root)
    for v in done[: max(0, len(done) - keep)]:
        if v != current:
            shutil.rmtree(root / version_name(v), ignore_errors=True)
    for p in root.iterdir():
        if p.name.startswith(".v") and ".tmp-" in p.name:
            pid = p.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
