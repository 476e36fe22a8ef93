"""Signals: id maps, the confidence matrix, side information and the social aggregates."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp

from deepcuts.signals import (
    RAW_COUNTS,
    ConfidenceConfig,
    IdMap,
    build_interactions,
    build_side_info,
    friends_listening,
    regional_popularity,
    remove_pairs,
)
from deepcuts.signals.catalogue import load_catalogue
from tests.conftest import HETREC

NOW = datetime(2026, 11, 2, 12, 0, 0)
NO_DECAY = ConfidenceConfig(half_life_days=None)


def _listen(
    store, user, item, when=NOW, ms=200_000, count=1, skipped=None, incognito=None, country=None
):
    store.conn.execute(
        "INSERT INTO listens (user_id, item_id, played_at, ms_played, play_count, skipped, "
        "incognito, country) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [user, item, when, ms, count, skipped, incognito, country],
    )


def _act(store, user, action, target, when=NOW, context=None):
    store.conn.execute(
        "INSERT INTO actions (user_id, action, target_id, acted_at, context_id) VALUES (?, ?, ?, ?, ?)",
        [user, action, target, when, context],
    )


@pytest.fixture
def behaviour(store):
    """One listener (u1) who did one of each thing, and a catalogue with artist X."""
    conn = store.conn
    conn.execute("INSERT INTO artists (artist_id, name) VALUES ('X', 'The X')")
    conn.execute(
        "INSERT INTO tracks (track_id, artist_id) VALUES ('h', 'X'), ('i', 'X'), ('a', 'Y')"
    )
    t = NOW - timedelta(hours=1)
    for k in range(3):
        _listen(store, "u1", "a", t + timedelta(minutes=k))  # three full plays
    _listen(store, "u1", "b", t + timedelta(minutes=5), ms=5_000)  # two skips
    _listen(store, "u1", "b", t + timedelta(minutes=6), ms=12_000)
    _listen(store, "u1", "c", t + timedelta(minutes=7))  # a play and a skip
    _listen(store, "u1", "c", t + timedelta(minutes=8), ms=None, skipped=True)
    _act(store, "u1", "save", "d")  # saved, never played
    _listen(store, "u1", "e", t + timedelta(minutes=9))
    _act(store, "u1", "ban", "e")  # played, then banned
    _listen(store, "u1", "f", t + timedelta(minutes=10), incognito=True)  # private session
    _act(store, "u1", "playlist_add", "g", context="p9")  # added to a playlist
    _listen(store, "u1", "h", t + timedelta(minutes=11))  # a track of an artist u1 follows
    _act(store, "u1", "follow_artist", "X")
    _listen(store, "u1", "j", t + timedelta(minutes=12))  # saved and later unsaved
    _act(store, "u1", "save", "j", when=t)
    _act(store, "u1", "unsave", "j", when=t + timedelta(minutes=30))
    _listen(store, "u1", "k", t + timedelta(minutes=13), ms=40_000, skipped=True)  # >= 30 s: a play
    _listen(store, "u2", "a", NOW)
    _listen(store, "u2", "i", NOW, ms=None)  # a track of X; u2 does not follow X
    return store


def _value(inter, user, item):
    return float(inter.matrix[inter.users.index(user), inter.items.index(item)])


def _has(inter, user, item):
    return inter.matrix[inter.users.index(user), inter.items.index(item)] != 0


def test_id_map_round_trip_and_unknown_ids():
    m = IdMap(["b", "a", "c"])
    assert len(m) == 3 and m.index("a") == 1 and m.id(2) == "c"
    assert m.indices(["c", "zz", "b"]).tolist() == [2, -1, 0]
    assert m.lookup(np.array([0, -1, 2])).tolist() == ["b", "", "c"]
    assert m.extended(["c", "d"]).ids.tolist() == ["b", "a", "c", "d"]
    with pytest.raises(ValueError, match="distinct"):
        IdMap(["a", "a"])


def test_confidence_values_follow_the_documented_formula(behaviour):
    inter = build_interactions(behaviour, NO_DECAY)
    log2 = math.log(2)
    assert _value(inter, "u1", "a") == pytest.approx(1 + math.log(4), rel=1e-6)  # 3 plays, log
    # skips only: negative evidence, not a play
    assert _value(inter, "u1", "b") == pytest.approx(-(1 + math.log(3)), rel=1e-6)
    # one play and one skip (skipped flag with no time): the skip lowers the play
    assert _value(inter, "u1", "c") == pytest.approx(1 + log2 - log2, rel=1e-6)
    assert _value(inter, "u1", "d") == pytest.approx(1 + 2.0, rel=1e-6)  # save: strong positive
    assert _value(inter, "u1", "g") == pytest.approx(1 + 2.0, rel=1e-6)  # playlist add
    assert _value(inter, "u1", "h") == pytest.approx(1 + log2 + 1.0, rel=1e-6)  # followed artist
    assert _value(inter, "u1", "j") == pytest.approx(
        1 + log2, rel=1e-6
    )  # the unsave undid the save
    assert _value(inter, "u1", "k") == pytest.approx(1 + log2, rel=1e-6)  # 40 s counts as a play
    assert _value(inter, "u2", "i") == pytest.approx(1 + log2, rel=1e-6)  # no follow, no boost
    assert not _has(inter, "u1", "i")  # following X does not invent plays of X's other tracks
    # banned: out of the matrix and into the ban list
    assert not _has(inter, "u1", "e")
    assert inter.banned[inter.users.index("u1"), inter.items.index("e")]
    assert inter.banned.nnz == 1
    # a private-session play leaves no trace
    assert not _has(inter, "u1", "f")
    # seen = every stored pair or ban, which filters recommendation
    seen = inter.seen()
    assert seen[inter.users.index("u1"), inter.items.index("e")] == 1
    assert seen[inter.users.index("u1"), inter.items.index("b")] == 1
    positives = inter.positives()
    assert positives[inter.users.index("u1"), inter.items.index("b")] == 0
    assert positives[inter.users.index("u1"), inter.items.index("a")] == 1


def test_linear_and_binary_scaling(behaviour):
    linear = build_interactions(behaviour, ConfidenceConfig(scaling="linear", half_life_days=None))
    assert _value(linear, "u1", "a") == pytest.approx(3.0)
    binary = build_interactions(behaviour, ConfidenceConfig(scaling="binary", half_life_days=None))
    assert _value(binary, "u1", "a") == pytest.approx(1.0)
    raw = build_interactions(behaviour, RAW_COUNTS)
    assert _value(raw, "u1", "a") == pytest.approx(3.0)
    assert _value(raw, "u1", "b") == pytest.approx(-1.0)  # skips weigh nothing, still marked


def test_recency_decay_halves_at_the_half_life(store):
    _listen(store, "u", "new", NOW)
    _listen(store, "u", "old", NOW - timedelta(days=10))
    _listen(store, "u", "older", NOW - timedelta(days=20))
    _listen(store, "u", "undated", None, count=1)  # count-only rows are not decayed
    config = ConfidenceConfig(scaling="linear", half_life_days=10.0)
    inter = build_interactions(store, config)
    assert inter.now == NOW  # ages count back from the latest event
    assert _value(inter, "u", "new") == pytest.approx(1.0)
    assert _value(inter, "u", "old") == pytest.approx(0.5, rel=1e-6)
    assert _value(inter, "u", "older") == pytest.approx(0.25, rel=1e-6)
    assert _value(inter, "u", "undated") == pytest.approx(1.0)
    later = build_interactions(
        store, ConfidenceConfig(scaling="linear", half_life_days=10.0, now=NOW + timedelta(days=10))
    )
    assert _value(later, "u", "new") == pytest.approx(0.5, rel=1e-6)


def test_listening_time_instead_of_counts(store):
    _listen(store, "u", "a", NOW, ms=120_000)
    _listen(store, "u", "a", NOW - timedelta(minutes=5), ms=60_000)
    inter = build_interactions(
        store, ConfidenceConfig(scaling="linear", use_time=True, half_life_days=None)
    )
    assert _value(inter, "u", "a") == pytest.approx(3.0)  # minutes


def test_a_training_window_leaves_later_events_out(store):
    _listen(store, "u", "a", NOW - timedelta(days=3))
    _listen(store, "u", "b", NOW)
    _act(store, "u", "save", "c", when=NOW)
    inter = build_interactions(store, NO_DECAY, until=NOW - timedelta(days=1))
    assert _has(inter, "u", "a") and not _has(inter, "u", "b") and not _has(inter, "u", "c")
    assert len(inter.items) == 3  # the index space is the whole store's


def test_given_id_maps_fix_the_index_space(store):
    _listen(store, "u", "a")
    _listen(store, "v", "b")
    users, items = IdMap(["v", "new"]), IdMap(["b", "a", "zz"])
    inter = build_interactions(store, NO_DECAY, users=users, items=items)
    assert inter.matrix.shape == (2, 3)
    assert inter.matrix.nnz == 1 and _has(inter, "v", "b")


def test_remove_pairs_drops_exactly_those_entries():
    m = sp.csr_matrix(np.array([[1.0, -2.0, 0.0], [3.0, 4.0, 5.0]], np.float32))
    pairs = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0]], np.float32))
    out = remove_pairs(m, pairs)
    assert out.toarray().tolist() == [[1.0, 0.0, 0.0], [0.0, 4.0, 5.0]]
    assert out.nnz == 3


@pytest.fixture
def social(store):
    conn = store.conn
    conn.execute(
        "INSERT INTO users (user_id, country) VALUES ('u1', 'se'), ('u2', NULL), ('u3', 'SE')"
    )
    conn.execute("INSERT INTO tracks (track_id, artist_id) VALUES ('h', 'X'), ('i', 'X')")
    for user, item in [
        ("u1", "a"),
        ("u1", "b"),
        ("u1", "g"),
        ("u2", "a"),
        ("u2", "h"),
        ("u3", "i"),
    ]:
        _listen(store, user, item, country="NO" if user == "u2" else None)
    conn.execute(
        "INSERT INTO item_tags (item_id, tag, user_id) VALUES ('a', 'Rock', 'u1'), ('a', 'rock ', 'u2'), "
        "('b', 'jazz', 'u1'), ('X', 'metal', NULL)"
    )
    conn.execute("INSERT INTO friendships (user_id, friend_id) VALUES ('u1', 'u2'), ('u2', 'u1')")
    _act(store, "u3", "follow_user", "u1")
    conn.execute("INSERT INTO playlists (playlist_id, owner_id) VALUES ('p1', 'u1'), ('p2', 'u2')")
    conn.execute(
        "INSERT INTO playlist_items (playlist_id, position, item_id) VALUES "
        "('p1', 0, 'a'), ('p1', 1, 'g'), ('p2', 0, 'a'), ('p2', 1, 'g'), ('p2', 2, 'b')"
    )
    return store


def test_side_information(social):
    inter = build_interactions(social, NO_DECAY)
    users, items = inter.users, inter.items
    side = build_side_info(social, users, items)
    tags = dict(zip(side.tags, range(len(side.tags)), strict=True))
    assert side.item_tags[items.index("a"), tags["rock"]] == 2  # trimmed, lower-cased, counted
    assert side.item_tags[items.index("h"), tags["metal"]] == 1  # an artist's tag tags its tracks
    assert side.item_tags[items.index("i"), tags["metal"]] == 1
    f = side.friends.toarray()
    u1, u2, u3 = (users.index(u) for u in ("u1", "u2", "u3"))
    assert f[u1, u2] == f[u2, u1] == f[u3, u1] == 1 and f[u1, u3] == 0
    assert side.regions == ["NO", "SE"]
    assert side.user_region[u1] == 1 and side.user_region[u3] == 1
    assert side.user_region[u2] == 0  # no home country: where they listen
    a, g, b = (items.index(x) for x in ("a", "g", "b"))
    assert side.item_cooccurrence[a, g] == 2 and side.item_cooccurrence[a, b] == 1
    assert side.item_cooccurrence[a, a] == 0


def test_side_information_leaves_out_held_out_pairs(social):
    inter = build_interactions(social, NO_DECAY)
    users, items = inter.users, inter.items
    held = sp.csr_matrix(
        (
            np.ones(2, np.float32),
            ([users.index("u1"), users.index("u1")], [items.index("b"), items.index("g")]),
        ),
        shape=inter.shape,
    )
    side = build_side_info(social, users, items, exclude=held)
    assert "jazz" not in side.tags  # u1's own tag on a held-out item is test data
    # u1's playlist entry of g is test data; u2's playlist still counts
    assert side.item_cooccurrence[items.index("a"), items.index("g")] == 1


def test_friends_listening_and_regional_popularity():
    friends = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0]], np.float32))
    plays = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]], np.float32))
    agg = friends_listening(friends, plays).toarray()
    assert agg[0].tolist() == [0.5, 1.0, 0.5, 0.0]  # the share of u0's two friends
    assert agg[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert agg[2].tolist() == [0.0, 0.0, 0.0, 0.0]
    region = np.array([0, 0, -1])
    pop = regional_popularity(plays, region, 2)
    assert pop[0].tolist() == [1.0, 0.5, 0.0, 0.0] and pop[1].tolist() == [0.0] * 4


def test_confidence_settings_are_checked():
    with pytest.raises(ValueError, match="scaling"):
        ConfidenceConfig(scaling="sqrt")
    with pytest.raises(ValueError, match="half_life_days"):
        ConfidenceConfig(half_life_days=0)
    with pytest.raises(ValueError, match="alpha"):
        ConfidenceConfig(alpha=-1)
    with pytest.raises(ValueError, match="unknown confidence"):
        ConfidenceConfig.from_dict({"alfa": 1})
    c = ConfidenceConfig(alpha=2.0, now=NOW)
    assert ConfidenceConfig.from_dict(c.to_dict()) == c


def test_hetrec_play_counts_become_the_raw_matrix(store):
    from deepcuts.io.hetrec import HetRecImporter

    importer = HetRecImporter()
    for folder in importer.files([str(HETREC)]):
        importer.ingest_file(store, folder)
    inter = build_interactions(store, RAW_COUNTS)
    assert inter.matrix.shape == (1892, 17632)
    assert inter.matrix.nnz == 92834
    total = store.conn.execute("SELECT sum(play_count) FROM listens").fetchall()[0][0]
    assert float(inter.matrix.sum()) == pytest.approx(total, rel=1e-6)
    side = build_side_info(store, inter.users, inter.items)
    assert side.friends.nnz == 25434 and side.user_region is None


def test_the_catalogue_counts_plays_in_the_store_or_takes_the_callers_counts(behaviour):
    items = IdMap(["a", "b", "h", "zz"])
    cat = load_catalogue(behaviour, items)
    assert cat.plays.tolist() == [4.0, 2.0, 1.0, 0.0]  # u1's three plays of a and u2's one
    assert cat.artists[cat.artist[items.index("h")]] == "X"
    own = load_catalogue(behaviour, items, np.array([7, 0, 1, 2]))
    assert own.plays.tolist() == [7.0, 0.0, 1.0, 2.0] and own.plays.dtype == np.float64
    assert own.artist.tolist() == cat.artist.tolist() and own.names.tolist() == cat.names.tolist()
    with pytest.raises(ValueError, match=r"one count per item \(4\), not 3"):
        load_catalogue(behaviour, items, np.zeros(3))
