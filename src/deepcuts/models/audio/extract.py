"""Feature extraction over many files: batches, a cache keyed by file content, failures recorded.

Every file is hashed (SHA-256 of its bytes); features already computed for the same bytes with
the same `AudioConfig` are read back from the cache instead of decoded again, so renaming or
moving a file costs nothing, and a changed file is analysed afresh. A file that cannot be used
(missing, unreadable, corrupt, empty, silent) is recorded with its reason and the batch goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from deepcuts.models.audio.decode import MISSING, UNREADABLE, AudioError, decode
from deepcuts.models.audio.features import AudioConfig, analyse, summary_names

log = logging.getLogger(__name__)

STAGES = ("hash", "decode", "features")


@dataclass(frozen=True)
class AudioFeatures:
    """What one file gave: its summary vector and (if kept) its log-mel spectrogram."""

    path: str
    sha256: str
    duration_s: float
    offset_s: float
    excerpt_s: float
    summary: np.ndarray  # float32 (n_summary,)
    log_mel: np.ndarray | None  # float32 (n_mels, frames)
    cached: bool = False


@dataclass(frozen=True)
class AudioFailure:
    """A file that gave no features: ``kind`` as in `AudioError`, ``reason`` the full message."""

    path: str
    kind: str
    reason: str


@dataclass
class Extraction:
    """The result of `extract`: features in input order (failed files left out), failures, and
    the seconds spent in each stage (summed over workers)."""

    config: AudioConfig
    features: list[AudioFeatures] = field(default_factory=list)
    failures: list[AudioFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def summaries(self) -> np.ndarray:
        """float32 (n_ok, n_summary)."""
        n = len(summary_names(self.config))
        return np.array([f.summary for f in self.features], np.float32).reshape(-1, n)

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.features]

    @property
    def from_cache(self) -> int:
        return sum(f.cached for f in self.features)

    @property
    def audio_seconds(self) -> float:
        return float(sum(f.excerpt_s for f in self.features))


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class FeatureCache:
    """Features on disk, one ``.npz`` per (content hash, config), written atomically."""

    def __init__(self, folder: str | Path, config: AudioConfig):
        self.folder = Path(folder) / config.digest()
        self.config = config

    def _file(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.npz"

    def get(self, sha: str) -> dict[str, np.ndarray] | None:
        path = self._file(sha)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:  # a torn or foreign file: recompute it
            log.warning("ignoring unreadable cache file %s (%s)", path, exc)
            return None

    def put(self, sha: str, **arrays: np.ndarray) -> None:
        path = self._file(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _one(path: str, config: AudioConfig, cache_dir: str | None, keep_log_mel: bool):
    """Features of one file, or its failure; with the seconds per stage. Runs in workers."""
    seconds = dict.fromkeys(STAGES, 0.0)
    began = time.perf_counter()
    try:
        sha = file_sha256(path)
    except FileNotFoundError:
        return AudioFailure(path, MISSING, f"{MISSING}: no such file"), seconds
    except OSError as exc:
        return AudioFailure(path, UNREADABLE, f"{UNREADABLE}: {exc.strerror or exc}"), seconds
    seconds["hash"] = time.perf_counter() - began
    cache = FeatureCache(cache_dir, config) if cache_dir else None
    hit = cache.get(sha) if cache else None
    if hit is not None and (not keep_log_mel or "log_mel" in hit):
        meta = hit["meta"]
        return AudioFeatures(
            path,
            sha,
            float(meta[0]),
            float(meta[1]),
            float(meta[2]),
            hit["summary"].astype(np.float32),
            hit["log_mel"].astype(np.float32) if keep_log_mel else None,
            cached=True,
        ), seconds
    began = time.perf_counter()
    try:
        excerpt = decode(path, config.sample_rate, config.excerpt_s, config.silence_db)
    except AudioError as exc:
        return AudioFailure(path, exc.kind, str(exc)), seconds
    seconds["decode"] = time.perf_counter() - began
    began = time.perf_counter()
    summary, log_mel = analyse(excerpt.samples, config)
    seconds["features"] = time.perf_counter() - began
    meta = np.array([excerpt.duration_s, excerpt.offset_s, excerpt.excerpt_s])
    if cache:
        cache.put(sha, summary=summary, log_mel=log_mel.astype(np.float16), meta=meta)
    return AudioFeatures(
        path,
        sha,
        excerpt.duration_s,
        excerpt.offset_s,
        excerpt.excerpt_s,
        summary,
        log_mel if keep_log_mel else None,
    ), seconds


def extract(
    paths: Iterable[str | Path],
    config: AudioConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    keep_log_mel: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Extraction:
    """Summary features (and log-mel spectrograms) of audio files.

    Parameters
    ----------
    paths : audio files, in the order results are wanted.
    config : decoding and analysis settings (`AudioConfig()` by default).
    cache_dir : where features are cached by file content; ``None`` for no cache.
    keep_log_mel : keep each spectrogram in memory (for training or running the network).
    workers : processes to analyse in; 1 analyses in this process.
    progress : called as ``progress(done, total)`` after each file.

    Returns
    -------
    Extraction, with a failure (and its reason) for every file that gave no features.
    """
    config = config or AudioConfig()
    paths = [str(p) for p in paths]
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    result = Extraction(config)
    cache = str(cache_dir) if cache_dir is not None else None
    if workers == 1 or len(paths) < 2:
        outputs = (_one(p, config, cache, keep_log_mel) for p in paths)
        _collect(result, outputs, len(paths), progress)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            outputs = pool.map(
                _one,
                paths,
                [config] * len(paths),
                [cache] * len(paths),
                [keep_log_mel] * len(paths),
                chunksize=max(1, min(16, len(paths) // (4 * workers))),
            )
            _collect(result, outputs, len(paths), progress)
    if result.failures:
        log.warning("%d of %d audio files gave no features", len(result.failures), len(paths))
    return result


def _collect(result: Extraction, outputs, total: int, progress) -> None:
    for done, (item, seconds) in enumerate(outputs, 1):
        for stage, value in seconds.items():
            result.seconds[stage] += value
        if isinstance(item, AudioFailure):
            log.warning("%s: %s", item.path, item.reason)
            result.failures.append(item)
        else:
            result.features.append(item)
        if progress:
            progress(done, total)


def track_audio_paths(store, base_dir: str | Path | None = None) -> dict[str, str]:
    """Each track's audio file, by track id, for tracks that name one.

    A relative ``audio_path`` is resolved against ``base_dir`` if given, else against the
    folders of the files the store was ingested from (the native importer's convention), the
    first where the file exists; one that exists nowhere is returned as resolved against the
    first candidate folder, so that extraction records it as missing.
    """
    rows = store.conn.execute(
        "SELECT track_id, audio_path FROM tracks WHERE audio_path IS NOT NULL ORDER BY track_id"
    ).fetchall()
    if base_dir is not None:
        folders = [Path(base_dir)]
    else:
        sources = store.conn.execute(
            "SELECT DISTINCT source_file FROM ingest_log ORDER BY source_file"
        ).fetchall()
        # not "-" (standard input) nor a URL (a music server read over its API)
        folders = list(
            dict.fromkeys(Path(s[0]).parent for s in sources if s[0] != "-" and "://" not in s[0])
        ) or [Path.cwd()]
    out = {}
    for track_id, raw in rows:
        path = Path(raw)
        if path.is_absolute():
            out[track_id] = str(path)
            continue
        found = next((f / path for f in folders if (f / path).is_file()), folders[0] / path)
        out[track_id] = str(found)
    return out
