"""Cold start: content to CF vectors, the cold-start recommender, `deepcuts similar`, and the
cold-items evaluation (leaving out the scored user's own text; a simulated world)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.evaluation.coldstart import (
    ColdItemsConfig,
    _Seed,
    evaluate_cold_items,
    load_cold_data,
    recall_at_k,
)
from deepcuts.models.coldstart import (
    ColdStartRecommender,
    ContentToCF,
    ItemSimilarity,
    NeighbourToCF,
)
from deepcuts.store import Store


# -- content to CF -------------------------------------------------------------------------------
def test_content_to_cf_recovers_a_linear_map_dense_and_sparse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    w = rng.normal(size=(12, 4))
    y = x @ w + 0.5 + rng.normal(0, 0.01, size=(200, 4))
    for features in (x, sp.csr_matrix(x)):
        mapping = ContentToCF(alpha=1e-3).fit(features, y)
        np.testing.assert_allclose(mapping.predict(features[:5]), y[:5], atol=0.05)
    unit = ContentToCF(alpha=1e-3, unit_targets=True).fit(x, y)
    assert np.linalg.norm(unit.predict(x), axis=1).mean() == pytest.approx(1.0, abs=0.2)
    with pytest.raises(ValueError, match="feature rows"):
        ContentToCF().fit(x[:3], y)


def test_cold_start_recommender_fills_cold_items_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items, d = 30, 40, 4
    item_factors = rng.normal(size=(n_items, d)).astype(np.float32)
    user_factors = rng.normal(size=(n_users, d)).astype(np.float32)
    text = item_factors @ rng.normal(size=(d, 10))  # content that determines the CF vector
    audio = np.zeros((n_items, 6))
    audio[:30] = item_factors[:30] @ rng.normal(size=(d, 6))  # items 30.. have no audio
    dense = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    cold = np.array([5, 31, 35])
    dense[:, cold] = 0
    plays = sp.csr_matrix(dense)
    model = ColdStartRecommender(alpha=1e-3, neighbours=0).fit(
        plays,
        user_factors=user_factors,
        item_factors=item_factors,
        features={"text": text, "audio": audio},
    )
    vectors = model.item_vectors()
    warm = np.setdiff1d(np.arange(n_items), cold)
    np.testing.assert_array_equal(vectors[warm], item_factors[warm])
    assert model.is_cold_[cold].all() and not model.is_cold_[warm].any()
    # Text predicts exactly; the cold item without audio takes the text prediction alone.
    np.testing.assert_allclose(vectors[31], item_factors[31], atol=0.05)
    assert not model.predicted("audio")[31].any()
    cosine = (
        vectors[5] @ item_factors[5] / np.linalg.norm(vectors[5]) / np.linalg.norm(item_factors[5])
    )
    assert cosine > 0.95
    assert model.score(np.arange(3), plays[:3]).shape == (3, n_items)
    ids, _ = model.recommend(0, plays[0], N=5)
    assert len(ids) == 5

    model.save(tmp_path / "cold.npz")
    again = ColdStartRecommender.load(tmp_path / "cold.npz")
    np.testing.assert_array_equal(again.item_vectors(), vectors)
    assert list(again.modalities_) == ["text", "audio"]
    with pytest.raises(KeyError):
        again.predicted("lyrics")
    with_knn = ColdStartRecommender(alpha=1e-3, neighbours=3).fit(
        plays, user_factors=user_factors, item_factors=item_factors, features={"text": text}
    )
    assert list(with_knn.modalities_) == ["text", "knn"]
    assert with_knn.predicted("knn")[5].any()


def test_neighbour_mapping_averages_the_nearest_warm_items():
    warm_views = [np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)[::-1]]
    targets = np.arange(8, dtype=np.float32).reshape(4, 2)
    knn = NeighbourToCF(k=1).fit(warm_views, targets)
    # Like item 0 by the first view and like item 0 by the second (whose rows are reversed).
    query = [np.array([[1, 0, 0, 0]], np.float32), np.array([[0, 0, 0, 1]], np.float32)]
    np.testing.assert_allclose(knn.predict(query), targets[:1])
    two = NeighbourToCF(k=2, power=1.0, weights=(1.0, 0.0)).fit(warm_views, targets)
    np.testing.assert_allclose(two.predict([np.array([[0.6, 0.8, 0, 0]], np.float32),
                                            np.zeros((1, 4), np.float32)]),
                               [0.6 / 1.4 * targets[0] + 0.8 / 1.4 * targets[1]], rtol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="weights"):
        NeighbourToCF(weights=(1.0,)).fit(warm_views, targets)


def test_recall_at_k():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    relevant = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 0]]))
    assert recall_at_k(scores, relevant, 2) == 0.5  # second row has nothing relevant
    assert recall_at_k(scores, relevant, 10) == 1.0


# -- the scored user's own text never counts ------------------------------------------------------
def _tag_store(with_own_tag: bool) -> Store:
    """Rock and jazz items; u1 plays jazz and the cold item c2, whose only tag is u1's own."""
    store = Store(":memory:", create=True)
    c = store.conn
    rows = []
    for k in range(6):
        rows += [(f"r{k}", "rock", f"t{k}"), (f"j{k}", "jazz", f"t{k}")]
    rows += [("c1", "rock", "u9")]
    if with_own_tag:
        rows += [("c2", "jazz", "u1")]
    c.executemany("INSERT INTO item_tags (item_id, tag, user_id) VALUES (?, ?, ?)", rows)
    plays = [("u1", f"j{k}", 3) for k in range(4)] + [("u1", "c2", 5)]
    plays += [("u2", f"r{k}", 2) for k in range(5)] + [("u2", "c1", 1)]
    plays += [("u3", "j4", 2), ("u3", "j5", 2), ("u3", "c2", 1)]
    plays += [(f"t{k}", f"r{k}", 1) for k in range(6)] + [(f"t{k}", f"j{k}", 1) for k in range(6)]
    c.executemany("INSERT INTO listens (user_id, item_id, play_count) VALUES (?, ?, ?)", plays)
    return store


def _text_rows(with_own_tag: bool, cold_text: str = "others"):
    store = _tag_store(with_own_tag)
    data = load_cold_data(store, audio=False)
    cold = np.isin(data.item_ids, ["c1", "c2"])
    run = _Seed(data, ColdItemsConfig(factors=4, cold_text=cold_text), 0, cold=cold)
    scores = run.text_scores()
    users = data.user_ids[run.test_users].tolist()
    column = {item: k for k, item in enumerate(data.item_ids[run.cold_idx])}
    return {u: scores["text-match"][users.index(u)] for u in users}, column


def test_the_scored_users_own_tags_on_cold_items_are_left_out():
    with_tag, column = _text_rows(True)
    without_tag, _ = _text_rows(False)
    # u1 tagged c2 "jazz" and loves jazz: that tag must not help u1 find c2 ...
    assert with_tag["u1"][column["c2"]] == pytest.approx(0.0)
    np.testing.assert_allclose(with_tag["u1"], without_tag["u1"])
    # ... while for another jazz listener who played c2, u1's tag is text like any other.
    assert with_tag["u3"][column["c2"]] > 0.1
    assert without_tag["u3"][column["c2"]] == 0.0
    editorial, _ = _text_rows(True, "editorial")
    assert not editorial["u3"].any()  # no editorial text at all: every cold item scores 0


def test_cold_items_report_and_errors():
    store = _tag_store(True)
    report = evaluate_cold_items(
        store, ColdItemsConfig(fraction=0.25, k=2, seeds=(0, 1), factors=4)
    )
    assert set(report.recall) == {"random", "text-match", "text-cf", "text-knn", "text"}
    assert all(len(v) == 2 for v in report.recall.values())
    assert report.recall["random"][0] == pytest.approx(2 / report.n_cold[0])
    assert "| text |" in report.markdown()
    json.dumps(report.to_dict())
    with pytest.raises(ValueError, match="have no audio"):
        evaluate_cold_items(store, ColdItemsConfig(factors=4), models=["audio-cf"])
    with pytest.raises(ValueError, match="unknown model"):
        evaluate_cold_items(store, ColdItemsConfig(factors=4), models=["lyrics"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        ColdItemsConfig(fraction=1.5)
    with pytest.raises(ValueError, match="cold_text"):
        ColdItemsConfig(cold_text="everything")


# -- a simulated world ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small simulated world with a clip for every track, ingested into a store."""
    from deepcuts.io.native import NativeImporter
    from deepcuts.simulate import simulate_world

    folder = tmp_path_factory.mktemp("world")
    simulate_world(folder / "files", users=400, tracks=1000, weeks=2, seed=3, audio_share=1.0)
    with Store(folder / "world.duckdb", create=True) as store:
        importer = NativeImporter()
        for path in importer.files([str(folder / "files")]):
            importer.ingest_file(store, path)
        data = load_cold_data(store, audio_cache=str(folder / "cache"))
    return folder, data


def test_simulated_cold_tracks_from_audio_and_text(world):
    """10% of tracks cold; new tracks have only catalogue text. The audio-predicted vectors
    rank the cold tracks at least 3x better than random, and the hybrid beats text and audio.

    (K = 10 here because the world has only 100 cold tracks; the issue's Recall@50 is measured
    on a 5,000-track world in benchmarks, see the report.)"""
    _, data = world
    config = ColdItemsConfig(fraction=0.1, k=10, seeds=(0,), cold_text="editorial", cnn_epochs=10)
    report = evaluate_cold_items(config=config, data=data)
    print(report.markdown())  # noqa: T201
    random = report.mean("random")
    assert report.mean("audio-cf") >= 3 * random
    assert report.mean("hybrid") > report.mean("text")
    assert report.mean("hybrid") > report.mean("audio")
    # Neighbours by words and sound: better than by sound; in a world this small, about as
    # good as by words (on the 5,000-track world, clearly better than both).
    assert report.mean("hybrid-knn") > report.mean("audio-knn")
    assert report.mean("hybrid-knn") >= report.mean("text-knn") - 0.02


def test_similar_command_by_every_view(world):
    folder, data = world
    path = str(folder / "world.duckdb")
    cache = str(folder / "cache-cli")
    store = Store(path, read_only=True)
    # A track nobody played: CF neighbours come from its predicted vector.
    played = set(data.item_ids.tolist())
    unplayed = [
        r[0]
        for r in store.conn.execute("SELECT track_id FROM tracks ORDER BY 1").fetchall()
        if r[0] not in played
    ]
    track = data.item_ids[0]
    runner = CliRunner()
    genre = dict(store.conn.execute("SELECT track_id, genre FROM tracks").fetchall())
    for by in ("audio", "text", "cf", "hybrid"):
        result = runner.invoke(main, ["--store", path, "similar", track, "--by", by, "-n", "5", "--json",
                                      "--cache-dir", cache])  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
        assert len(rows) == 5 and track not in {r["item_id"] for r in rows}
        assert all(r["kind"] == "track" for r in rows)
        same_genre = np.mean([genre[r["item_id"]] == genre[track] for r in rows])
        assert same_genre >= 0.6, (by, rows)
    if unplayed:
        result = runner.invoke(
            main, ["--store", path, "similar", unplayed[0], "--by", "cf", "--cache-dir", cache]
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--store", path, "similar", "no-such-track"])
    assert result.exit_code == 6 and "no item" in result.output
    store.close()


def test_item_similarity_resolves_names(world):
    folder, _ = world
    store = Store(folder / "world.duckdb", read_only=True)
    sim = ItemSimilarity(store)
    track_id, name = store.conn.execute(
        "SELECT t.track_id, t.name FROM tracks t WHERE (SELECT count(*) FROM tracks u WHERE u.name = t.name) = 1 LIMIT 1"
    ).fetchall()[0]
    assert sim.resolve(track_id) == track_id
    assert sim.resolve(name.upper()) == track_id
    with pytest.raises(ValueError, match="by must be"):
        sim.similar(track_id, by="lyrics")
    store.close()


def test_run_cold_items_for_the_evaluate_command(tmp_path):
    """`deepcuts evaluate --cold-items` calls `run_cold_items` with its open store."""
    import click

    from deepcuts.cli.content import run_cold_items
    from deepcuts.config import load_settings

    path = tmp_path / "s.duckdb"
    store = _tag_store(True)
    store.conn.execute(f"ATTACH '{path}' AS out")
    store.conn.execute("COPY FROM DATABASE memory TO out")
    store.close()
    ctx = click.Context(click.Command("evaluate"), obj=load_settings(store=path))
    with ctx, Store(path, read_only=True) as opened:
        summary = run_cold_items(ctx, opened, 0.25, seeds=[0, 1], k=2, cold_text="others")
    assert summary["k"] == 2 and summary["seeds"] == [0, 1]
    assert set(summary["recall"]) == {"random", "text-match", "text-cf", "text-knn", "text"}
    json.dumps(summary)
