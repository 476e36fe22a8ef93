"""Playlist continuation: "recommended songs" for a playlist, from its tracks and its title.

`prepare_continuation` reads the store's playlists and catalogue and fits the continuation model
(`deepcuts.models.playlist.PlaylistContinuation`): track and playlist neighbours, what follows
the last tracks, playlists named alike, the seed artists' other tracks, and, for tracks on no
playlist yet, their text and audio neighbours. `continue_playlist` then continues any playlist:
a stored one, or one a listener is editing (a title, some tracks, or both), returning ranked
suggestions, none of them a seed track, each with the reason it is there:

- "often follows X in playlists" (what follows the last tracks),
- "often in playlists with X" (track and playlist neighbours),
- 'playlists named like this one ("name")' (the title, and for a title alone the factors
  folded in from the title's tracks),
- "more from A, who is on this playlist" (the seed artists),
- "by A, as the playlist's title says" (a title that is an artist's name),
- "sounds like the tracks in this playlist" (a cold track, through content vectors),
- "popular on playlists" (popularity, which fills what nothing else does).

The HTTP routes (``GET /v1/playlists/{id}/continuation``, ``POST /v1/continuation``) and the
``deepcuts continue`` command are thin wrappers of these two functions.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from deepcuts.io.playlists import ExportTrack, PlaylistExport
from deepcuts.models.base import FORMAT_VERSION, ModelFormatError
from deepcuts.models.catalog import load_model
from deepcuts.models.playlist.blend import MINILM_BELOW, PARTS, PlaylistContinuation
from deepcuts.signals.playlists import PlaylistData, load_playlists, playlist_matrix
from deepcuts.store import Store

log = logging.getLogger(__name__)


class ContinuationError(ValueError):
    """A continuation cannot be made as asked (unknown playlist or track, nothing to go on)."""


@dataclass(frozen=True)
class Suggestion:
    """One suggested track: its id, names, score, why it is there and which part put it there."""

    item_id: str
    title: str
    artist: str
    score: float
    reason: str
    source: str


@dataclass
class Continuer:
    """What continuations are made from: the store's playlists and the fitted model."""

    data: PlaylistData
    model: PlaylistContinuation
    uris: dict[str, str]


def prepare_continuation(
    store: Store,
    *,
    minilm: bool = True,
    content: bool = True,
    validation: int = 500,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Continuer:
    """Fit the continuation model on every playlist of the store.

    Parameters
    ----------
    minilm : use MiniLM sentence vectors for titles (else TF-IDF alone).
    content : give tracks on no playlist content vectors (text and audio), so that they can
        be suggested; computed only where the catalogue has such tracks.
    validation : playlists held out to learn the blend (0: fixed weights).
    progress : called with a line saying what is being done.
    """
    say = progress or (lambda _: None)
    say("reading playlists")
    data = load_playlists(store)
    if not len(data) or not any(len(s) for s in data.sequences):
        raise ContinuationError(
            f"store {store.path} has no playlists with tracks: ingest some first"
        )
    uris = dict(
        store.conn.execute("SELECT track_id, uri FROM tracks WHERE uri IS NOT NULL").fetchall()
    )
    model = PlaylistContinuation(
        validation=validation, minilm_weight=0.5 if minilm else 0.0, random_state=random_state
    )
    saved = _saved_path(store, model, content)
    if saved is not None and saved.is_file():
        try:
            kept, _, items = load_model(saved, expected=PlaylistContinuation)
        except ModelFormatError as exc:
            log.warning("fitting again: %s", exc)
        else:
            if items == data.items:
                log.info("continuation model from %s", saved)
                return Continuer(data, kept, uris)  # type: ignore[arg-type]
    matrix = playlist_matrix(data.sequences, data.n_items)
    vectors = None
    cold = np.bincount(matrix.indices, minlength=data.n_items) == 0
    if content and cold.any():
        from deepcuts.models.coldstart import content_vectors

        say(f"content vectors ({int(cold.sum())} tracks are on no playlist)")
        vectors = content_vectors(store, data.items)
    model.fit(
        matrix,
        titles=data.titles,
        content=vectors,
        artists=data.artist_codes(),
        artist_names=data.artist_names(),
        progress=say,
    )
    if saved is not None:
        try:
            tmp = saved.with_suffix(".tmp")
            model.save(tmp, items=data.items)
            os.replace(tmp, saved)
            for old in saved.parent.glob(f"{Path(store.path).stem}.continuation-*.npz"):
                if old != saved:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # a read-only folder: fit again next time
            log.warning("could not keep the continuation model at %s: %s", saved, exc)
    return Continuer(data, model, uris)


def _saved_path(store: Store, model: PlaylistContinuation, content: bool) -> Path | None:
    """Where the model fitted on this store's current playlists is kept: beside the store, named
    by a fingerprint of the playlists, the catalogue and the settings, the model's included
    (None for in-memory stores). Any change to them (a default of a newer version too, or the
    model's `revision`) gives another name, so a stale model is never used."""
    if store.path == ":memory:":
        return None
    conn = store.conn
    parts = [
        conn.execute(
            "SELECT count(*), sum(hash(playlist_id, position, item_id)) FROM playlist_items"
        ).fetchall()[0],
        conn.execute("SELECT count(*), sum(hash(playlist_id, name)) FROM playlists").fetchall()[0],
        conn.execute(
            "SELECT count(*), sum(hash(track_id, name, artist_id, description, audio_path)) FROM tracks"
        ).fetchall()[0],
        conn.execute("SELECT count(*), sum(hash(item_id, tag)) FROM item_tags").fetchall()[0],
        (repr(model), model.revision, content, FORMAT_VERSION),
    ]
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:16]
    path = Path(store.path)
    return path.parent / f"{path.stem}.continuation-{digest}.npz"


def playlist_seeds(continuer: Continuer, playlist_id: str) -> tuple[str, list[str]]:
    """A stored playlist's title and tracks (in order)."""
    p = continuer.data.playlists.get(playlist_id)
    if p < 0:
        raise ContinuationError(f"no playlist {playlist_id!r} in the store")
    items = continuer.data.items.ids
    return continuer.data.titles[p], [str(items[i]) for i in continuer.data.sequences[p]]


def continue_playlist(
    continuer: Continuer,
    *,
    title: str | None = None,
    tracks: Sequence[str] = (),
    n: int = 500,
    unknown: str = "error",
) -> list[Suggestion]:
    """The ``n`` best tracks to add to a playlist with this title and these tracks (in order).

    Parameters
    ----------
    title : the playlist's name (may be empty where there are tracks).
    tracks : its track ids in order; every one is left out of the suggestions.
    n : how many suggestions (fewer where fewer tracks score at all).
    unknown : "error" (a ContinuationError names the tracks the catalogue lacks) or "ignore".

    Returns
    -------
    list of `Suggestion`, best first.
    """
    if n < 1:
        raise ContinuationError(f"n must be at least 1, not {n}")
    if unknown not in ("error", "ignore"):
        raise ValueError(f"unknown must be 'error' or 'ignore', not {unknown!r}")
    data, model = continuer.data, continuer.model
    idx = np.array([data.items.get(t) for t in tracks], np.int64)  # a dict lookup: few ids
    missing = [t for t, i in zip(tracks, idx, strict=True) if i < 0]
    if missing and unknown == "error":
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ContinuationError(f"not in the catalogue: {shown}")
    idx = idx[idx >= 0]
    title = (title or "").strip()
    if not len(idx) and not title:
        raise ContinuationError("give a title, some tracks, or both")
    row = playlist_matrix([idx], data.n_items)
    ranked = model.rank(row, [title], n)
    keep = ranked.ids[0] >= 0
    chosen, values = ranked.ids[0][keep], ranked.scores[0][keep]
    if not len(chosen):
        return []
    # the reason: the part (or the cold-track mapping, last) that gave the most to its blend score
    best = np.argmax(ranked.contributions[0][:, keep], axis=0).tolist()
    reasons = _Reasons(continuer, idx, title, chosen)
    names, artists = data.item_names, data.item_artists
    out = []
    for j, (item, item_id, value, source) in enumerate(zip(
        chosen.tolist(), data.items.ids[chosen].tolist(), values.tolist(), best, strict=True
    )):  # fmt: skip
        name = "cold" if source == len(PARTS) else PARTS[source]
        out.append(Suggestion(
            item_id=str(item_id), title=names[item], artist=artists[item],
            score=float(value), reason=reasons.reason(name, j), source=name,
        ))  # fmt: skip
    return out


class _Reasons:
    """The words of each reason, computed only for the parts that won a suggestion."""

    def __init__(self, continuer: Continuer, seeds: np.ndarray, title: str, chosen: np.ndarray):
        self.continuer, self.seeds, self.title, self.chosen = continuer, seeds, title, chosen
        self._cache: dict[str, object] = {}

    def _once(self, key: str, make: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def reason(self, source: str, j: int) -> str:
        data, model = self.continuer.data, self.continuer.model
        # the seed each suggestion is most often with (or after), for every suggestion at once
        if source in ("item", "playlist", "als") and len(self.seeds):
            together = self._once(
                "co",
                lambda: self.seeds[
                    np.argmax(model.item_.cooccurrence(self.seeds, self.chosen), axis=0)
                ].tolist(),
            )
            return f"often in playlists with {data.label(together[j])}"
        if source == "sequence" and len(self.seeds):
            last = self.seeds[-model.sequence_.last :]
            follows = self._once(
                "seq",
                lambda: last[
                    np.argmax(model.sequence_.follows_[last][:, self.chosen].toarray(), axis=0)
                ].tolist(),
            )
            return f"often follows {data.label(follows[j])} in playlists"
        # a playlist with a title alone is folded into the ALS part from its title's best
        # tracks (`PlaylistContinuation._als_scores`): what it finds, the title found
        if model.title_ is not None and (source == "title" or (source == "als" and self.title)):
            minilm = len(self.seeds) < MINILM_BELOW
            name = self._once("name", lambda: model.title_.closest_name(self.title, minilm))
            return (
                f'playlists named like this one ("{name}")'
                if name
                else "playlists named like this one"
            )
        if source == "named":
            artist = data.item_artists[int(self.chosen[j])]
            return f"by {artist}, as the playlist's title says"
        if source == "artist":
            artist = data.item_artists[int(self.chosen[j])]
            return (
                f"more from {artist}, who is on this playlist"
                if artist
                else "more from an artist on this playlist"
            )
        if source == "cold":
            return "sounds like the tracks in this playlist"
        return "popular on playlists"


def suggestions_playlist(
    continuer: Continuer,
    suggestions: Sequence[Suggestion],
    title: str | None,
    identifier: str | None = None,
) -> PlaylistExport:
    """Suggestions as a playlist to export (JSPF, M3U8, ...), reasons as annotations."""
    label = title or "your playlist"
    return PlaylistExport(
        title=f"Recommended for {label}",
        creator="deepcuts",
        date=datetime.now(UTC).replace(microsecond=0),
        annotation=f"{len(suggestions)} suggested tracks for {label}",
        identifier=identifier,
        tracks=[
            ExportTrack(
                s.item_id,
                s.title,
                s.artist or None,
                location=continuer.uris.get(s.item_id, s.item_id),
                reason=s.reason,
                score=round(s.score, 6),
            )
            for s in suggestions
        ],
    )
