"""Evaluation: metrics against hand-computed values, splits that never leak, the side-by-side
harness, tuning on validation only, reports and the commands."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp

from deepcuts.evaluation import (
    EvaluationData,
    ModelSpec,
    coverage,
    evaluate_models,
    holdout_pairs,
    intra_list_diversity,
    model_spec,
    novelty,
    ranking_metrics,
    standard_specs,
)
from deepcuts.evaluation.metrics import activity_buckets
from deepcuts.evaluation.report import write_json, write_report
from deepcuts.evaluation.splits import SplitError, time_split
from deepcuts.evaluation.tuning import tune_model, validation_split
from deepcuts.models.base import Recommender
from deepcuts.models.cf import Popularity
from deepcuts.signals import ConfidenceConfig
from tests.cf_helpers import block_matrix, simulated_store, store_from_matrix
from tests.conftest import HETREC

# -- metrics -------------------------------------------------------------------------------


def test_ranking_metrics_match_hand_computed_values():
    relevant = sp.csr_matrix(
        np.array(
            [
                [1, 0, 1, 0, 0, 0],  # user 0: items 0 and 2
                [0, 0, 0, 0, 0, 1],  # user 1: item 5
                [0, 0, 0, 0, 0, 0],  # user 2: nothing relevant
            ],
            np.float32,
        )
    )
    recs = np.array([[2, 3, 0], [1, 4, -1], [0, 1, 2]])
    m = ranking_metrics(recs, relevant, 3)
    # user 0: hits at ranks 1 and 3
    assert m["recall"][0] == pytest.approx(1.0)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg"][0] == pytest.approx(dcg / idcg)
    assert m["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m["hitrate"][0] == 1
    # user 1: no hit (padding never hits)
    assert m["recall"][1] == 0 and m["ndcg"][1] == 0 and m["map"][1] == 0 and m["hitrate"][1] == 0
    # user 2: undefined
    assert all(np.isnan(m[k][2]) for k in m)
    # K smaller than the relevant set: the ideal list is K long
    m2 = ranking_metrics(
        np.array([[0, 4]]), sp.csr_matrix(np.array([[1, 1, 1, 0, 0]], np.float32)), 2
    )
    assert m2["ndcg"][0] == pytest.approx(1.0 / (1 + 1 / math.log2(3)))
    assert m2["recall"][0] == pytest.approx(1 / 3)
    assert m2["map"][0] == pytest.approx(1 / 2)


def test_beyond_accuracy_measures_match_hand_computed_values():
    recs = np.array([[0, 1], [1, -1]])
    assert coverage(recs, 4) == pytest.approx(0.5)
    share = np.array([0.5, 0.25, 0.1, 0.0])
    assert novelty(recs, share, 8) == pytest.approx((1 + 2 + 2) / 3)
    features = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]], np.float32))
    ild = intra_list_diversity(np.array([[0, 1], [0, 2]]), features)
    assert ild == pytest.approx(((1 - 1 / math.sqrt(2)) + 1.0) / 2)


def test_activity_buckets():
    bucket, labels = activity_buckets(np.array([1, 4, 5, 9, 10, 25, 41]))
    assert labels == ["1-4", "5-9", "10-19", "20-39", "40+"]
    assert bucket.tolist() == [0, 0, 1, 1, 2, 3, 4]


# -- splits --------------------------------------------------------------------------------


def test_holdout_takes_a_fifth_of_each_users_items_at_random():
    counts, _, _ = block_matrix(n_users=50, n_items=80, per_user=12)
    counts = counts.tolil()
    counts[0, :] = 0
    counts[0, [1, 2, 3, 4]] = 1  # 4 items: too few to hold out from
    counts = counts.tocsr()
    counts.eliminate_zeros()
    test = holdout_pairs(counts, 0.2, seed=7, min_items=5)
    per_user = np.diff(test.indptr)
    n = np.diff(counts.indptr)
    assert per_user[0] == 0
    expected = np.where(n >= 5, np.floor(0.2 * n + 0.5), 0)
    assert per_user.tolist() == expected.tolist()
    assert (test.multiply(counts) > 0).sum() == test.nnz  # only the user's own items
    again = holdout_pairs(counts, 0.2, seed=7, min_items=5)
    other = holdout_pairs(counts, 0.2, seed=8, min_items=5)
    assert (again != test).nnz == 0 and (other != test).nnz > 0
    with pytest.raises(SplitError):
        holdout_pairs(counts, 1.5)


class Spy(Recommender):
    """Records what it is trained on; recommends by popularity."""

    name = "spy"
    seen: list = []

    def fit(self, user_items, side=None):
        Spy.seen.append((user_items.copy(), side))
        self.inner_ = Popularity().fit(user_items)
        self.n_users_, self.n_items_ = user_items.shape
        return self

    def score(self, userids, user_items):
        return self.inner_.score(userids, user_items)


@pytest.fixture
def tagged_store(store):
    """40 users, each listening to 10 artists and tagging every one of them with a tag that
    names the pair, so that any leak of a held-out pair's tag is visible."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        for a in rng.choice(30, 10, replace=False):
            rows.append((f"u{u}", f"a{a}", int(rng.integers(1, 50))))
    for user, item, n in rows:
        store.conn.execute(
            "INSERT INTO listens (user_id, item_id, play_count) VALUES (?, ?, ?)", [user, item, n]
        )
        store.conn.execute(
            "INSERT INTO item_tags (item_id, tag, user_id) VALUES (?, ?, ?)",
            [item, f"{user}~{item}", user],
        )
    return store


def test_held_out_pairs_never_reach_training(tagged_store):
    data = EvaluationData(tagged_store, "tagged")
    Spy.seen = []
    spec = ModelSpec("spy", build=lambda seed: Spy())
    evaluate_models(data, [spec], seeds=[0, 1], k=5)
    for seed, (train, side) in zip([0, 1], Spy.seen, strict=True):
        split = data.split("user-holdout", seed, 0.2, 5, 7)
        test = split.test
        assert test.nnz == 40 * 2  # 20% of 10 per user
        assert train.multiply(test).nnz == 0  # no held-out play in training
        kept = set(side.tags)
        for u, i in zip(*test.nonzero(), strict=True):
            assert f"{data.users.id(u)}~{data.items.id(i)}" not in kept  # the user's own tag
        train_pairs = list(zip(*train.nonzero(), strict=True))
        assert all(f"{data.users.id(u)}~{data.items.id(i)}" in kept for u, i in train_pairs)


def test_tuning_never_sees_the_test_pairs(tagged_store):
    data = EvaluationData(tagged_store, "tagged")
    fit_split, validation = validation_split(data, "user-holdout", 0)
    test = data.split("user-holdout", 0, 0.2, 5, 7).test
    assert (fit_split.test.multiply(test)).nnz == test.nnz  # test pairs kept out of fitting
    assert validation.multiply(test).nnz == 0  # and not scored on
    train = data.matrix(ConfidenceConfig(), fit_split)
    assert train.multiply(test).nnz == 0 and train.multiply(validation).nnz == 0
    result = tune_model(data, "item-knn", space={"neighbours": [5, 20]}, k=5)
    assert result.params["neighbours"] in (5, 20)
    assert [t["params"]["neighbours"] for t in result.trials] == [100, 5, 20]  # defaults first
    assert "never used" in result.protocol["note"]


def test_time_split_tests_on_the_last_week(store):
    t0 = datetime(2026, 10, 1)
    for day in range(21):
        store.conn.execute(
            "INSERT INTO listens (user_id, item_id, played_at, ms_played) VALUES (?, ?, ?, 200000)",
            ["u1", f"i{day % 12}", t0 + timedelta(days=day)],
        )
        store.conn.execute(
            "INSERT INTO listens (user_id, item_id, played_at, ms_played) VALUES (?, ?, ?, 200000)",
            ["u2", f"i{20 + day}", t0 + timedelta(days=day)],
        )
    store.conn.execute(
        "INSERT INTO listens (user_id, item_id, played_at, ms_played) VALUES ('u3', 'i0', ?, 200000)",
        [t0 + timedelta(days=20)],
    )  # u3 only listens in the test window: a cold user, not tested here
    data = EvaluationData(store, "timed")
    split = time_split(store, data.users, data.items, 7)
    assert split.until == t0 + timedelta(days=13)
    test_items = {
        (data.users.id(u), data.items.id(i)) for u, i in zip(*split.test.nonzero(), strict=True)
    }
    # u1 replays i0..i11 (all seen before the window, except none): nothing new to find
    assert not any(u == "u1" for u, _ in test_items)
    assert test_items == {("u2", f"i{20 + d}") for d in range(13, 21)}
    Spy.seen = []
    evaluate_models(
        data, [ModelSpec("spy", build=lambda seed: Spy())], split="time", seeds=[0], k=5
    )
    train, _ = Spy.seen[0]
    u2 = data.users.index("u2")
    trained_items = {data.items.id(i) for i in train[u2].indices}
    assert trained_items == {f"i{20 + d}" for d in range(13)}  # nothing from the test window


def test_time_split_needs_times(store):
    store.conn.execute("INSERT INTO listens (user_id, item_id, play_count) VALUES ('u', 'i', 3)")
    data = EvaluationData(store, "counts")
    with pytest.raises(SplitError, match="played_at"):
        time_split(store, data.users, data.items, 7)


# -- the harness and reports ----------------------------------------------------------------


@pytest.fixture
def block_store(store):
    counts, _, _ = block_matrix(n_users=200, n_items=120, per_user=12)
    store_from_matrix(store, counts)
    return store


def test_side_by_side_run_reports_mean_and_std_and_the_default(block_store, tmp_path):
    data = EvaluationData(block_store, "blocks")
    specs = [
        model_spec("popularity"),
        model_spec("ease", {"l2": 20.0, "min_users": 1}),
        model_spec(
            "hybrid",
            {
                "ease_l2": 20.0,
                "ease_min_users": 1,
                "als_factors": 8,
                "als_iterations": 5,
                "num_threads": 1,
            },
        ),
    ]
    result = evaluate_models(data, specs, seeds=[0, 1, 2], k=10)
    s = result.summary()
    assert s["default_model"] == "hybrid" and s["models"]["hybrid"]["default"] is True
    assert s["models"]["ease"]["default"] is False
    for name in ("popularity", "ease", "hybrid"):
        entry = s["models"][name]
        for metric in (
            "recall@10",
            "ndcg@10",
            "map@10",
            "hitrate@10",
            "coverage@10",
            "novelty@10",
            "diversity@10",
        ):
            assert set(entry[metric]) == {"mean", "std", "per_seed"}
            per = entry[metric]["per_seed"]
            assert len(per) == 3
            assert entry[metric]["mean"] == pytest.approx(np.mean(per))
            assert entry[metric]["std"] == pytest.approx(np.std(per, ddof=1))
        assert entry["seconds"] > 0 and entry["by_activity"]
    assert (
        s["models"]["hybrid"]["ndcg@10"]["mean"]
        > s["models"]["popularity"]["ndcg@10"]["mean"] + 0.1
    )
    assert s["default_vs_others"]["popularity"]["beats"] is True
    assert s["protocol"]["test_users"] == [200, 200, 200]
    paths = write_report(s, tmp_path / "r.md")
    text = paths[0].read_text()
    assert "| hybrid (default) |" in text and "r.png" in text
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = write_report(s, tmp_path / "r.html")[0].read_text()
    assert "data:image/png;base64," in page
    write_json(s, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["models"]["ease"]["ndcg@10"]["mean"] > 0


def test_standard_run_includes_the_peers_and_marks_one_default():
    specs = standard_specs()
    names = [s.name for s in specs]
    assert {"popularity", "implicit-als", "implicit-bm25", "ease", "hybrid"} <= set(names)
    assert [s.name for s in specs if s.default] == ["hybrid"]
    assert {s.name for s in specs if s.peer} == {"implicit-als", "implicit-bm25"}
    peer = next(s for s in specs if s.name == "implicit-als").build(0)
    assert peer.factory().factors == 100  # the library's own defaults


# -- the commands --------------------------------------------------------------------------


def test_evaluate_command_on_hetrec(run_cli, tmp_path):
    out = tmp_path / "out.json"
    result = run_cli(
        "evaluate",
        "--dataset",
        "lastfm-hetrec",
        str(HETREC),
        "--split",
        "user-holdout",
        "--test-fraction",
        "0.2",
        "--seeds",
        "0,1",
        "--k",
        "20",
        "--models",
        "popularity,implicit-bm25",
        "--json",
        str(out),
        "--report",
        str(tmp_path / "r.md"),
    )
    summary = json.loads(out.read_text())
    pop = summary["models"]["popularity"]
    assert set(pop["recall@20"]) >= {"mean", "std"} and set(pop["ndcg@20"]) >= {"mean", "std"}
    assert 0.08 < pop["ndcg@20"]["mean"] < 0.12  # the reference run measured 0.096
    assert 0.18 < summary["models"]["implicit-bm25"]["ndcg@20"]["mean"] < 0.24  # reference 0.210
    assert summary["protocol"]["n_items"] == 17632 and summary["protocol"]["test_fraction"] == 0.2
    assert "implicit-bm25" in result.output and (tmp_path / "r.png").is_file()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return simulated_store(tmp_path_factory.mktemp("evalworld"))


def test_train_tune_and_evaluate_commands_on_a_store(run_cli, tmp_path, world):
    shutil.copy(world[0], tmp_path / "store.duckdb")
    best = tmp_path / "best.json"
    run_cli(
        "tune",
        "--model",
        "als",
        "--param",
        "factors=8,16",
        "--param",
        "confidence.alpha=1,2",
        "--k",
        "10",
        "--json",
        str(best),
    )
    tuned = json.loads(best.read_text())
    assert tuned["params"]["factors"] in (8, 16) and tuned["confidence"]["alpha"] in (1, 2)
    assert len(tuned["trials"]) >= 3
    out = run_cli(
        "train", "--model", "als", "--params", str(best), "--set", "iterations=5", "--json"
    )
    record = json.loads(out.output)
    assert record["model_id"] == "als-v1" and record["default"] is True
    assert record["params"]["model"]["iterations"] == 5
    assert record["params"]["confidence"]["alpha"] == tuned["confidence"]["alpha"]
    out = run_cli("train")  # the default model
    assert "hybrid-v1" in out.output and "(default)" in out.output
    report = tmp_path / "time.md"
    run_cli(
        "evaluate",
        "--split",
        "time",
        "--seeds",
        "0",
        "--k",
        "10",
        "--models",
        "popularity,regional-popularity,als",
        "--json",
        str(tmp_path / "time.json"),
        "--report",
        str(report),
    )
    summary = json.loads((tmp_path / "time.json").read_text())
    assert summary["protocol"]["split"] == "time" and summary["protocol"]["test_days"] == 7
    assert (
        summary["models"]["als"]["recall@10"]["mean"]
        > summary["models"]["popularity"]["recall@10"]["mean"]
    )
    assert report.is_file()


def test_bad_options_are_usage_errors(run_cli):
    result = run_cli("evaluate", "--seeds", "a,b", expect=2)
    assert "comma-separated" in result.output
    result = run_cli("evaluate", "--models", "svd", expect=2)
    assert "unknown model" in result.output


def test_report_shows_an_empty_activity_bucket_as_empty_with_every_buckets_users():
    from deepcuts.evaluation.report import _bucket_rows, markdown, plot_png

    def stats(v):
        return {"mean": v, "std": 0.01}

    def model(ndcg, default):
        m = {f"{name}@20": stats(ndcg) for name in ("ndcg", "recall", "map", "hitrate", "coverage",
                                                      "novelty", "diversity")}  # fmt: skip
        return {**m, "seconds": 1.0, "default": default, "peer": False, "description": "x", "params": {},
                "by_activity": {"1-4": {"users": 0.0, "ndcg@20": None},
                                "5-9": {"users": 12.0, "ndcg@20": ndcg / 2},
                                "10+": {"users": 300.0, "ndcg@20": ndcg}}}  # fmt: skip

    summary = {
        "protocol": {"k": 20, "dataset": "d", "split": "user-holdout", "seeds": [0], "n_users": 312,
                     "n_items": 50, "test_users": [312], "min_items": 5, "test_fraction": 0.2},
        "models": {"a": model(0.3, True), "b": model(0.2, False)},
    }  # fmt: skip
    header, rows = _bucket_rows(summary)
    assert header == [
        "model",
        "1-4 items (0 users)",
        "5-9 items (12 users)",
        "10+ items (300 users)",
    ]
    assert rows == [["a", "no users", "0.1500", "0.3000"], ["b", "no users", "0.1000", "0.2000"]]
    text = markdown(summary, None)
    assert "| a | no users | 0.1500 | 0.3000 |" in text and "0.0000" not in text
    assert plot_png(summary).startswith(b"\x89PNG")
