"""Simulate a music world and write it in the native formats, with its ground truth beside it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from .audio import render_clips
from .catalogue import EPOCH, LATENT_DIM, MIN_TRACKS, Catalogue, build_catalogue
from .genres import GENRE_NAMES, PLATFORMS, REGION_CODES, REGIONS
from .listening import (
    CONTEXT_TYPES,
    REASONS,
    Acts,
    ListeningState,
    Plays,
    favourites,
    simulate_week,
)
from .people import CITIES, DAY_MS, Population, build_population, city_in
from .playlists import Playlists, make_playlists
from .tables import NativeWriter, ids, take
from .text import (
    artist_descriptions,
    artist_names,
    display_names,
    item_tags,
    playlist_texts,
    titles,
    track_descriptions,
)
from .truth import StreamModel, vector_column, write_truth

log = logging.getLogger(__name__)

DEFAULT_START = date(2026, 10, 5)  # a Monday
FOLLOW_FRIEND_SHARE = 0.5  # of friendships, directions in which the user also follows
FOLLOW_ARTIST_SHARE = 0.3  # of (user, artist) pairs with a save, those that follow the artist
# Independent random streams per stage, so changing one stage (e.g. the audio share) leaves
# the others' output as it was. Append new stages at the end to keep existing worlds.
STAGES = ("catalogue", "people", "listening", "playlists", "follows", "text", "audio")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class WorldSummary:
    """What a simulation wrote: rows per table, audio clips, and where."""

    out_dir: Path
    rows: dict[str, int]
    audio_clips: int


@dataclass(frozen=True)
class _Ids:
    users: pa.Array
    artists: pa.Array
    albums: pa.Array
    tracks: pa.Array


def simulate_world(
    out_dir: Path | str,
    *,
    users: int = 1000,
    tracks: int = 2000,
    weeks: int = 4,
    seed: int = 0,
    audio_share: float = 0.05,
    fmt: str = "parquet",
    start: date = DEFAULT_START,
    progress: Progress | None = None,
) -> WorldSummary:
    """Simulate ``users`` listeners and ``tracks`` tracks over ``weeks`` weeks from ``start``.

    Writes the store tables (users, artists, albums, tracks, item_tags, playlists,
    playlist_items, friendships, listens, actions) as ``<table>.<fmt>`` into ``out_dir``,
    WAV clips for a share ``audio_share`` of the tracks under ``out_dir/audio/``, and the
    ground truth under ``out_dir/truth/`` (see ``load_truth``). The same arguments give the
    same files. ``progress(stage, done, total)`` is called as stages advance.
    """
    if users < 2:
        raise ValueError(f"users must be at least 2, not {users}")
    if tracks < MIN_TRACKS:
        raise ValueError(f"tracks must be at least {MIN_TRACKS}, not {tracks}")
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    if not 0.0 <= audio_share <= 1.0:
        raise ValueError(f"audio_share must be between 0 and 1, not {audio_share}")
    began = time.perf_counter()
    out_dir = Path(out_dir)
    writer = NativeWriter(out_dir, fmt)  # checks fmt before any work is done
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, done, total: None)
    rng = {
        name: np.random.default_rng(child)
        for name, child in zip(STAGES, np.random.SeedSequence(seed).spawn(len(STAGES)), strict=True)
    }
    start_day = (start - EPOCH).days

    cat = build_catalogue(rng["catalogue"], tracks, start, weeks)
    people = build_population(rng["people"], users, cat.centroids, start_day * DAY_MS)
    report("world", 1, 1)
    world_ids = _Ids(
        users=ids("u", users, 5),
        artists=ids("a", cat.n_artists, 4),
        albums=ids("al", cat.n_albums, 5),
        tracks=ids("t", tracks, 6),
    )

    n_clips = round(audio_share * tracks)
    with_audio = np.sort(rng["audio"].permutation(tracks)[:n_clips])
    audio_paths = render_clips(
        rng["audio"],
        out_dir,
        cat,
        with_audio,
        world_ids.tracks.to_pylist(),
        lambda done, total: report("audio", done, total),
    )
    audio_path = np.full(tracks, None, dtype=object)
    audio_path[with_audio] = audio_paths

    try:
        _write_catalogue(writer, rng["text"], cat, world_ids, audio_path)
        _write_people(writer, rng["text"], people, world_ids)
        model = _stream_model(cat)
        state = ListeningState(last_end=np.zeros(users, dtype=np.int64))
        favourite = favourites(rng["listening"], cat, people, start_day)
        saves = []
        for week in range(weeks):
            played = simulate_week(
                rng["listening"], cat, people, favourite, model, state, start_day + 7 * week
            )
            _write_plays(writer, played.plays, world_ids)
            _write_acts(writer, "save", played.saves, world_ids)
            _write_acts(writer, "ban", played.bans, world_ids)
            saves.append(played.saves)
            report("listening", week + 1, weeks)

        streamed = np.unique(np.concatenate(state.streamed))
        last_week_ms = (start_day + 7 * (weeks - 1)) * DAY_MS
        playlists = make_playlists(rng["playlists"], cat, people, streamed, last_week_ms)
        _write_playlists(writer, rng["text"], playlists, world_ids)
        _write_follows(writer, rng["follows"], cat, people, saves, world_ids)
        report("playlists", 1, 1)
    finally:
        rows = writer.close()

    _write_truth(
        out_dir,
        cat,
        people,
        model,
        world_ids,
        {
            "users": users,
            "tracks": tracks,
            "artists": cat.n_artists,
            "albums": cat.n_albums,
            "weeks": weeks,
            "seed": seed,
            "start": start.isoformat(),
            "audio_share": audio_share,
            "format": fmt,
            "latent_dim": LATENT_DIM,
        },
    )
    report("truth", 1, 1)
    log.info(
        "simulated %d users, %d tracks, %d weeks into %s in %.1f s: %s",
        users,
        tracks,
        weeks,
        out_dir,
        time.perf_counter() - began,
        ", ".join(f"{t} {n}" for t, n in rows.items()),
    )
    return WorldSummary(out_dir=out_dir, rows=rows, audio_clips=n_clips)


def _stream_model(cat: Catalogue) -> StreamModel:
    log_pop = np.log(cat.track_popularity)
    return StreamModel(
        log_popularity_mean=float(log_pop.mean()), log_popularity_std=float(log_pop.std())
    )


def _write_catalogue(writer, rng, cat: Catalogue, world_ids: _Ids, audio_path) -> None:
    genre_names = pa.array(GENRE_NAMES)
    artist_city = [CITIES[c] for c in city_in(rng, cat.artist_country)]
    writer.write(
        "artists",
        {
            "artist_id": world_ids.artists,
            "name": artist_names(rng, cat.n_artists),
            "genre": take(genre_names, cat.artist_genre),
            "country": take(pa.array(REGION_CODES), cat.artist_country),
            "description": artist_descriptions(
                rng, cat.artist_genre, [REGIONS[c].demonym for c in cat.artist_country], artist_city
            ),
        },
    )
    writer.write(
        "albums",
        {
            "album_id": world_ids.albums,
            "name": titles(rng, cat.artist_genre[cat.album_artist]),
            "artist_id": take(world_ids.artists, cat.album_artist),
            "release_date": cat.album_release.astype(np.int32),
        },
    )
    writer.write(
        "tracks",
        {
            "track_id": world_ids.tracks,
            "name": titles(rng, cat.track_genre),
            "artist_id": take(world_ids.artists, cat.track_artist),
            "album_id": take(world_ids.albums, cat.track_album),
            "release_date": cat.track_release.astype(np.int32),
            "duration_ms": cat.track_duration,
            "genre": take(genre_names, cat.track_genre),
            "description": track_descriptions(rng, cat.track_genre),
            "audio_path": pa.array(audio_path, type=pa.string()),
        },
    )
    artist_rows, track_rows = item_tags(rng, cat.artist_genre, cat.track_artist)
    for item_ids, rows in ((world_ids.artists, artist_rows), (world_ids.tracks, track_rows)):
        item, tag, weight = zip(*rows, strict=True)
        writer.write(
            "item_tags",
            {
                "item_id": take(item_ids, np.array(item)),
                "tag": list(tag),
                "user_id": pa.nulls(len(rows), pa.string()),
                "weight": np.array(weight),
            },
        )


def _write_people(writer, rng, people: Population, world_ids: _Ids) -> None:
    writer.write(
        "users",
        {
            "user_id": world_ids.users,
            "display_name": display_names(rng, people.n_users),
            "country": take(pa.array(REGION_CODES), people.country),
            "city": take(pa.array(CITIES), people.city),
            "created_at": people.created_at,
        },
    )
    # One row per direction.
    pairs = np.concatenate([people.friend_pairs, people.friend_pairs[:, ::-1]])
    writer.write(
        "friendships",
        {
            "user_id": take(world_ids.users, pairs[:, 0]),
            "friend_id": take(world_ids.users, pairs[:, 1]),
            "since": np.tile(people.friend_since, 2),
        },
    )


def _write_plays(writer, plays: Plays, world_ids: _Ids) -> None:
    # context_id: the context's own id, from the id list of its kind (none for the others).
    kinds = {
        "album": world_ids.albums,
        "artist": world_ids.artists,
        "radio": world_ids.tracks,
        "user": world_ids.users,
        "chart": pa.array([f"chart:{code}" for code in REGION_CODES]),
    }
    spaces = [kinds.get(kind, pa.array([], pa.string())) for kind in CONTEXT_TYPES]
    offsets = np.cumsum([0] + [len(space) for space in spaces[:-1]])
    ref = np.where(plays.context_ref >= 0, offsets[plays.context_type] + plays.context_ref, -1)
    reasons = pa.array(REASONS)
    writer.write(
        "listens",
        {
            "user_id": take(world_ids.users, plays.user),
            "item_id": take(world_ids.tracks, plays.track),
            "played_at": plays.played_at,
            "ms_played": plays.ms_played,
            "play_count": pa.repeat(1, len(plays.user)),
            "reason_start": take(reasons, plays.reason_start),
            "reason_end": take(reasons, plays.reason_end),
            "skipped": plays.skipped,
            "shuffle": plays.shuffle,
            "offline": plays.offline,
            "incognito": plays.incognito,
            "platform": take(pa.array(PLATFORMS), plays.platform),
            "country": take(pa.array(REGION_CODES), plays.country),
            "city": take(pa.array(CITIES), plays.city),
            "context_type": take(pa.array(CONTEXT_TYPES), plays.context_type),
            "context_id": take(pa.concat_arrays(spaces), ref),
        },
    )


def _write_acts(writer, action: str, acts: Acts, world_ids: _Ids) -> None:
    writer.write(
        "actions",
        {
            "user_id": take(world_ids.users, acts.user),
            "action": pa.repeat(action, len(acts.user)),
            "target_id": take(world_ids.tracks, acts.track),
            "acted_at": acts.at,
            "context_id": pa.nulls(len(acts.user), pa.string()),
        },
    )


def _write_playlists(writer, rng, playlists: Playlists, world_ids: _Ids) -> None:
    n = len(playlists.owner)
    playlist_ids = ids("p", n, 5)
    names, descriptions = playlist_texts(rng, playlists.genre)
    writer.write(
        "playlists",
        {
            "playlist_id": playlist_ids,
            "owner_id": take(world_ids.users, playlists.owner),
            "name": names,
            "description": descriptions,
            "created_at": playlists.created_at,
            "modified_at": playlists.modified_at,
            "collaborative": playlists.collaborative,
            "followers": playlists.followers,
        },
    )
    writer.write(
        "playlist_items",
        {
            "playlist_id": take(playlist_ids, playlists.item_playlist),
            "position": playlists.item_position,
            "item_id": take(world_ids.tracks, playlists.item_track),
            "added_at": playlists.item_added_at,
        },
    )
    writer.write(
        "actions",
        {
            "user_id": take(world_ids.users, playlists.owner[playlists.item_playlist]),
            "action": pa.repeat("playlist_add", len(playlists.item_track)),
            "target_id": take(world_ids.tracks, playlists.item_track),
            "acted_at": playlists.item_added_at,
            "context_id": take(playlist_ids, playlists.item_playlist),
        },
    )


def _write_follows(
    writer, rng, cat: Catalogue, people: Population, saves: list[Acts], world_ids: _Ids
) -> None:
    """Follows of friends (some directions of each friendship, soon after it began) and of
    artists whose tracks the user saved (at the first such save)."""
    pairs = np.concatenate([people.friend_pairs, people.friend_pairs[:, ::-1]])
    since = np.tile(people.friend_since, 2)
    follow = rng.random(len(pairs)) < FOLLOW_FRIEND_SHARE
    writer.write(
        "actions",
        {
            "user_id": take(world_ids.users, pairs[follow, 0]),
            "action": pa.repeat("follow_user", int(follow.sum())),
            "target_id": take(world_ids.users, pairs[follow, 1]),
            "acted_at": since[follow] + rng.integers(0, DAY_MS, int(follow.sum())),
            "context_id": pa.nulls(int(follow.sum()), pa.string()),
        },
    )

    user = np.concatenate([s.user for s in saves])
    artist = cat.track_artist[np.concatenate([s.track for s in saves])]
    at = np.concatenate([s.at for s in saves])
    order = np.lexsort((at, artist, user))
    key = user[order] * cat.n_artists + artist[order]
    is_first = np.ones(len(key), dtype=bool)
    is_first[1:] = key[1:] != key[:-1]
    first = order[is_first]
    first = first[rng.random(len(first)) < FOLLOW_ARTIST_SHARE]
    writer.write(
        "actions",
        {
            "user_id": take(world_ids.users, user[first]),
            "action": pa.repeat("follow_artist", len(first)),
            "target_id": take(world_ids.artists, artist[first]),
            "acted_at": at[first],
            "context_id": pa.nulls(len(first), pa.string()),
        },
    )


def _write_truth(
    out_dir: Path,
    cat: Catalogue,
    people: Population,
    model: StreamModel,
    world_ids: _Ids,
    params: dict,
) -> None:
    genre_names = pa.array(GENRE_NAMES)
    user_taste = pa.table(
        {
            "user_id": world_ids.users,
            "country": take(pa.array(REGION_CODES), people.country),
            "dominant_genre": take(genre_names, people.taste.argmax(axis=1)),
            "genre_taste": vector_column(people.taste),
            "vector": vector_column(people.vectors),
            "weekly_plays": people.activity,
        }
    )
    track_truth = pa.table(
        {
            "track_id": world_ids.tracks,
            "artist_id": take(world_ids.artists, cat.track_artist),
            "genre": take(genre_names, cat.track_genre),
            "popularity": cat.track_popularity,
            "vector": vector_column(cat.track_vectors),
            "bpm": cat.track_bpm,
            "key": cat.track_key,
        }
    )
    artist_truth = pa.table(
        {
            "artist_id": world_ids.artists,
            "genre": take(genre_names, cat.artist_genre),
            "vector": vector_column(cat.artist_vectors),
            "bpm": cat.artist_bpm,
            "key": cat.artist_key,
        }
    )
    genres = {
        "genres": list(GENRE_NAMES),
        "centroids": cat.centroids.tolist(),
        "regions": {r.code: [r.bias.get(g, 1.0) for g in GENRE_NAMES] for r in REGIONS},
    }
    world = {**params, "stream_model": asdict(model)}
    write_truth(
        out_dir,
        {"user_taste": user_taste, "track_truth": track_truth, "artist_truth": artist_truth},
        genres,
        world,
    )
