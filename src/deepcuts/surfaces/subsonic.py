"""Discover Weekly on a listener's own music server, over the Subsonic API.

`sync_subsonic` is the weekly job behind ``deepcuts sync subsonic``:

1. check the address and the credentials, and read the whole library (nothing is written to the
   store before the server has answered for all of it);
2. take the library into the catalogue (`deepcuts.io.subsonic_library`): songs matched to known
   tracks, the rest loaded as new tracks, the song-to-track mapping recorded;
3. train a model where there is none or where the default one does not know the server's songs;
4. build the listener's Discover Weekly over the server's songs only (the weekly recipe with
   its candidates restricted to that set, so the list still has 30 tracks where the library
   has that many the listener has not played);
5. write it to the server as the playlist "Discover Weekly", replacing last week's;
6. only then store the list (``weekly_lists``), so a list the server did not take is not
   remembered as given;
7. optionally, "Because you listened to <artist>" playlists for the listener's most played
   artists: songs of the server by other artists that are most like the listener's favourites
   by that artist (model and audio/text vectors together), none played, at most 2 per artist.
   Such playlists written by an earlier sync and not written by this one are deleted, so they
   do not pile up as the listener's top artists change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from deepcuts.io.subsonic import SubsonicClient
from deepcuts.io.subsonic_library import LibraryImport, import_library
from deepcuts.store import Store
from deepcuts.surfaces.weekly import (
    DiscoverWeekly,
    WeeklyList,
    prepare_weekly,
    save_lists,
    week_name,
)

log = logging.getLogger(__name__)

PLAYLIST_NAME = "Discover Weekly"
BECAUSE_PREFIX = "Because you listened to "
BECAUSE_SIZE = 20


class ListenerError(ValueError):
    """The listener the playlist is for is not in the store."""


@dataclass
class SyncReport:
    library: LibraryImport
    listener: str
    week: str
    trained: bool = False
    playlist_id: str | None = None
    song_ids: list[str] = field(default_factory=list)
    note: str = ""
    because: dict[str, list[str]] = field(default_factory=dict)  # playlist name -> song ids
    deleted: list[str] = field(default_factory=list)  # stale "Because you listened to" playlists


def listener_known(store: Store, listener: str) -> bool:
    return bool(
        store.conn.execute(
            "SELECT count(*) FROM (SELECT user_id FROM users WHERE user_id = ? "
            "UNION ALL SELECT user_id FROM listens WHERE user_id = ? LIMIT 1)",
            [listener, listener],
        ).fetchall()[0][0]
    )


def model_covers(store: Store, track_ids: set[str]) -> bool:
    """Whether the default model knows every one of `track_ids`."""
    from deepcuts.models.cf.training import load_trained
    from deepcuts.models.registry import default_model

    if default_model(store) is None:
        return False
    items = load_trained(store).items
    return all(t in items for t in track_ids)


def sync_subsonic(
    store: Store,
    client: SubsonicClient,
    listener: str,
    week_start: date,
    *,
    music_dir: str | Path | None = None,
    ranker: str = "auto",
    step: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    because: int = 0,
) -> SyncReport:
    """Read the server's library into the catalogue and write the listener's Discover Weekly
    for the week of `week_start` to it. See the module's docstring for the steps.
    ``step(text)`` is called as each step starts, ``progress(albums read, albums)`` as the
    library is read. ``because``: how many "Because you listened to" playlists to write."""
    from deepcuts.models.cf.training import train_from_store

    report_step = step or (lambda _: None)
    if not listener_known(store, listener):
        raise ListenerError(
            f"no listener {listener!r} in the store: their listening must be ingested first "
            "(or name the store's listener with --listener)"
        )
    report_step(f"connecting to {client.url}")
    version = client.ping()
    log.info("%s speaks Subsonic API %s", client.url, version)
    report_step("reading the library")
    songs = list(client.songs(progress))
    report_step(f"matching {len(songs)} songs to the catalogue")
    library = import_library(store, client.name, songs, music_dir=music_dir)
    report = SyncReport(library, listener, week_name(week_start))
    on_server = set(library.track_of_song.values())
    if not on_server:
        raise ListenerError(
            f"{client.url} has no songs in its library: nothing to make a playlist from"
        )
    if not model_covers(store, on_server):
        report_step("training a model that knows the server's songs")
        train_from_store(store)
        report.trained = True
    report_step(f"building {listener}'s Discover Weekly {report.week} over the server's songs")
    dw = prepare_weekly(store, week_start, ranker=ranker, allowed_items=on_server)
    users, items = dw.interactions.users, dw.interactions.items
    index = users.get(listener)
    if index < 0:
        raise ListenerError(f"no listener {listener!r} in the model's data")
    weekly: WeeklyList = next(dw.build([index]))
    song_of_track: dict[str, str] = {}
    for song_id, track_id in sorted(library.track_of_song.items()):
        song_of_track.setdefault(track_id, song_id)
    report.song_ids = [song_of_track[items.id(t.item)] for t in weekly.tracks]
    report.note = weekly.note
    comment = f"deepcuts, {report.week}: {len(report.song_ids)} songs new to {listener}"
    if weekly.note:
        comment += f" ({weekly.note})"
    report_step(f"writing the playlist {PLAYLIST_NAME!r} ({len(report.song_ids)} songs)")
    report.playlist_id = _write(
        store, client, PLAYLIST_NAME, report.song_ids, comment, listener, report.week
    )
    save_lists(store, [weekly], users, items)
    written = {PLAYLIST_NAME}
    for artist, picked in because_lists(dw, index, because):
        name = BECAUSE_PREFIX + artist
        songs_of = [song_of_track[items.id(i)] for i in picked]
        report_step(f"writing the playlist {name!r} ({len(songs_of)} songs)")
        _write(
            store,
            client,
            name,
            songs_of,
            f"deepcuts, {report.week}: songs like {artist}'s",
            listener,
            report.week,
        )
        report.because[name] = songs_of
        written.add(name)
    stale = store.conn.execute(
        "SELECT name, playlist_id FROM subsonic_playlists WHERE server = ? AND server_user = ? "
        "AND starts_with(name, ?) ORDER BY name",
        [client.name, client.user, BECAUSE_PREFIX],
    ).fetchall()
    for name, playlist_id in stale:
        if name in written:
            continue
        client.delete_playlist(playlist_id)
        store.conn.execute(
            "DELETE FROM subsonic_playlists WHERE server = ? AND server_user = ? AND name = ?",
            [client.name, client.user, name],
        )
        report.deleted.append(name)
    return report


def _write(
    store: Store,
    client: SubsonicClient,
    name: str,
    song_ids: list[str],
    comment: str,
    listener: str,
    week: str,
) -> str:
    """Write one playlist (replacing the one written last time) and record its id."""
    last = store.conn.execute(
        "SELECT playlist_id FROM subsonic_playlists WHERE server = ? AND server_user = ? AND name = ?",
        [client.name, client.user, name],
    ).fetchall()
    playlist_id = client.write_playlist(
        name, song_ids, comment=comment, playlist_id=last[0][0] if last else None
    )
    store.conn.execute(
        """
        INSERT INTO subsonic_playlists VALUES (?, ?, ?, ?, ?, ?, current_timestamp)
        ON CONFLICT (server, server_user, name) DO UPDATE SET playlist_id = excluded.playlist_id,
            listener = excluded.listener, week = excluded.week, written_at = excluded.written_at
        """,
        [client.name, client.user, name, playlist_id, listener, week],
    )
    return playlist_id


def because_lists(
    dw: DiscoverWeekly, user: int, n_artists: int, size: int = BECAUSE_SIZE
) -> list[tuple[str, list[int]]]:
    """(artist name, items) for the `n_artists` artists `user` likes most: the allowed items the
    listener may get (never played, not banned; the same rules as the weekly list, which the
    batch's -inf scores carry), by other artists, most like the listener's favourites by that
    artist, at most 2 per artist. Likeness is the mean cosine over the model's item vectors and
    the audio/text vectors, so that songs nobody has played are reached by their sound."""
    if n_artists <= 0:
        return []
    world, cat = dw.world, dw.world.catalogue
    views = [v for v in (world.item_vectors, world.content_vectors) if v is not None]
    if not views:
        return []
    vectors = np.hstack(views) / np.sqrt(len(views))  # unit rows each: the dot is the mean cosine
    batch = dw.batch(np.array([user]))
    allowed = np.isfinite(batch.scores[0])
    row = batch.history[0]
    liked, weights = row.indices[row.data > 0], row.data[row.data > 0]
    artists = cat.artist[liked]
    ok = artists >= 0
    if not ok.any():
        return []
    totals = np.bincount(artists[ok], weights=weights[ok])
    out = []
    for artist in np.argsort(-totals, kind="stable")[:n_artists]:
        if totals[artist] <= 0:
            break
        mine = liked[artists == artist]
        sims = vectors @ vectors[mine].mean(axis=0)
        sims[~allowed | (cat.artist == artist)] = -np.inf
        picked, per_artist = [], {}
        for item in np.argsort(-sims, kind="stable"):
            if not np.isfinite(sims[item]) or len(picked) == size:
                break
            a = int(cat.artist[item])
            if a >= 0 and per_artist.get(a, 0) >= 2:
                continue
            per_artist[a] = per_artist.get(a, 0) + 1
            picked.append(int(item))
        if picked:
            out.append((str(cat.artist_names[artist]), picked))
    return out
