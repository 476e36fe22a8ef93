"""The simulated world: deterministic, in the native formats, and true to its ground truth."""

from __future__ import annotations

import json
import wave
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepcuts.simulate import (
    DEFAULT_START,
    load_truth,
    simulate_world,
    true_stream_probability,
)
from deepcuts.simulate.genres import GENRES
from deepcuts.store.schema import TABLES

SMALL = dict(users=200, tracks=400, weeks=2, seed=7, audio_share=0.25)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    calls = []
    summary = simulate_world(out, **SMALL, progress=lambda *call: calls.append(call))
    return out, summary, calls


@pytest.fixture(scope="module")
def tables(world):
    out = world[0]
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in TABLES}


@pytest.fixture(scope="module")
def truth(world):
    return load_truth(world[0])


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _cast_select(table: str, columns: list[str]) -> str:
    declared = TABLES[table]
    return ", ".join(f"CAST({c} AS {declared.column(c).type}) AS {c}" for c in columns)


def _count(con, sql: str) -> int:
    return con.execute(sql).fetchone()[0]


def test_same_seed_writes_identical_files(world, tmp_path):
    out = world[0]
    simulate_world(tmp_path, **SMALL)
    again, first = _files(tmp_path), _files(out)
    assert again.keys() == first.keys()
    assert [name for name in first if first[name] != again[name]] == []


def test_other_seed_makes_another_world(world, tmp_path):
    simulate_world(tmp_path, **{**SMALL, "seed": 8})
    for name in ("users", "tracks", "listens", "friendships"):
        assert (tmp_path / f"{name}.parquet").read_bytes() != (
            world[0] / f"{name}.parquet"
        ).read_bytes()


def test_audio_share_leaves_the_rest_of_the_world_alone(world, tmp_path):
    simulate_world(tmp_path, **{**SMALL, "audio_share": 0.0})
    assert not (tmp_path / "audio").exists()
    for name in ("users", "listens", "actions", "playlists"):
        assert (tmp_path / f"{name}.parquet").read_bytes() == (
            world[0] / f"{name}.parquet"
        ).read_bytes()


def test_tables_follow_the_schema(world):
    out, summary, _ = world
    con = duckdb.connect()
    for name, declared in TABLES.items():
        path = out / f"{name}.parquet"
        columns = pq.read_schema(path).names
        assert columns == [c for c in declared.column_names if c in columns], name
        relation = f"(SELECT {_cast_select(name, columns)} FROM read_parquet('{path}'))"
        n = _count(con, f"SELECT count(*) FROM {relation}")
        assert n == summary.rows[name] > 0, name
        for column in declared.columns:
            if column.required:
                assert column.name in columns, (name, column.name)
                nulls = _count(con, f"SELECT count(*) FROM {relation} WHERE {column.name} IS NULL")
                assert nulls == 0, (name, column.name)
        for check, reason in declared.checks:
            bad = _count(con, f"SELECT count(*) FROM {relation} WHERE NOT ({check})")
            assert bad == 0, (name, reason)
        key = ", ".join(f"coalesce({k}::VARCHAR, '')" for k in declared.key)
        assert _count(con, f"SELECT count(DISTINCT ({key})) FROM {relation}") == n, (name, "keys")


def test_csv_holds_the_same_rows_as_parquet(world, tmp_path):
    simulate_world(tmp_path, **SMALL, fmt="csv")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in TABLES:
        columns = pq.read_schema(world[0] / f"{name}.parquet").names
        select = _cast_select(name, columns)
        csv_path, parquet_path = tmp_path / f"{name}.csv", world[0] / f"{name}.parquet"
        csv = con.execute(f"SELECT {select} FROM read_csv('{csv_path}', all_varchar = true)").df()
        parquet = con.execute(f"SELECT {select} FROM read_parquet('{parquet_path}')").df()
        pd.testing.assert_frame_equal(csv, parquet, check_exact=False, obj=name)
    text = (tmp_path / "listens.csv").read_text().splitlines()
    assert text[0].startswith('"user_id","item_id","played_at"')
    assert text[1].split(",")[2].endswith('Z"')  # ISO 8601 UTC


def test_skips_end_before_30_seconds_and_streams_after(tables):
    plays = tables["listens"].merge(
        tables["tracks"][["track_id", "duration_ms"]], left_on="item_id", right_on="track_id"
    )
    assert plays.skipped.equals(plays.ms_played < 30_000)
    assert 0.1 < plays.skipped.mean() < 0.5
    streams = plays[~plays.skipped]
    assert (streams.ms_played <= streams.duration_ms).all()
    done = plays.reason_end == "trackdone"
    assert (plays.ms_played[done] == plays.duration_ms[done]).all()
    assert set(plays.reason_end[plays.skipped]) <= {"fwdbtn", "backbtn", "endplay"}
    assert (plays.play_count == 1).all()


def test_streams_follow_the_true_stream_probability(tables, truth):
    plays = tables["listens"]
    users = np.searchsorted(truth.user_ids, plays.user_id)
    tracks = np.searchsorted(truth.track_ids, plays.item_id)
    p = true_stream_probability(truth, users, tracks)
    streamed = ~plays.skipped.to_numpy()
    bins = np.digitize(p, [0.3, 0.5, 0.7, 0.9])
    for b in np.unique(bins):
        in_bin = bins == b
        if in_bin.sum() >= 300:
            assert abs(streamed[in_bin].mean() - p[in_bin].mean()) < 0.05, b
    assert streamed[p > 0.9].mean() > streamed[p < 0.5].mean() + 0.4


def test_listeners_stream_their_top_genre_far_more_than_others(tables, truth):
    streams = tables["listens"][~tables["listens"].skipped]
    users = np.searchsorted(truth.user_ids, streams.user_id)
    genre = truth.track_genre[np.searchsorted(truth.track_ids, streams.item_id)]
    top = truth.user_taste.argmax(axis=1)
    own_share = pd.Series(genre == top[users]).groupby(users).mean()
    overall = np.bincount(genre, minlength=len(truth.genres)) / len(genre)
    baseline = overall[top[own_share.index]]  # how common the same genre is among all streams
    assert own_share.mean() > 3 * baseline.mean()
    # and taste weights predict the genre mix of each listener's streams
    mix = np.zeros_like(truth.user_taste)
    np.add.at(mix, (users, genre), 1)
    mix /= np.maximum(mix.sum(axis=1, keepdims=True), 1)
    assert np.corrcoef(mix.ravel(), truth.user_taste.ravel())[0, 1] > 0.7


def test_friends_share_taste(tables, truth):
    friends = tables["friendships"]
    pairs = set(zip(friends.user_id, friends.friend_id, strict=True))
    assert all((b, a) in pairs for a, b in pairs)  # both directions
    assert (friends.user_id != friends.friend_id).all()
    a = np.searchsorted(truth.user_ids, friends.user_id)
    b = np.searchsorted(truth.user_ids, friends.friend_id)
    rng = np.random.default_rng(0)
    ra, rb = rng.integers(0, len(truth.user_ids), (2, 20_000))
    v = truth.user_vectors / np.linalg.norm(truth.user_vectors, axis=1, keepdims=True)
    assert (v[a] * v[b]).sum(1).mean() > (v[ra] * v[rb]).sum(1).mean() + 0.05
    top = truth.user_taste.argmax(axis=1)
    assert (top[a] == top[b]).mean() > 2 * (top[ra] == top[rb]).mean()


def test_plays_come_from_their_context(tables):
    plays = tables["listens"].merge(
        tables["tracks"][["track_id", "album_id", "artist_id"]],
        left_on="item_id",
        right_on="track_id",
    )
    album = plays[plays.context_type == "album"]
    assert (album.context_id == album.album_id).all()
    artist = plays[plays.context_type == "artist"]
    assert (artist.context_id == artist.artist_id).all()
    friends = set(zip(tables["friendships"].user_id, tables["friendships"].friend_id, strict=True))
    shared = plays[plays.context_type == "user"]
    assert len(shared) > 0
    assert all(pair in friends for pair in zip(shared.user_id, shared.context_id, strict=True))
    assert plays.context_id[plays.context_type.isin(["search", "collection"])].isna().all()


def test_place_shapes_listening(tables, truth):
    plays = tables["listens"]
    home = truth.user_country[np.searchsorted(truth.user_ids, plays.user_id)]
    assert (plays.country == home).mean() > 0.9
    chart = plays[plays.context_type == "chart"]
    assert (chart.context_id == "chart:" + chart.country).all()
    artist_country = tables["artists"].set_index("artist_id").country
    track_artist = tables["tracks"].set_index("track_id").artist_id
    local = artist_country[track_artist[plays.item_id]].to_numpy() == plays.country.to_numpy()
    on_chart = (plays.context_type == "chart").to_numpy()
    assert local[on_chart].mean() > 1.5 * local[~on_chart].mean()


def test_plays_happen_in_the_simulated_weeks_without_overlap(tables):
    plays = tables["listens"]
    start = pd.Timestamp(DEFAULT_START, tz="UTC")
    assert plays.played_at.min() >= start
    assert plays.played_at.max() < start + pd.Timedelta(days=7 * SMALL["weeks"] + 1)
    ordered = plays.sort_values(["user_id", "played_at"])
    began = ordered.played_at - pd.to_timedelta(ordered.ms_played, unit="ms")
    same_user = ordered.user_id.eq(ordered.user_id.shift())
    assert (began[same_user] >= ordered.played_at.shift()[same_user]).all()
    released = tables["tracks"].set_index("track_id").release_date
    play_day = plays.played_at.dt.date
    assert (released[plays.item_id].to_numpy() < play_day.to_numpy()).all()
    # sessions: most plays follow another in the same session, started by how it ended
    follows = plays.reason_start.isin(["trackdone", "fwdbtn", "backbtn"]).mean()
    assert follows > 0.7


def test_actions_come_from_listening(tables):
    plays, actions = tables["listens"], tables["actions"]
    assert set(actions.action) == {"save", "ban", "playlist_add", "follow_user", "follow_artist"}
    key = ["user_id", "item_id", "played_at"]
    saves = actions[actions.action == "save"].rename(
        columns={"target_id": "item_id", "acted_at": "played_at"}
    )
    matched = saves[key].merge(plays[key + ["skipped"]], on=key)
    assert len(matched) == len(saves) and not matched.skipped.any()
    bans = actions[actions.action == "ban"].rename(
        columns={"target_id": "item_id", "acted_at": "banned_at"}
    )
    assert bans[["user_id", "item_id"]].merge(
        plays[plays.skipped], on=["user_id", "item_id"]
    ).shape[0] >= len(bans)
    after = bans.merge(plays, on=["user_id", "item_id"])
    assert not (after.played_at > after.banned_at).any()  # a banned track never plays again
    friends = set(zip(tables["friendships"].user_id, tables["friendships"].friend_id, strict=True))
    follows = actions[actions.action == "follow_user"]
    assert set(zip(follows.user_id, follows.target_id, strict=True)) <= friends
    track_artist = tables["tracks"].set_index("track_id").artist_id
    saved_artists = set(zip(saves.user_id, track_artist[saves.item_id], strict=True))
    fans = actions[actions.action == "follow_artist"]
    assert set(zip(fans.user_id, fans.target_id, strict=True)) <= saved_artists


def test_playlists_are_made_from_streams_of_one_genre(tables):
    lists, items = tables["playlists"], tables["playlist_items"]
    assert len(lists) > 10
    items = items.merge(lists[["playlist_id", "owner_id", "name"]], on="playlist_id")
    sizes = items.groupby("playlist_id").position.agg(["min", "max", "count"])
    assert (sizes["min"] == 0).all() and (sizes["max"] == sizes["count"] - 1).all()
    streams = tables["listens"][~tables["listens"].skipped]
    streamed = set(zip(streams.user_id, streams.item_id, strict=True))
    assert all(pair in streamed for pair in zip(items.owner_id, items.item_id, strict=True))
    genre = tables["tracks"].set_index("track_id").genre
    items["genre"] = genre[items.item_id].to_numpy()
    assert (items.groupby("playlist_id").genre.nunique() == 1).all()
    words = {g.name: g.words for g in GENRES}
    named = items.drop_duplicates("playlist_id")
    assert all(
        any(w in name for w in words[g]) for name, g in zip(named.name, named.genre, strict=True)
    )
    adds = tables["actions"][tables["actions"].action == "playlist_add"]
    expected = items.rename(columns={"owner_id": "user_id", "item_id": "target_id"})
    merged = adds.merge(
        expected,
        left_on=["user_id", "target_id", "context_id", "acted_at"],
        right_on=["user_id", "target_id", "playlist_id", "added_at"],
    )
    assert len(merged) == len(adds) == len(items)


def test_text_comes_from_the_genre_vocabulary(tables):
    vocab = {g.name: g for g in GENRES}
    for field in ("tags", "descriptors", "instruments", "moods", "words"):
        assert len({len(getattr(g, field)) for g in GENRES}) == 1, field
    tracks = tables["tracks"]
    assert all(t.genre in t.description for t in tracks.itertuples())
    tags = tables["item_tags"]
    assert tags.user_id.isna().all()
    per_track = tags.merge(tracks, left_on="item_id", right_on="track_id")
    assert set(zip(tracks.track_id, tracks.genre, strict=True)) <= set(
        zip(per_track.item_id, per_track.tag, strict=True)
    )
    from_genre = [t.tag in vocab[t.genre].tags for t in per_track.itertuples()]
    assert 0.9 < np.mean(from_genre) < 1.0  # mostly the genre's own tags, a few strays
    artists = tables["artists"]
    assert set(artists.artist_id) <= set(tags.item_id)


def test_audio_clips_for_the_chosen_share(world, tables):
    out = world[0]
    tracks = tables["tracks"]
    with_audio = tracks[tracks.audio_path.notna()]
    assert len(with_audio) == SMALL["audio_share"] * SMALL["tracks"] == world[1].audio_clips
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(
        Path(p).name for p in with_audio.audio_path
    )
    for path in with_audio.audio_path:
        assert path == f"audio/{Path(path).stem}.wav"
        with wave.open(str(out / path)) as clip:
            assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (1, 2, 16_000)
            assert clip.getnframes() == 48_000


def _spectral_centroid(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float((spectrum * np.fft.rfftfreq(len(x), 1 / rate)).sum() / spectrum.sum())


def _tempo(x: np.ndarray, rate: int) -> float:
    """The beat rate (bpm, 55-200) that best explains the onsets, by autocorrelation."""
    hop = rate // 100
    energy = np.sqrt(np.add.reduceat(x**2, np.arange(0, len(x), hop)))
    onsets = np.maximum(np.diff(energy), 0)
    onsets -= onsets.mean()
    corr = np.correlate(onsets, onsets, "full")[len(onsets) - 1 :]
    lags = np.arange(1, len(corr))
    bpm = 6000 / lags
    ok = (bpm >= 55) & (bpm <= 200)
    return float(bpm[ok][np.argmax(corr[1:][ok])])


def test_audio_sound_depends_on_genre(tmp_path):
    simulate_world(tmp_path, users=20, tracks=480, weeks=1, seed=3, audio_share=0.5)
    truth = load_truth(tmp_path)
    tracks = pd.read_parquet(tmp_path / "tracks.parquet").dropna(subset=["audio_path"])
    rows = []
    for t in tracks.itertuples():
        with wave.open(str(tmp_path / t.audio_path)) as clip:
            rate = clip.getframerate()
            x = np.frombuffer(clip.readframes(clip.getnframes()), "<i2") / 32768
        bpm = truth.track_bpm[np.searchsorted(truth.track_ids, t.track_id)]
        rows.append((t.genre, _spectral_centroid(x, rate), _tempo(x, rate), bpm))
    clips = pd.DataFrame(rows, columns=["genre", "centroid", "tempo", "bpm"])
    # Timbre: genres differ in spectral centroid far more than clips within a genre.
    by_genre = clips.groupby("genre").centroid
    within = by_genre.var().mean()
    between = by_genre.mean().var()
    assert between > 5 * within
    means = by_genre.mean()
    assert means["ambient"] + 500 < min(means["electronic"], means["hip hop"], means["metal"])
    # Tempo: in genres with a drum on every beat, the clip's pulse is the track's true bpm.
    beat = clips[clips.genre.isin(["hip hop", "soul", "folk", "latin"])]
    assert len(beat) > 20
    assert (abs(beat.tempo / beat.bpm - 1) < 0.05).mean() > 0.85
    assert (
        clips.groupby("genre").bpm.mean()["metal"]
        > clips.groupby("genre").bpm.mean()["ambient"] + 50
    )


def test_truth_matches_the_tables(world, tables, truth):
    out = world[0]
    assert {p.name for p in (out / "truth").iterdir()} == {
        "user_taste.parquet",
        "track_truth.parquet",
        "artist_truth.parquet",
        "genres.json",
        "world.json",
    }
    assert list(truth.user_ids) == list(tables["users"].user_id)
    assert list(truth.track_ids) == list(tables["tracks"].track_id)
    assert list(truth.artist_ids) == list(tables["artists"].artist_id)
    assert list(truth.user_country) == list(tables["users"].country)
    assert [truth.genres[g] for g in truth.track_genre] == list(tables["tracks"].genre)
    np.testing.assert_allclose(truth.user_taste.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(truth.track_popularity.sum(), 1)
    assert truth.user_vectors.shape == (SMALL["users"], truth.centroids.shape[1])
    assert truth.track_vectors.shape == (SMALL["tracks"], truth.centroids.shape[1])
    world_json = json.loads((out / "truth" / "world.json").read_text())
    assert {k: world_json[k] for k in ("users", "tracks", "weeks", "seed")} == {
        k: SMALL[k] for k in ("users", "tracks", "weeks", "seed")
    }
    assert world_json["start"] == DEFAULT_START.isoformat()
    matrix = true_stream_probability(truth, np.arange(5)[:, None], np.arange(7)[None, :])
    assert matrix.shape == (5, 7) and ((matrix > 0) & (matrix < 1)).all()
    assert matrix[2, 3] == pytest.approx(true_stream_probability(truth, 2, 3))


def test_progress_is_reported(world):
    calls = world[2]
    assert ("listening", 1, 2) in calls and ("listening", 2, 2) in calls
    assert ("audio", 100, 100) in calls


@pytest.mark.parametrize(
    "bad",
    [{"users": 1}, {"tracks": 10}, {"weeks": 0}, {"audio_share": 1.5}, {"fmt": "xml"}],
)
def test_rejects_bad_arguments(tmp_path, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        simulate_world(tmp_path, **{**SMALL, **bad})
    assert not any(tmp_path.iterdir())


def test_new_releases_wait_for_their_week(tmp_path):
    start = date(2026, 10, 5)
    simulate_world(tmp_path, users=300, tracks=3000, weeks=3, seed=11, audio_share=0.0)
    tracks = pd.read_parquet(tmp_path / "tracks.parquet")
    new = tracks[tracks.release_date >= start]
    assert len(new) > 0
    assert (new.release_date < start + timedelta(days=21)).all()
    plays = pd.read_parquet(tmp_path / "listens.parquet", columns=["item_id", "played_at"])
    first = plays.groupby("item_id").played_at.min()
    heard = new[new.track_id.isin(first.index)]
    assert len(heard) > 0  # new releases are heard within the simulated weeks
    assert (first[heard.track_id].dt.date.to_numpy() > heard.release_date.to_numpy()).all()
