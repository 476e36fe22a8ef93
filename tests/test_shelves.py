"""Each home shelf kind alone, on a tiny hand-built catalogue and listening history.

Four artists, twelve tracks, six listeners, built in the test (arrays for the interaction
matrix and catalogue, an in-memory store for the stored lists and the latest plays), with the
popularity model as the model: a track's score is its share of listeners, so every expected
order can be read off the table below.

    listeners   t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12
    (count)      2   1   4   3   1   2   0   3   2   1   1   0
    artist      Alpha ------------  Beta ------  Gamma ----  Delta --
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp

from deepcuts.bandit.types import Context
from deepcuts.candidates.base import NONE, UserBatch, World
from deepcuts.candidates.shelves import (
    SHELF_KINDS,
    SHELF_KINDS_BY_NAME,
    SHELF_TYPES,
    day_number,
    in_release_window,
    release_window,
)
from deepcuts.candidates.sources import NewReleaseSource
from deepcuts.models.cf.popularity import Popularity
from deepcuts.signals.catalogue import NO_DATE, Catalogue
from deepcuts.signals.confidence import Interactions
from deepcuts.signals.ids import IdMap
from deepcuts.signals.side import SideInfo
from deepcuts.store import Store
from deepcuts.surfaces.home import HomeData, KindSource, shelf_sources

NOW = datetime(2026, 11, 10, 15, 0)  # a Tuesday afternoon
TODAY = int(day_number(NOW.date()))
TRACKS = [f"t{k:02d}" for k in range(1, 13)]
ARTIST_OF = {t: a for a, ts in {
    "a1": ["t01", "t02", "t03", "t04"],
    "a2": ["t05", "t06", "t07"],
    "a3": ["t08", "t09", "t10"],
    "a4": ["t11", "t12"],
}.items() for t in ts}  # fmt: skip
ARTIST_NAMES = {"a1": "Alpha", "a2": "Beta", "a3": "Gamma", "a4": "Delta"}
GENRE_OF_ARTIST = {"a1": "rock", "a2": "jazz", "a3": "rock", "a4": "pop"}
USERS = ["u0", "u1", "u2", "u3", "u4", "u5"]
PLAYS = {  # confidence of each (listener, track); u0 is the listener served
    "u0": {"t01": 5.0, "t02": 4.0, "t05": 1.0},
    "u1": {"t01": 1.0, "t03": 1.0, "t04": 1.0, "t06": 1.0, "t08": 1.0},
    "u2": {"t03": 1.0, "t04": 1.0, "t08": 1.0, "t09": 1.0},
    "u3": {"t03": 1.0, "t08": 1.0, "t09": 1.0, "t10": 1.0},
    "u4": {"t03": 1.0, "t06": 1.0, "t11": 1.0},
    "u5": {"t04": 1.0},
}
# taste vectors: Alpha and Gamma sound alike, Beta and Delta alike
VECTORS = {"a1": [1.0, 0.1], "a3": [0.9, 0.3], "a2": [0.1, 1.0], "a4": [0.3, 0.9]}


def world(
    store: Store,
    *,
    plays: dict[str, dict[str, float]] = PLAYS,
    release_day: dict[str, int] | None = None,
    friends: dict[str, list[str]] | None = None,
    region: dict[str, str] | None = None,
    banned: dict[str, list[str]] | None = None,
    genres: bool = True,
) -> HomeData:
    """`HomeData` over the tiny world, every part built here from the tables above."""
    users, items = IdMap(USERS), IdMap(TRACKS)
    rows, cols, vals = [], [], []
    for u, row in plays.items():
        for t, w in row.items():
            rows.append(users.index(u))
            cols.append(items.index(t))
            vals.append(w)
    shape = (len(USERS), len(TRACKS))
    matrix = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=shape)
    ban_pairs = [(users.index(u), items.index(t)) for u, ts in (banned or {}).items() for t in ts]
    ban = sp.csr_matrix(
        (np.ones(len(ban_pairs), bool), ([p[0] for p in ban_pairs], [p[1] for p in ban_pairs])),
        shape=shape,
    )
    inter = Interactions(matrix, users, items, ban, now=NOW)
    artists = sorted(ARTIST_NAMES)
    n = len(TRACKS)
    days = np.full(n, TODAY - 400, np.int32)
    for t, d in (release_day or {}).items():
        days[items.index(t)] = d
    catalogue = Catalogue(
        items=items,
        names=np.array([f"Song {t}" for t in TRACKS], dtype=object),
        artist=np.array([artists.index(ARTIST_OF[t]) for t in TRACKS], np.int32),
        artists=np.array(artists, dtype=object),
        artist_names=np.array([ARTIST_NAMES[a] for a in artists], dtype=object),
        album=np.full(n, -1, np.int32),
        album_names=np.array([], dtype=object),
        release_day=days,
        duration_ms=np.full(n, np.nan),
        location=np.full(n, None, dtype=object),
        plays=np.asarray(inter.positives().sum(axis=0)).ravel().astype(np.float64),
    )
    side = SideInfo()
    if friends is not None:
        pairs = [(users.index(u), users.index(f)) for u, fs in friends.items() for f in fs]
        side.friends = sp.csr_matrix(
            (np.ones(len(pairs), np.float32), ([p[0] for p in pairs], [p[1] for p in pairs])),
            shape=(len(USERS), len(USERS)),
        )
    if region is not None:
        side.regions = sorted(set(region.values()))
        side.user_region = np.array(
            [side.regions.index(region[u]) if u in region else -1 for u in USERS], np.int32
        )
    vectors = np.array([VECTORS[ARTIST_OF[t]] for t in TRACKS], np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return HomeData(
        store=store,
        model=Popularity().fit(matrix),
        interactions=inter,
        catalogue=catalogue,
        side=side,
        now=NOW,
        item_vectors=vectors,
        genres=np.array([GENRE_OF_ARTIST[ARTIST_OF[t]] for t in TRACKS], dtype=object)
        if genres
        else None,
    )


@pytest.fixture
def store():
    with Store(":memory:", create=True) as s:
        yield s


def shelves(data: HomeData, kind: str, *, user: str = "u0", country: str = "SE", limit: int = 20):
    return KindSource(SHELF_KINDS_BY_NAME[kind], data).shelves(
        Context(user, hour=15, weekday=1, country=country), limit
    )


def items(shelf) -> list[str]:
    return [c.item_id for c in shelf.cards]


def played(user: str = "u0") -> set[str]:
    return set(PLAYS[user])


def listen(store: Store, user: str, item: str, at: datetime, ms: int | None = 200_000) -> None:
    store.conn.execute(
        "INSERT INTO listens (user_id, item_id, played_at, ms_played, play_count) VALUES (?, ?, ?, ?, 1)",
        [user, item, at, ms],
    )


# -- the registry -------------------------------------------------------------------------------
def test_one_registry_feeds_the_home_screen_and_the_simulator():
    from deepcuts.simulate.home.world import SHELF_TYPES as SIMULATED

    assert SIMULATED is SHELF_TYPES and len(set(SHELF_TYPES)) == len(SHELF_TYPES) == 10
    assert SHELF_TYPES == tuple(k.name for k in SHELF_KINDS)
    assert [s.name for s in shelf_sources(None)] == list(SHELF_TYPES)  # type: ignore[arg-type]
    titles = {k.name: k.title for k in SHELF_KINDS}
    assert titles["best_of_artist"] == "Best of {artist}"
    assert titles["popular_in_region"] == "Popular in {country}"


# -- one rule for "new release" -----------------------------------------------------------------
def test_the_release_window_is_half_open_before_the_cutoff():
    week = date(2026, 11, 9)  # a weekly list's Monday
    w = int(day_number(week))
    assert release_window(week) == (w - 28, w)  # Discover Weekly: [week - 28, week)
    assert release_window(datetime(2026, 11, 9)) == (w - 28, w)  # midnight is the same cutoff
    assert release_window(NOW) == (TODAY - 27, TODAY + 1)  # home at 15:00: today is in
    days = np.array([w - 29, w - 28, w - 1, w, w + 1, NO_DATE])
    assert in_release_window(days, week).tolist() == [False, True, True, False, False, False]
    assert in_release_window(days, week, days=1).tolist() == [False] * 2 + [True] + [False] * 3
    with pytest.raises(ValueError, match="days"):
        release_window(week, 0)


def test_new_releases_holds_only_tracks_inside_the_window(store):
    release = {"t07": TODAY, "t10": TODAY - 27, "t11": TODAY - 28, "t12": TODAY + 1}
    release["t09"] = NO_DATE
    (shelf,) = shelves(world(store, release_day=release), "new_releases")
    assert shelf.title == "New releases for you" and shelf.shelf_id == "new_releases:recent"
    # today's release and the one 27 days ago are in; 28 days ago, tomorrow and undated are out
    assert items(shelf) == ["t10", "t07"]  # best first: t10 has a listener, t07 none
    # a listener who played a new release does not get it again
    heard = {**PLAYS, "u0": {**PLAYS["u0"], "t10": 1.0}}
    (shelf,) = shelves(world(store, plays=heard, release_day=release), "new_releases")
    assert items(shelf) == ["t07"]
    assert shelves(world(store), "new_releases") == []  # nothing released lately: no shelf


def test_discover_weekly_and_the_home_shelf_share_the_window(store):
    monday = date(2026, 11, 9)
    w = int(day_number(monday))
    release = {"t06": w - 28, "t07": w - 1, "t09": w, "t10": w - 29, "t11": w + 3}
    data = world(store, release_day=release)
    n = len(TRACKS)
    batch = UserBatch(
        users=np.array([0]),
        history=data.interactions.matrix[[0]],
        forbidden=sp.csr_matrix((1, n), dtype=np.float32),
        scores=np.zeros((1, n), np.float32),
    )
    got = NewReleaseSource(k=5).generate(batch, World(catalogue=data.catalogue, week_start=monday))
    weekly = {TRACKS[i] for i in got.items[0] if i != NONE}
    data.now = datetime(2026, 11, 9)  # a home page at the first moment of the same week
    (shelf,) = shelves(data, "new_releases")
    assert weekly == set(items(shelf)) == {"t06", "t07"}
    data.now = datetime(2026, 11, 9, 15)  # that afternoon: Monday's release is out, W-28 is not
    (shelf,) = shelves(data, "new_releases")
    assert set(items(shelf)) == {"t07", "t09"}


# -- artist shelves -----------------------------------------------------------------------------
def test_best_of_artist_is_the_top_artists_tracks_most_streamed_first(store):
    (shelf,) = shelves(world(store), "best_of_artist")
    assert shelf.title == "Best of Alpha" and shelf.shelf_id == "best_of_artist:a1"
    assert items(shelf) == ["t03", "t04", "t01", "t02"]  # 4, 3, 2, 1 listeners; played kept
    assert {c.features["artist_id"] for c in shelf.cards} == {"a1"}
    (shelf,) = shelves(world(store), "best_of_artist", limit=2)
    assert items(shelf) == ["t03", "t04"]
    # u5 only played t04: Alpha again
    (u5,) = shelves(world(store), "best_of_artist", user="u5")
    assert items(u5) == ["t03", "t04", "t01", "t02"]
    nobody = {**PLAYS, "u5": {}}
    assert shelves(world(store, plays=nobody), "best_of_artist", user="u5") == []


def test_because_you_listened_to_x_holds_no_track_by_x(store):
    found = shelves(world(store), "because_you_listened")
    assert [s.title for s in found] == [
        "Because you listened to Alpha",
        "Because you listened to Beta",
    ]
    by_x = {s.shelf_id.split(":")[1]: items(s) for s in found}
    assert set(by_x) == {"a1", "a2"}
    popularity = dict(zip(TRACKS, world(store).catalogue.plays, strict=True))
    for artist, tracks in by_x.items():
        assert tracks, artist
        assert not [t for t in tracks if ARTIST_OF[t] == artist], (artist, tracks)
        assert not set(tracks) & played()  # unplayed only
        scores = [popularity[t] for t in tracks]
        assert scores == sorted(scores, reverse=True)  # the model's best first


# -- the listener's own plays -------------------------------------------------------------------
def test_jump_back_in_is_the_last_two_weeks_streams_latest_first(store):
    listen(store, "u0", "t01", NOW - timedelta(days=1))
    listen(store, "u0", "t06", NOW - timedelta(days=3))
    listen(store, "u0", "t06", NOW - timedelta(days=5))  # the latest play of a track counts
    listen(store, "u0", "t02", NOW - timedelta(days=15))  # over two weeks ago
    listen(store, "u0", "t05", NOW - timedelta(hours=2), ms=10_000)  # skipped within 30 s
    listen(store, "u0", "t04", NOW + timedelta(hours=1))  # after the visit
    listen(store, "u1", "t08", NOW - timedelta(hours=1))  # someone else
    (shelf,) = shelves(world(store), "jump_back_in")
    assert shelf.title == "Jump back in" and items(shelf) == ["t01", "t06"]
    assert shelves(world(store), "jump_back_in", user="u2") == []


def test_keep_the_vibe_going_follows_the_session_with_unplayed_tracks(store):
    for k, t in enumerate(["t11", "t12"]):  # a Delta session (Delta sounds like Beta)
        listen(store, "u4", t, NOW - timedelta(minutes=10 * (k + 1)))
    listen(store, "u4", "t11", NOW + timedelta(minutes=5))  # after the visit: not read
    (shelf,) = shelves(world(store), "keep_the_vibe_going", user="u4")
    assert shelf.title == "Keep the vibe going" and shelf.shelf_id == "keep_the_vibe_going:session"
    got = items(shelf)
    assert got and not set(got) & (played("u4") | {"t11", "t12"})
    # one card: from the four tracks that sound most like the session (Beta's, then Gamma's),
    # not u4's most popular unplayed track, Alpha's t04, far from the session's sound
    (one,) = shelves(world(store), "keep_the_vibe_going", user="u4", limit=1)
    assert len(one.cards) == 1 and ARTIST_OF[items(one)[0]] in ("a2", "a3")
    assert shelves(world(store), "keep_the_vibe_going", user="u1") == []  # no plays: no shelf


def test_discover_weekly_is_the_latest_stored_list_in_order(store):
    rows = [("u0", "2026-W44", 0, "t08"), ("u0", "2026-W44", 1, "t09"),
            ("u0", "2026-W45", 2, "t12"), ("u0", "2026-W45", 0, "t11"),
            ("u0", "2026-W45", 1, "gone"), ("u1", "2026-W46", 0, "t10")]  # fmt: skip
    store.conn.executemany(
        "INSERT INTO weekly_lists (user_id, week, position, item_id, reason) VALUES (?, ?, ?, ?, 'r')",
        rows,
    )
    (shelf,) = shelves(world(store), "discover_weekly")
    assert shelf.title == "Your Discover Weekly" and shelf.shelf_id == "discover_weekly:2026-W45"
    assert items(shelf) == ["t11", "t12"]  # position order; a track not in the catalogue dropped
    assert shelves(world(store), "discover_weekly", user="u2") == []


# -- what others play ---------------------------------------------------------------------------
def test_popular_in_country_holds_nothing_the_listener_played(store):
    region = {"u0": "SE", "u1": "SE", "u2": "SE", "u5": "SE", "u3": "DE", "u4": "DE"}
    data = world(store, region=region)
    (shelf,) = shelves(data, "popular_in_region")
    assert shelf.title == "Popular in SE" and shelf.shelf_id == "popular_in_region:SE"
    got = items(shelf)
    assert not set(got) & played()
    # most Swedish listeners first (t04: 3; t03, t08: 2; then 1); nothing no Swede plays
    assert got[0] == "t04" and set(got[1:3]) == {"t03", "t08"} and set(got[3:]) == {"t06", "t09"}
    (de,) = shelves(data, "popular_in_region", country="de")  # the visit's country, any case
    assert de.title == "Popular in DE" and not set(items(de)) & played()
    assert set(items(de)) == {"t03", "t06", "t08", "t09", "t10", "t11"}
    assert shelves(data, "popular_in_region", country="FR") == []
    assert shelves(world(store), "popular_in_region") == []  # no regions known


def test_friends_listening_is_what_friends_stream_that_the_listener_has_not(store):
    data = world(store, friends={"u0": ["u3", "u4"]})
    (shelf,) = shelves(data, "friends_listening")
    assert shelf.title == "Your friends are listening"
    got = items(shelf)
    assert set(got) == (played("u3") | played("u4")) - played()
    assert got[0] == "t03"  # both friends play it and it has the most listeners
    assert shelves(data, "friends_listening", user="u1") == []  # no friends
    assert shelves(world(store), "friends_listening") == []  # no friendships known


def test_fresh_finds_holds_only_tracks_with_at_most_two_listeners(store):
    data = world(store, banned={"u0": ["t12"]})
    (shelf,) = shelves(data, "fresh_finds")
    assert shelf.title == "Fresh finds"
    got = items(shelf)
    # <= 2 listeners, not played by u0 (t01, t02, t05), not banned (t12); t04 and t08 (3), t03 (4) out
    assert set(got) == {"t06", "t07", "t09", "t10", "t11"}
    assert got[:2] in (["t06", "t09"], ["t09", "t06"])  # the model's best first
    # a third listener takes a track out
    more = {**PLAYS, "u5": {"t04": 1.0, "t09": 1.0}}
    assert "t09" not in items(shelves(world(store, plays=more), "fresh_finds")[0])
    # with content vectors, fresh tracks are matched to what the listener likes by their sound
    data = world(store, banned={"u0": ["t12"]})
    data.content_vectors = data.item_vectors
    got = items(shelves(data, "fresh_finds")[0])
    assert set(got) == {"t06", "t07", "t09", "t10", "t11"} and got[:2] == ["t09", "t10"]  # Gamma


def test_genre_mix_holds_only_the_favourite_genres_tracks(store):
    found = shelves(world(store), "genre_mix")
    assert [s.title for s in found] == ["Rock mix", "Jazz mix"]
    rock, jazz = (items(s) for s in found)
    assert {GENRE_OF_ARTIST[ARTIST_OF[t]] for t in rock} == {"rock"}
    assert {GENRE_OF_ARTIST[ARTIST_OF[t]] for t in jazz} == {"jazz"}
    assert rock[0] == "t03" and "t01" in rock  # best by the model, played tracks allowed
    assert shelves(world(store, genres=False), "genre_mix") == []
