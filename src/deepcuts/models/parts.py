"""Training, registering and loading the learnt parts besides the CF model.

- the content model (kind ``content``): items' text and audio vectors and the cold-start
  mapping from them into the CF space (`deepcuts.models.coldstart.ContentModel`);
- the audio network (kind ``audio-cnn``): log-mel spectrograms to CF vectors
  (`deepcuts.models.audio.AudioToCF`), trained toward the CF item vectors of tracks with plays.

Each is saved beside the store (``models/<name>-v<version>.npz``, no pickle) and registered
with its parameters, figures and the watermark of its training data (the CF model's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepcuts.models.cf.training import TrainedModel, model_dir
from deepcuts.models.coldstart import ContentModel, content_vectors
from deepcuts.models.registry import (
    ModelRecord,
    default_model,
    get_model_of_kind,
    next_version,
    register_model,
)
from deepcuts.store import Store, StoreError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
MAX_MAPPED_DIMS = 512  # CF item vectors wider than this are not a space to map content into


def audio_cache(store: Store) -> str | None:
    """The audio feature cache beside the store (None for a store in memory)."""
    return None if store.path == ":memory:" else f"{store.path}.cache/audio"


def _out(store: Store, name: str) -> Path:
    out = model_dir(store) / f"{name}-v{next_version(store, name)}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


# -- content vectors and the cold-start mapping ------------------------------------------------
def train_content(
    store: Store, trained: TrainedModel, *, alpha: float = 1.0
) -> tuple[ContentModel, ModelRecord]:
    """Build the items' content vectors, fit the mapping into ``trained``'s item space, save
    and register them (the default ``content`` model)."""
    began = time.perf_counter()
    vectors = content_vectors(store, trained.items, audio_cache=audio_cache(store))
    factors = trained.model.item_vectors()
    if factors is not None and factors.shape[1] > MAX_MAPPED_DIMS:  # EASE's item columns, say
        log.info(
            "%s's item vectors have %d dimensions: no cold-start mapping",
            trained.model.name,
            factors.shape[1],
        )
        factors = None
    model = ContentModel(alpha).fit(trained.items, vectors, factors)
    out = _out(store, "content")
    model.save(out)
    cf = trained.record
    record = register_model(
        store,
        "content",
        out,
        params={"alpha": alpha, "cf_model": cf.model_id if cf else None},
        metrics={
            "items": len(trained.items),
            "dims": int(model.vectors_.shape[1]),
            "with_content": int((np.abs(model.vectors_).sum(axis=1) > 0).sum())
            if model.vectors_.size
            else 0,
            "mapped_dims": int(model.coef_.shape[1]),
            "cold_predicted": int(model.cold_.sum()),
            "seconds": round(time.perf_counter() - began, 3),
        },
        kind="content",
        data_until=cf.data_until if cf else None,
    )
    log.info("registered %s (%s)", record.model_id, out)
    return model, record


def load_content(
    store: Store, model_id: str | None = None
) -> tuple[ContentModel, ModelRecord] | None:
    """The registered content model (the default one unless ``model_id``); None if none."""
    record = (
        get_model_of_kind(store, model_id, "content")
        if model_id
        else default_model(store, "content")
    )
    if record is None:
        return None
    return ContentModel.load(record.path), record


# -- the audio network ----------------------------------------------------------------------------
def train_audio(
    store: Store,
    trained: TrainedModel,
    *,
    music_dir: str | Path | None = None,
    params: dict | None = None,
    progress: Progress | None = None,
    make_default: bool = True,
):
    """Train the audio CNN toward the CF item vectors of tracks that have plays and an audio
    file (relative ``audio_path`` resolved against ``music_dir``), save and register it.

    Returns (network, record, figures)."""
    from deepcuts.models.audio import AudioToCF, extract
    from deepcuts.models.audio.extract import track_audio_paths

    vectors = trained.model.item_vectors()
    if vectors is None:
        raise StoreError(
            f"{trained.model.name} has no item vectors to train the audio network toward"
        )
    plays = np.asarray((trained.interactions(store).positives()).sum(axis=0)).ravel()
    paths = track_audio_paths(store, music_dir)
    wanted = [
        (i, p) for t, p in paths.items()
        if (i := trained.items.get(t)) >= 0 and plays[i] > 0 and np.linalg.norm(vectors[i]) > 0
    ]  # fmt: skip
    if len(wanted) < 2:
        where = f" under {music_dir}" if music_dir else ""
        raise StoreError(
            f"{len(wanted)} tracks have both plays and an audio file{where}: the audio network "
            "needs at least 2 (give --music-dir where the tracks' audio_path files are)"
        )
    result = extract(
        [p for _, p in wanted], cache_dir=audio_cache(store), keep_log_mel=True, progress=progress
    )
    row_of = {f.path: f for f in result.features}
    kept = [(i, row_of[p]) for i, p in wanted if p in row_of]
    if len(kept) < 2:
        raise StoreError(
            f"only {len(kept)} of {len(wanted)} audio files could be read: see the log"
        )
    began = time.perf_counter()
    network = AudioToCF(**(params or {})).fit(
        [f.log_mel for _, f in kept], vectors[[i for i, _ in kept]]
    )
    history = network.history_
    val = [h[2] for h in history if not np.isnan(h[2])]
    figures = {
        "tracks": len(kept),
        "skipped_files": len(result.failures),
        "epochs": len(history),
        "validation_cosine": round(max(val), 4) if val else None,
        "fit_seconds": round(time.perf_counter() - began, 3),
    }
    out = _out(store, "audio-cnn")
    network.save(out)
    cf = trained.record
    record = register_model(
        store, "audio-cnn", out,
        params={"network": {p: getattr(network, p) for p in network.params},
                "cf_model": cf.model_id if cf else None,
                "music_dir": str(music_dir) if music_dir else None},
        metrics=figures, kind="audio-cnn", data_until=cf.data_until if cf else None,
        make_default=make_default,
    )  # fmt: skip
    log.info("registered %s (%s)", record.model_id, out)
    return network, record, figures


def load_audio(store: Store, model_id: str | None = None):
    """(network, record) of a registered audio CNN (the default one unless ``model_id``), or
    None where none is registered."""
    from deepcuts.models.audio import AudioToCF

    record = (
        get_model_of_kind(store, model_id, "audio-cnn")
        if model_id
        else default_model(store, "audio-cnn")
    )
    if record is None:
        return None
    return AudioToCF.load(record.path), record
