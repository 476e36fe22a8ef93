"""Discover Weekly's invariants on a simulated world, built with the real pipeline."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from deepcuts.io import FORMATS
from deepcuts.models.cf import make_model
from deepcuts.signals import build_interactions
from deepcuts.simulate import simulate_world
from deepcuts.store import Store
from deepcuts.surfaces.weekly import DiscoverWeekly, WeekError, parse_week, save_lists, week_name

WEEK = "2026-W44"  # the simulated world runs from Monday 2026-10-05 for 3 weeks


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    simulate_world(out, users=300, tracks=1500, weeks=3, seed=11, audio_share=0.0)
    store = Store(out / "store.duckdb", create=True)
    importer = FORMATS["native"]()
    for f in importer.files([str(out)]):
        importer.ingest_file(store, f)
    yield store
    store.close()


def weekly(store, week, **kwargs):
    monday = parse_week(week)
    inter = build_interactions(store, until=datetime.combine(monday, datetime.min.time()))
    model = make_model("als", {"factors": 32, "iterations": 10, "random_state": 0}).fit(inter.matrix)
    return DiscoverWeekly(store, model, inter, monday, **kwargs), inter


def test_week_names():
    assert str(parse_week("2026-W48")) == "2026-11-23"
    assert week_name(parse_week("2026-W01")) == "2026-W01"
    for bad in ("2026-48", "2026-W54", "W48"):
        with pytest.raises(WeekError):
            parse_week(bad)


def test_lists_keep_every_rule(world):
    store = world
    dw, inter = weekly(store, WEEK)
    lists = list(dw.build())
    assert len(lists) == inter.shape[0]
    # everything played before the list's Monday (the simulator's last sessions may run past it)
    played = store.conn.execute(
        "SELECT user_id || '|' || item_id FROM listens WHERE played_at < ?", [parse_week(WEEK)]
    ).fetchall()
    played = {p[0] for p in played}
    cat = dw.world.catalogue
    for wl in lists:
        items = [t.item for t in wl.tracks]
        assert len(items) == 30, wl.note
        assert len(set(items)) == 30
        uid = inter.users.id(wl.user)
        assert not any(f"{uid}|{inter.items.id(i)}" in played for i in items)  # never played, skips included
        artists = cat.artist[items]
        assert np.bincount(artists[artists >= 0]).max() <= 2
        albums = cat.album[items]
        assert np.bincount(albums[albums >= 0]).max() <= 1
        assert all(t.reason and t.source for t in wl.tracks)
    reasons = {t.reason.split(" ")[0] for wl in lists for t in wl.tracks}
    assert {"Because"} <= reasons and len({t.source for wl in lists for t in wl.tracks}) >= 3


def test_same_week_same_list_next_week_new_and_never_the_last_four(world):
    store = world
    dw, inter = weekly(store, WEEK)
    users = np.arange(40)
    first = [[t.item for t in wl.tracks] for wl in dw.build(users)]
    again = [[t.item for t in wl.tracks] for wl in weekly(store, WEEK)[0].build(users)]
    assert first == again
    save_lists(store, list(dw.build(users)), inter.users, inter.items)
    later = week_name(parse_week(WEEK) + timedelta(weeks=1))
    nxt, inter2 = weekly(store, later)
    second = [[t.item for t in wl.tracks] for wl in nxt.build(users)]
    for a, b in zip(first, second, strict=True):
        assert not set(a) & set(b)  # nothing from the previous weeks' lists
    assert all(len(b) == 30 for b in second)


def test_lists_do_not_depend_on_batching_or_threads(world):
    from deepcuts.surfaces.weekly import WeeklyConfig

    def lists(**config):
        dw, _ = weekly(world, WEEK, config=WeeklyConfig(**config))
        return [(wl.user, [(t.item, t.source, t.reason) for t in wl.tracks]) for wl in dw.build()]

    one_batch = lists(batch_size=1000, workers=1)
    threaded = lists(batch_size=32, workers=2)
    assert len(one_batch) == 300 and threaded == one_batch

def test_short_catalogue_says_why(world):
    store = world
    from deepcuts.ranking.shape import Shape
    from deepcuts.surfaces.weekly import WeeklyConfig

    dw, _ = weekly(store, WEEK, config=WeeklyConfig(shape=Shape(n=30, max_per_artist=1, max_per_album=1)))
    dw.world.catalogue.artist[:] = 0  # pretend one artist made everything
    wl = next(dw.build(np.arange(1)))
    assert len(wl.tracks) == 1 and "only 1 tracks" in wl.note


def test_bans_of_tracks_and_artists_are_respected(world):
    store = world
    dw, inter = weekly(store, WEEK)
    before = next(dw.build(np.arange(1)))
    user = inter.users.id(before.user)
    cat = dw.world.catalogue
    banned_track = inter.items.id(before.tracks[0].item)
    banned_artist = cat.artists[cat.artist[before.tracks[1].item]]
    store.conn.execute(
        "INSERT INTO actions (user_id, action, target_id, acted_at) VALUES (?, 'hide', ?, '2026-10-20'), "
        "(?, 'ban', ?, '2026-10-20')",
        [user, banned_track, user, banned_artist],
    )
    try:
        dw, inter = weekly(store, WEEK)
        after = next(dw.build(np.arange(1)))
        assert banned_track not in {inter.items.id(t.item) for t in after.tracks}
        assert banned_artist not in {cat.artists[cat.artist[t.item]] for t in after.tracks}
        assert len(after.tracks) == 30
    finally:
        store.conn.execute("DELETE FROM actions WHERE acted_at = '2026-10-20' AND user_id = ?", [user])


def test_weekly_keeps_cf_hit_rate_with_more_variety(tmp_path):
    """The issue's quality bar on a simulated world: next week's streams as ground truth."""
    from deepcuts.evaluation.harness import EvaluationData
    from deepcuts.evaluation.weekly import evaluate_weekly

    simulate_world(tmp_path, users=1000, tracks=3000, weeks=4, seed=3, audio_share=0.0)
    with Store(":memory:", create=True) as store:
        importer = FORMATS["native"]()
        for f in importer.files([str(tmp_path)]):
            importer.ingest_file(store, f)
        result = evaluate_weekly(EvaluationData(store), split_kind="time")
    weekly, plain = result["weekly"], result["plain_cf"]
    assert result["protocol"]["ranker"] == "learned"
    assert weekly["mean_length"] == plain["mean_length"] == 30
    assert weekly["hit_rate"] >= 0.95 * plain["hit_rate"]
    assert weekly["intra_list_diversity"] > plain["intra_list_diversity"]
    assert weekly["long_tail_share"] > plain["long_tail_share"]
    assert weekly["distinct_artists"] > plain["distinct_artists"]


def test_content_neighbours_bring_in_tracks_nobody_played(world):
    from deepcuts.surfaces.weekly import store_content_vectors

    store = world
    monday = parse_week(WEEK)
    inter = build_interactions(store, until=datetime.combine(monday, datetime.min.time()))
    model = make_model("als", {"factors": 32, "iterations": 10, "random_state": 0}).fit(inter.matrix)
    dw = DiscoverWeekly(store, model, inter, monday, content_vectors=store_content_vectors(store, inter.items))
    lists = list(dw.build(np.arange(60)))
    unplayed = dw.world.catalogue.plays == 0
    cold = [t for wl in lists for t in wl.tracks if unplayed[t.item]]
    assert cold, "no never-played track reached any list"
    assert any(t.reason.startswith("Sounds like") for wl in lists for t in wl.tracks)


def test_large_catalogue_path_retrieves_from_hnsw_with_the_same_rules(world):
    """Forcing the HNSW path on the small world: same invariants, lists close to exact ones."""
    from deepcuts.surfaces.weekly import WeeklyConfig

    exact, inter = weekly(world, WEEK)
    ann, _ = weekly(world, WEEK, config=WeeklyConfig(exact_max_items=100))
    assert exact.index is None and ann.index is not None
    users = np.arange(50)
    exact_lists = [{t.item for t in wl.tracks} for wl in exact.build(users)]
    ann_lists = list(ann.build(users))
    forbidden = ann.forbidden
    overlap = []
    for wl, ref in zip(ann_lists, exact_lists, strict=True):
        items = [t.item for t in wl.tracks]
        assert len(items) == 30 and not forbidden[wl.user, items].toarray().any()
        overlap.append(len(set(items) & ref) / 30)
    assert np.mean(overlap) > 0.8


def test_batch_shaping_picks_what_one_list_at_a_time_picks():
    """shape_lists (the whole batch at once, as the weekly run uses) agrees with shape_list on
    every row: caps, fresh share, long-tail minimum and MMR included."""
    from deepcuts.ranking.shape import Shape, shape_list, shape_lists

    rng = np.random.default_rng(3)
    n, m, d = 40, 90, 8
    shape = Shape(n=20, fresh_share=0.2)
    relevance = rng.standard_normal((n, m))
    relevance[rng.random((n, m)) < 0.2] = -np.inf  # rows with fewer candidates
    relevance[0, 15:] = -np.inf  # a row that cannot fill its list
    artist = rng.integers(-1, 12, (n, m))
    album = np.where(artist >= 0, artist * 3 + rng.integers(0, 3, (n, m)), -1)
    fresh = rng.random((n, m)) < 0.08
    tail = rng.random((n, m)) < 0.3
    min_tail = rng.integers(0, 8, n)
    items = rng.integers(0, 500, (n, m))
    item_vectors = rng.standard_normal((500, d)).astype(np.float32)
    item_vectors /= np.linalg.norm(item_vectors, axis=1, keepdims=True)
    for vectors in (item_vectors, None):  # with the MMR term and without
        batch = shape_lists(items, relevance, artist, album, fresh, tail, min_tail, vectors, shape)
        lengths = []
        for r in range(n):
            valid = np.flatnonzero(np.isfinite(relevance[r]))
            one = valid[
                shape_list(valid, relevance[r, valid], artist[r, valid], album[r, valid], fresh[r, valid],
                           None if vectors is None else vectors[items[r, valid]], shape, tail[r, valid],
                           int(min_tail[r]))
            ]
            got = batch[r][batch[r] >= 0]
            assert got.tolist() == one.tolist(), r
            lengths.append(len(got))
        assert lengths[0] < shape.n and max(lengths) == shape.n


def test_candidate_selections_match_a_full_sort():
    """top_k_sparse (sparse rows, forbidden items removed), top_k_masked (dense rows, a
    column subset), top_k_in_groups (dense rows, per taste cluster) and first_allowed (a
    region's risers, forbidden items removed) give what sorting every row in full gives."""
    import scipy.sparse as sp

    from deepcuts.candidates.base import (
        NONE,
        World,
        first_allowed,
        top_k_in_groups,
        top_k_masked,
        top_k_sparse,
    )

    rng = np.random.default_rng(5)
    n, m, k = 30, 400, 12
    values = sp.random(n, m, density=0.05, random_state=1, format="csr", dtype=np.float32)
    values.data -= 0.2  # some entries negative: those never count
    values = (sp.diags((np.arange(n) != 3).astype(np.float32)) @ values).tocsr()  # row 3: nothing
    forbidden = sp.random(n, m, density=0.02, random_state=2, format="csr")
    items, scores = top_k_sparse(values, forbidden, k)
    dense = values.toarray()
    dense[forbidden.toarray() != 0] = 0
    for r in range(n):
        order = [i for i in np.argsort(-dense[r], kind="stable") if dense[r, i] > 0][:k]
        assert items[r][items[r] != NONE].tolist() == order, r
        assert np.allclose(scores[r][: len(order)], dense[r, order])
    assert (items[3] == NONE).all()

    scores_dense = rng.standard_normal((n, m)).astype(np.float32)
    scores_dense[rng.random((n, m)) < 0.5] = -np.inf
    allowed = rng.random(m) < 0.3
    items, _ = top_k_masked(scores_dense, k, allowed)
    for r in range(n):
        sub = np.where(allowed, scores_dense[r], -np.inf)
        order = [i for i in np.argsort(-sub, kind="stable") if np.isfinite(sub[i])][:k]
        assert items[r][items[r] != NONE].tolist() == order, r

    # Per (row, group) over each group's items; ties (rounded scores) go to the lower item.
    labels = rng.integers(-1, 6, m)
    world = World(catalogue=None, week_start=None, clusters=labels)
    groups = rng.integers(-1, 6, (n, 3))
    tied = np.round(scores_dense, 1)
    items, values = top_k_in_groups(tied, world.cluster_members, groups, k)
    for r in range(n):
        for slot, group in enumerate(groups[r]):
            got = items[r, slot * k : (slot + 1) * k]
            sub = np.where(labels == group, tied[r], -np.inf) if group >= 0 else np.full(m, -np.inf)
            order = [i for i in np.argsort(-sub, kind="stable") if np.isfinite(sub[i])][:k]
            assert got[got != NONE].tolist() == order, (r, slot)
            assert np.array_equal(values[r, slot * k : slot * k + len(order)], tied[r, order])

    # Per row, its region's most risen items that the row may get, in order (ties: lower item).
    rising = np.clip(np.round(rng.standard_normal((4, m)), 1), 0, None).astype(np.float32)
    world = World(catalogue=None, week_start=None, rising=rising)
    regions = rng.integers(-1, 4, n)
    items, values = first_allowed(world.risers, regions, forbidden, k)
    blocked = forbidden.toarray() != 0
    for r in range(n):
        got = items[r][items[r] != NONE].tolist()
        if regions[r] < 0:
            assert got == [], r
            continue
        rise = rising[regions[r]]
        order = [i for i in np.argsort(-rise, kind="stable") if rise[i] > 0 and not blocked[r, i]][:k]
        assert got == order and np.array_equal(values[r, : len(order)], rise[order]), r


def test_selection_through_links_is_the_product_then_the_selection():
    """top_k_through (one pass per listener, as the playlist and friends sources use it) gives
    the items and scores of the sparse product and top_k_sparse, ties and forbidden items
    included, and names the first source with the strongest link as the reason."""
    import scipy.sparse as sp

    from deepcuts.candidates.base import NONE, top_k_sparse, top_k_through

    rng = np.random.default_rng(11)
    n, a, b, k = 25, 60, 80, 10
    values = sp.random(n, a, density=0.15, random_state=3, format="csr", dtype=np.float32)
    values.data = np.ceil(values.data * 3)  # small integers: many ties
    links = sp.random(a, b, density=0.1, random_state=4, format="csr", dtype=np.float32)
    links.data = np.ceil(links.data * 2)
    forbidden = sp.random(n, b, density=0.1, random_state=5, format="csr")
    sources = np.full((n, 6), NONE, np.int64)
    for r in range(n):
        row = values[r].indices
        picked = rng.permutation(row)[: rng.integers(0, 7)]
        sources[r, : len(picked)] = picked
    reasons = rng.integers(0, 3, links.nnz).astype(np.float32)  # some links no reason at all
    for weights in (None, reasons):
        items, scores, because = top_k_through(values, links, forbidden, sources, k, reason_weights=weights)
        want_items, want_scores = top_k_sparse(values @ links, forbidden, k)
        assert np.array_equal(items, want_items)
        assert np.array_equal(scores, want_scores)
        why = links.copy()
        if weights is not None:
            why.data = weights
        why = why.toarray()
        for r in range(n):
            for item, got in zip(items[r], because[r], strict=True):
                # the first source with the largest positive weight to the item
                pairs = [(why[s, item], -at, s) for at, s in enumerate(sources[r]) if s != NONE and why[s, item] > 0]
                assert got == (max(pairs)[2] if item != NONE and pairs else NONE), (r, item)
        assert (items != NONE).sum() > n * k // 2 and (because != NONE).any() and (because == NONE).any()


def test_lists_over_an_allowed_set_hold_only_it_and_still_thirty(world):
    """A music server's library: the candidates are drawn from the set, not filtered after, so
    a list keeps 30 tracks where filtering the full list afterwards would leave a few."""
    store = world
    full, inter = weekly(store, WEEK)
    rng = np.random.default_rng(5)
    allowed = np.zeros(len(inter.items), bool)
    allowed[rng.choice(len(inter.items), size=len(inter.items) // 4, replace=False)] = True
    users = np.arange(40)
    filtered_after = [sum(allowed[t.item] for t in wl.tracks) for wl in full.build(users)]
    dw, _ = weekly(store, WEEK, allowed=allowed)
    cat = dw.world.catalogue
    lists = list(dw.build(users))
    for wl in lists:
        items = [t.item for t in wl.tracks]
        assert len(items) == 30 and len(set(items)) == 30, wl.note
        assert allowed[items].all()
        assert not dw.forbidden[wl.user, items].toarray().any()  # never played, banned or recent
        artists = cat.artist[items]
        assert np.bincount(artists[artists >= 0]).max() <= 2
    assert max(filtered_after) < 30  # what a filter after the fact would have left
    with pytest.raises(ValueError, match="one flag per item"):
        weekly(store, WEEK, allowed=allowed[:-1])
