"""The CF models behind one contract: quality on known structure, persistence, fold-in, the
registry and training on a store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from deepcuts.evaluation.metrics import ranking_metrics
from deepcuts.evaluation.splits import holdout_pairs
from deepcuts.models.base import ModelFormatError, NotFittedError, Recommender, top_n
from deepcuts.models.catalog import load_model
from deepcuts.models.cf import (
    ALS,
    DEFAULT_MODEL,
    EASE,
    MODELS,
    Hybrid,
    ItemKNN,
    Popularity,
    RegionalPopularity,
    make_model,
)
from deepcuts.models.cf._util import fold_in
from deepcuts.models.registry import default_model, list_models, set_default
from deepcuts.signals import IdMap, SideInfo, remove_pairs
from tests.cf_helpers import block_matrix, simulated_store
from tests.conftest import FIXTURES

MODEL_FIXTURES = FIXTURES / "models"

FAST = {
    "als": {"factors": 16, "iterations": 10, "regularization": 0.1, "num_threads": 1},
    "bpr": {"factors": 16, "iterations": 60, "learning_rate": 0.05, "num_threads": 1},
    "item-knn": {"neighbours": 30},
    "ease": {"l2": 20.0, "min_users": 1},
    "hybrid": {
        "ease_l2": 20.0,
        "ease_min_users": 1,
        "als_factors": 16,
        "als_iterations": 10,
        "tag_neighbours": 20,
        "num_threads": 1,
    },
    "popularity": {},
    "regional-popularity": {},
}


@pytest.fixture(scope="module")
def blocks():
    counts, user_group, item_group = block_matrix()
    test = holdout_pairs(counts, 0.2, seed=0, min_items=5)
    train = remove_pairs(counts, test)
    train.data = (1 + np.log1p(train.data)).astype(np.float32)
    n_users, n_items = counts.shape
    # side information that agrees with the structure: a tag per item group, friends within groups
    tags = sp.csr_matrix(
        (np.ones(n_items, np.float32), (np.arange(n_items), item_group)), shape=(n_items, 4)
    )
    rng = np.random.default_rng(1)
    fr, fc = [], []
    for u in range(n_users):
        mates = np.flatnonzero(user_group == user_group[u])
        for f in rng.choice(mates[mates != u], 3, replace=False):
            fr.append(u)
            fc.append(f)
    friends = sp.csr_matrix((np.ones(len(fr), np.float32), (fr, fc)), shape=(n_users, n_users))
    side = SideInfo(
        item_tags=tags,
        tags=[f"g{k}" for k in range(4)],
        friends=friends,
        user_region=(user_group % 2).astype(np.int32),
        regions=["A", "B"],
    )
    return train, test, side, item_group


def _ndcg(model: Recommender, train, test, k: int = 10) -> float:
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    ids, _ = model.recommend(users, train[users], N=k)
    return float(np.nanmean(ranking_metrics(ids, test[users], k)["ndcg"]))


@pytest.mark.parametrize("name", ["als", "bpr", "item-knn", "ease", "hybrid"])
def test_models_beat_popularity_on_known_structure(blocks, name):
    train, test, side, _ = blocks
    baseline = _ndcg(Popularity().fit(train), train, test)
    model = make_model(name, FAST[name]).fit(train, side)
    score = _ndcg(model, train, test)
    assert score > baseline + 0.1, (name, score, baseline)


def test_regional_popularity_uses_the_users_region(blocks):
    train, test, side, _ = blocks
    model = RegionalPopularity(shrinkage=0.0).fit(train, side)
    region_a = np.flatnonzero(side.user_region == 0)[0]
    region_b = np.flatnonzero(side.user_region == 1)[0]
    a = model.score(np.array([region_a]), train[[region_a]])[0]
    b = model.score(np.array([region_b]), train[[region_b]])[0]
    assert not np.allclose(a, b)
    # a new user has no region: overall popularity
    new = model.score(np.array([-1]), sp.csr_matrix((1, train.shape[1]), dtype=np.float32))[0]
    assert np.allclose(new, Popularity().fit(train).popularity_)
    assert _ndcg(model, train, test) >= _ndcg(Popularity().fit(train), train, test) - 1e-9


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_and_load_give_identical_recommendations(blocks, tmp_path, name):
    train, _, side, _ = blocks
    model = make_model(name, FAST[name]).fit(train, side)
    users = np.arange(0, 40)
    before = model.recommend(users, train[users], N=10)
    items = IdMap([f"i{k}" for k in range(train.shape[1])])
    path = tmp_path / f"{name}.model"
    model.save(path, users=IdMap([f"u{k}" for k in range(train.shape[0])]), items=items)
    loaded, user_map, item_map = load_model(path)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    assert item_map == items and len(user_map) == train.shape[0]
    after = loaded.recommend(users, train[users], N=10)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6)
    # saved arrays load without pickle
    with np.load(path, allow_pickle=False) as data:
        assert "__meta__" in data.files
    # the class method loads its own kind and refuses another
    assert isinstance(type(model).load(path), type(model))
    other = ALS if name != "als" else EASE
    with pytest.raises(ModelFormatError, match=f"holds a {name} model"):
        other.load(path)


def test_a_bad_or_newer_model_file_is_refused(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="not a deepcuts model"):
        Recommender.load(bad)
    newer = tmp_path / "newer.npz"
    meta = {"format_version": 99, "model": "popularity", "params": {}}
    np.savez(open(newer, "wb"), __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ModelFormatError, match="format 99"):
        Recommender.load(newer)


def test_model_files_of_format_version_1_still_load():
    """Files kept from format version 1 (tests/fixtures/models, written by
    `make_model_fixtures` below) load and recommend what they recommended when written."""
    expected = json.loads((MODEL_FIXTURES / "expected.json").read_text())
    rows = expected.pop("__rows__")
    query = sp.csr_matrix(
        (np.array(rows["data"], np.float32), np.array(rows["indices"]), np.array(rows["indptr"])),
        shape=tuple(rows["shape"]),
    )
    for name, want in expected.items():
        model, users, items = load_model(MODEL_FIXTURES / f"{name}-format1.npz")
        assert model.name == name and len(users) == 60 and items.id(0) == "i0"
        ids, _ = model.recommend(np.arange(5), query, N=5)
        assert ids.tolist() == want, name


def make_model_fixtures() -> None:  # pragma: no cover - run by hand for a new format version
    """Write tests/fixtures/models/*-format1.npz and expected.json (see the test above)."""
    counts, _, _ = block_matrix(n_users=60, n_items=40, per_user=6, seed=3)
    MODEL_FIXTURES.mkdir(parents=True, exist_ok=True)
    query = counts[:5]
    expected: dict = {
        "__rows__": {
            "data": query.data.tolist(),
            "indices": query.indices.tolist(),
            "indptr": query.indptr.tolist(),
            "shape": list(query.shape),
        }
    }
    users = IdMap([f"u{k}" for k in range(60)])
    items = IdMap([f"i{k}" for k in range(40)])
    for name, params in [
        ("als", {"factors": 4, "iterations": 5, "num_threads": 1}),
        ("ease", {"l2": 10.0, "min_users": 1}),
        ("item-knn", {"neighbours": 10}),
    ]:
        model = make_model(name, params).fit(counts)
        model.save(MODEL_FIXTURES / f"{name}-format1.npz", users=users, items=items)
        expected[name] = model.recommend(np.arange(5), query, N=5)[0].tolist()
    (MODEL_FIXTURES / "expected.json").write_text(json.dumps(expected) + "\n")


def test_recommend_filters_pads_and_returns_best_first(blocks):
    train, _, side, _ = blocks
    model = EASE(l2=20.0, min_users=1).fit(train)
    row = train[[0]]
    ids, scores = model.recommend(0, row, N=10, filter_items=np.array([1, 2, 3]))
    assert ids.shape == (10,) and np.all(np.diff(scores) <= 0)
    assert not set(ids) & set(row.indices) and not set(ids) & {1, 2, 3}
    ids, scores = model.recommend(0, row, N=train.shape[1] + 5)
    assert (ids == -1).sum() >= len(row.indices) + 5 and np.all(np.isneginf(scores[ids == -1]))
    keep, _ = model.recommend(0, row, N=5, filter_already_liked_items=False)
    assert keep.shape == (5,)
    with pytest.raises(ValueError, match="rows for"):
        model.recommend(np.array([0, 1]), row, N=5)


def test_top_n_orders_and_pads():
    ids, vals = top_n(np.array([[0.1, 0.9, -np.inf, 0.5]]), 5)
    assert ids.tolist() == [[1, 3, 0, -1, -1]]
    assert vals[0, :3].tolist() == pytest.approx([0.9, 0.5, 0.1])


def test_top_n_breaks_ties_by_index_whatever_n():
    """Ties go to the lower index, at the cut too: the best n are the first n of the best
    n + 1, so a list cannot change with the batch it was computed in."""
    rng = np.random.default_rng(0)
    for width, dtype in ((300, np.float32), (300, np.float64), (5_000, np.float32)):
        # Many ties, and on the wide rows long stretches that the block count skips.
        scores = rng.integers(0, 4 if width == 300 else 40, (6, width)).astype(dtype)
        scores[rng.random(scores.shape) < 0.2] = -np.inf
        for n in (1, 7, 50, 299, 310):
            ids, vals = top_n(scores, n)
            for r, row in enumerate(scores):
                expected = [
                    i for i in np.lexsort((np.arange(len(row)), -row)) if np.isfinite(row[i])
                ][:n]
                assert [i for i in ids[r] if i >= 0] == expected, (width, n, r)
                assert vals[r, : len(expected)].tolist() == row[expected].tolist()
                assert np.isneginf(vals[r, len(expected) :]).all()


def test_top_n_on_wide_rows_whatever_the_sample_guesses():
    """Wide rows are cut at a threshold guessed from a sample; rows where the guess cannot
    hold (mostly -inf, NaN, sorted, one long tie) must come out exactly as a full sort says."""
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((8, 20_000)).astype(np.float32)
    rows[0, rng.random(20_000) < 0.995] = -np.inf  # fewer finite entries than asked for
    rows[1, ::3] = np.nan
    rows[2] = np.sort(rows[2])
    rows[3] = np.sort(rows[3])[::-1]
    rows[4] = 1.0  # one tie across the row
    rows[5, :19_000] = -np.inf  # everything sampled early is -inf
    rows[6] = np.round(rows[6], 1)  # many ties at every value
    for n in (1, 30, 100, 500):
        ids, vals = top_n(rows, n)
        for r, row in enumerate(rows):
            finite = [i for i in np.lexsort((np.arange(len(row)), -row)) if np.isfinite(row[i])]
            assert [i for i in ids[r] if i >= 0] == finite[:n], (n, r)
            assert vals[r, : len(finite[:n])].tolist() == row[finite[:n]].tolist()


def test_similar_items_stay_in_the_items_group(blocks):
    train, _, side, item_group = blocks
    for model in (ALS(**FAST["als"]).fit(train), ItemKNN(neighbours=30).fit(train)):
        ids, scores = model.similar_items(np.array([0, 1, 2]), N=6)
        assert ids[:, 0].tolist() == [0, 1, 2]  # the item itself first
        same = item_group[ids[:, 1:]] == item_group[np.array([0, 1, 2])][:, None]
        assert same.mean() > 0.8, model.name


def test_unfitted_models_and_bad_parameters_are_clear_errors():
    with pytest.raises(NotFittedError):
        ALS().recommend(0, sp.csr_matrix((1, 3), dtype=np.float32))
    m = sp.csr_matrix(np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="factors"):
        ALS(factors=0).fit(m)
    with pytest.raises(ValueError, match="l2"):
        EASE(l2=-1).fit(m)
    with pytest.raises(ValueError, match="weighting"):
        ItemKNN(weighting="jaccard").fit(m)
    with pytest.raises(ValueError, match="w_tags"):
        Hybrid(w_tags=-0.5).fit(m)
    with pytest.raises(ValueError, match="unknown model"):
        make_model("svd")
    with pytest.raises(ValueError, match="no parameter"):
        make_model("als", {"factor": 3})
    with pytest.raises(TypeError, match="sparse"):
        ALS().fit(np.ones((3, 3)))


def test_fold_in_matches_the_als_user_step(blocks):
    train, _, _, _ = blocks
    model = ALS(factors=8, iterations=30, regularization=0.1, use_cg=False, num_threads=1).fit(
        train
    )
    users = np.arange(20)
    again = model.user_vectors(users, train[users], recalculate_user=True)
    cos = np.sum(again * model.user_factors_[users], axis=1) / (
        np.linalg.norm(again, axis=1) * np.linalg.norm(model.user_factors_[users], axis=1)
    )
    assert cos.min() > 0.99
    # a new user id (-1) is folded in from the row alone
    ids_new, _ = model.recommend(-1, train[[3]], N=10)
    ids_known, _ = model.recommend(3, train[[3]], N=10)
    assert len(set(ids_new) & set(ids_known)) >= 7


def test_fold_in_reads_negative_values_as_dislikes():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 3))
    y[1] = 0.9 * y[0] + 0.1 * y[1]  # item 1 is like item 0: liking 0 predicts liking 1
    liked = sp.csr_matrix(np.array([[2.0, 0, 0, 0, 0, 0]], np.float32))
    disliked = sp.csr_matrix(np.array([[2.0, -5.0, 0, 0, 0, 0]], np.float32))
    a = fold_in(y, liked, 0.1)[0]
    b = fold_in(y, disliked, 0.1)[0]
    # a skip is "preference 0 with confidence 5": the skipped item's prediction drops
    assert float(b @ y[1]) < 0.7 * float(a @ y[1])
    # exactly the implicit-feedback normal equations: (YᵀY + Yᵀ(C - I)Y + λI) x = YᵀCp
    c = np.array([2.0, 5.0, 1, 1, 1, 1])
    p = np.array([1.0, 0, 0, 0, 0, 0])
    want = np.linalg.solve(y.T @ np.diag(c) @ y + 0.1 * np.eye(3), y.T @ (c * p))
    np.testing.assert_allclose(b, want, rtol=1e-5)


def test_new_users_are_folded_in_by_every_model(blocks):
    train, _, side, item_group = blocks
    n_items = train.shape[1]
    group = 2
    liked = np.flatnonzero(item_group == group)[:5]
    row = sp.csr_matrix(
        (np.full(5, 3.0, np.float32), (np.zeros(5, int), liked)), shape=(1, n_items)
    )
    for name in ("als", "bpr", "item-knn", "ease", "hybrid"):
        model = make_model(name, FAST[name]).fit(train, side)
        ids, _ = model.recommend(np.array([-1]), row, N=10)
        share = np.mean(item_group[ids[0][ids[0] >= 0]] == group)
        assert share >= 0.8, (name, share)


# -- training on a store, the registry, fold-in on a simulated world -----------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return simulated_store(tmp_path_factory.mktemp("cfworld"))


def test_train_registers_versions_and_the_default(world, tmp_path):
    import shutil

    from deepcuts.models.cf.training import load_trained, recommend_for_users, train_from_store
    from deepcuts.store import Store

    path = tmp_path / "store.duckdb"
    shutil.copy(world[0], path)
    with Store(path) as store:
        first = train_from_store(store, "als", {"factors": 16, "iterations": 5, "num_threads": 1})
        assert first.record.model_id == "als-v1" and first.record.is_default
        assert Path(first.record.path).is_file()
        assert Path(first.record.path).parent == tmp_path / "models"
        assert first.record.metrics["interactions"] > 0
        assert first.record.params["model"]["factors"] == 16
        second = train_from_store(
            store, "als", {"factors": 16, "iterations": 5, "num_threads": 1}, make_default=False
        )
        assert second.record.version == 2 and not second.record.is_default
        assert default_model(store).model_id == "als-v1"
        set_default(store, "als-v2")
        assert [m.is_default for m in list_models(store)] == [False, True]
        loaded = load_trained(store)
        assert loaded.record.model_id == "als-v2"
        some = list(loaded.users.ids[:3])
        mine = recommend_for_users(store, loaded, some, N=10)
        direct = recommend_for_users(store, second, some, N=10)
        assert mine == direct and all(len(r) == 10 for r in mine)
        # heard items are never recommended
        heard = set(
            store.conn.execute(
                "SELECT item_id FROM listens WHERE user_id = ?", [some[0]]
            ).fetchall()
        )
        assert not {i for i, _ in mine[0]} & {h[0] for h in heard}


def test_a_new_user_gets_recommendations_from_first_plays_without_retrain(world, tmp_path):
    """Five plays of one artist's tracks by a user created after training: the
    recommendations follow that artist (its genre in the simulator's ground truth), and move
    when the user goes on to play another genre."""
    import shutil
    from datetime import timedelta

    from deepcuts.models.cf.training import recommend_for_users, train_from_store
    from deepcuts.simulate import load_truth
    from deepcuts.store import Store

    store_path, world_dir = world
    truth = load_truth(world_dir)
    path = tmp_path / "store.duckdb"
    shutil.copy(store_path, path)
    with Store(path) as store:
        trained = train_from_store(store, DEFAULT_MODEL)  # the default model, as `deepcuts train`
        latest = store.conn.execute("SELECT max(played_at) FROM listens").fetchall()[0][0]
        genre_of = dict(zip(truth.track_ids.tolist(), truth.track_genre.tolist(), strict=True))
        artist_of = dict(
            zip(truth.track_ids.tolist(), truth.track_artist_ids.tolist(), strict=True)
        )
        artist_tracks: dict[str, list[str]] = {}
        for t, a in artist_of.items():
            if t in trained.items:
                artist_tracks.setdefault(a, []).append(t)
        artists = sorted(
            (a for a, ts in artist_tracks.items() if len(ts) >= 6),
            key=lambda a: -len(artist_tracks[a]),
        )
        first = artists[0]
        second = next(
            a for a in artists if genre_of[artist_tracks[a][0]] != genre_of[artist_tracks[first][0]]
        )
        g1, g2 = genre_of[artist_tracks[first][0]], genre_of[artist_tracks[second][0]]
        base_rate = np.mean([genre_of[t] == g1 for t in trained.items.ids])

        store.conn.execute("INSERT INTO users (user_id, country) VALUES ('newcomer', 'SE')")
        assert "newcomer" not in trained.users

        def play(tracks, start):
            for n, t in enumerate(tracks):
                store.conn.execute(
                    "INSERT INTO listens (user_id, item_id, played_at, ms_played) VALUES (?, ?, ?, ?)",
                    ["newcomer", t, start + timedelta(minutes=4 * n), 200_000],
                )

        play(artist_tracks[first][:5], latest + timedelta(hours=1))
        recs = [i for i, _ in recommend_for_users(store, trained, ["newcomer"], N=20)[0]]
        assert len(recs) == 20
        assert not set(recs) & set(artist_tracks[first][:5])  # what they heard is filtered
        related = np.mean([genre_of[t] == g1 or artist_of[t] == first for t in recs])
        assert related >= 0.7 and related > 3 * base_rate, (related, base_rate)
        share_g2_before = np.mean([genre_of[t] == g2 for t in recs])

        # they keep listening: another artist in another genre, many plays
        play(artist_tracks[second][:6] * 3, latest + timedelta(hours=3))
        later = [i for i, _ in recommend_for_users(store, trained, ["newcomer"], N=20)[0]]
        share_g2_after = np.mean([genre_of[t] == g2 for t in later])
        assert later != recs
        assert share_g2_after >= share_g2_before + 0.25, (share_g2_before, share_g2_after)
