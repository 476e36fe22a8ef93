"""The Spark engine against the embedded one: the same confidence values, the same model format
and registry, the same weekly lists; ALS quality on HetRec within 5%.

Spark runs as local[2] with its UI off, one session for the module. Needs Java 17 (`.ci/run`
installs it where it is missing).
"""

from __future__ import annotations

import warnings
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.engines.spark.als import SparkALS
from deepcuts.engines.spark.ratings import spark_ratings
from deepcuts.engines.spark.session import spark_session
from deepcuts.evaluation.datasets import dataset_store
from deepcuts.evaluation.harness import EvaluationData, ModelSpec, evaluate_models
from deepcuts.models.catalog import load_model
from deepcuts.models.cf.als import ALS
from deepcuts.models.cf.training import load_trained
from deepcuts.models.registry import default_model
from deepcuts.store import Store
from deepcuts.surfaces.weekly import WeeklyFilesError, load_weekly_lists, parse_week, prepare_weekly
from tests.cf_helpers import simulated_store
from tests.conftest import HETREC

WEEK = "2026-W44"  # the simulated world runs from Monday 2026-10-05 for 3 weeks
MONDAY = parse_week(WEEK)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def spark():
    warnings.filterwarnings("ignore", module="pyspark")
    session = spark_session(
        "local[2]",
        {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
        },
    )
    yield session
    session.stop()


def cli(store_path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["--store", str(store_path), *map(str, args)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def world(tmp_path_factory, spark):
    """A small simulated world, its events exported, ALS trained on Spark and registered,
    and the week's lists built on Spark."""
    tmp = tmp_path_factory.mktemp("spark-world")
    path, _ = simulated_store(tmp, users=150, tracks=600, weeks=3, seed=3)
    events, lists = tmp / "events", tmp / "lists"
    cli(path, "export-events", "--out", events)
    cli(
        path,
        "train",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--events",
        events,
        "--set",
        "factors=16",
        "--set",
        "iterations=5",
    )
    out = cli(
        path,
        "weekly",
        "--week",
        WEEK,
        "--ranker",
        "blend",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--partitions",
        "2",
        "--out",
        lists,
    )
    assert "150 lists" in out, out
    return path, events, lists


def test_spark_ratings_carry_the_embedded_confidence():
    # implicit: v > 0 is preference 1 with confidence alpha * v; v < 0 preference 0 with
    # confidence alpha * |v|. Spark: preference r > 0, confidence 1 + |r|.
    v = np.array([3.0, 1.5, 1.0, 0.4, -2.5, -1.0], np.float32)
    r = spark_ratings(v, alpha=1.0)
    assert (r[:4] > 0).all() and (r[4:] <= 0).all()
    np.testing.assert_allclose(1 + np.abs(r[[0, 1, 4]]), [3.0, 1.5, 2.5], rtol=1e-6)
    assert r[2] == pytest.approx(0, abs=1e-5) and r[5] == 0  # confidence 1, as an empty cell's
    np.testing.assert_allclose(1 + spark_ratings(np.array([2.0]), alpha=2.0), [4.0])


def test_events_layout(world, spark):
    path, events, _ = world
    with Store(path, read_only=True) as store:
        listens = store.conn.execute("SELECT count(*) FROM listens").fetchall()[0][0]
        saves = store.conn.execute(
            "SELECT count(*) FROM actions WHERE action IN ('save', 'unsave')"
        ).fetchall()[0][0]
    frames = {
        kind: spark.read.parquet(str(events / kind)) for kind in ("listens", "skips", "saves")
    }
    assert frames["listens"].count() + frames["skips"].count() == listens
    assert frames["saves"].count() == saves
    assert "day" in frames["listens"].columns
    days = {r["day"] for r in frames["listens"].select("day").distinct().collect()}
    assert {str(d) for d in days} >= {"2026-10-05", "2026-10-25"}
    # a skip is a listen under 30 s
    assert frames["skips"].where("ms_played >= 30000").count() == 0
    for kind in ("playlist_items", "follows", "bans"):
        assert (events / kind).is_dir()


def test_spark_model_is_registered_and_saved_like_the_embedded_one(world):
    path, _, _ = world
    with Store(path, read_only=True) as store:
        record = default_model(store)
        assert record.name == "als" and record.metrics["engine"] == "spark"
        assert record.params["confidence"]["scaling"] == "log"
        trained = load_trained(store)
    model, users, items = load_model(record.path)
    assert type(model) is ALS and model.factors == 16
    assert model.user_factors_.shape == (len(users), 16) and model.item_factors_.shape == (
        len(items),
        16,
    )
    assert np.isfinite(model.item_factors_).all() and np.abs(model.item_factors_).sum() > 0
    assert trained.model.iterations == 5


def test_spark_weekly_keeps_every_rule_and_equals_the_embedded_lists(world, spark):
    path, events, lists = world
    rows = ds.dataset(str(lists / "weekly_lists"), format="parquet").to_table()
    with Store(path, read_only=True) as store:
        table_columns = [
            c
            for (c,) in store.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'weekly_lists' "
                "ORDER BY ordinal_position"
            ).fetchall()
        ]
        artist = dict(store.conn.execute("SELECT track_id, artist_id FROM tracks").fetchall())
        dw = prepare_weekly(store, MONDAY, ranker="blend")
        embedded, _ = dw.tables(np.arange(dw.interactions.shape[0]))
    assert rows.column_names == table_columns
    frame = rows.to_pandas()
    assert frame["week"].eq(WEEK).all()
    per_user = frame.groupby("user_id")
    assert per_user.size().eq(30).all() and per_user.ngroups == 150
    assert per_user["position"].apply(lambda p: sorted(p) == list(range(30))).all()
    assert per_user["item_id"].nunique().eq(30).all()
    assert frame["reason"].str.len().gt(0).all() and frame["source"].notna().all()
    frame["artist"] = frame["item_id"].map(artist)
    assert frame.groupby(["user_id", "artist"]).size().max() <= 2
    # never played before the week, skips included: read from the exported events on Spark
    week_start = datetime.combine(MONDAY, datetime.min.time())
    played = (
        spark.read.parquet(str(events / "listens"))
        .unionByName(spark.read.parquet(str(events / "skips")))
        .where(f"played_at IS NULL OR played_at < '{week_start}'")
        .select("user_id", "item_id")
    )
    spark_rows = spark.read.parquet(str(lists / "weekly_lists"))
    assert spark_rows.join(played, ["user_id", "item_id"], "left_semi").count() == 0
    assert played.count() > 0
    # the same lists as the embedded engine's, track for track
    key = ["user_id", "position"]
    mine = frame.sort_values(key)[
        ["user_id", "position", "item_id", "source", "reason"]
    ].reset_index(drop=True)
    theirs = (
        embedded.to_pandas()
        .sort_values(key)[["user_id", "position", "item_id", "source", "reason"]]
        .reset_index(drop=True)
    )
    assert mine.equals(theirs)


def test_load_weekly_lists(world, tmp_path):
    path, _, lists = world
    with Store(path) as store:
        assert load_weekly_lists(store, lists) == 150 * 30
        assert load_weekly_lists(store, lists) == 150 * 30  # a second load replaces, not adds
        count, users = store.conn.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM weekly_lists WHERE week = ?", [WEEK]
        ).fetchall()[0]
        assert (count, users) == (4500, 150)
        with pytest.raises(WeeklyFilesError, match="no weekly_lists"):
            load_weekly_lists(store, tmp_path)
        bad = tmp_path / "bad" / "weekly_lists"
        bad.mkdir(parents=True)
        pq.write_table(pa.table({"user_id": ["u"], "week": [WEEK]}), bad / "part-0.parquet")
        with pytest.raises(WeeklyFilesError, match="position"):
            load_weekly_lists(store, tmp_path / "bad")


def test_publish_from_the_spark_output_serves_its_lists(world):
    """`deepcuts publish --from PATH` loads the Spark engine's lists and the service serves them."""
    from fastapi.testclient import TestClient

    from deepcuts.serving.config import ServeConfig
    from deepcuts.serving.main import create_app

    path, _, lists = world
    assert "published snapshot" in cli(path, "publish", "--from", lists)
    frame = pq.read_table(lists / "weekly_lists").to_pandas()
    user = sorted(frame["user_id"])[0]
    expected = frame[frame["user_id"] == user].sort_values("position")["item_id"].tolist()
    api = TestClient(create_app(ServeConfig(path, no_auth=True)))
    served = api.get(f"/v1/users/{user}/weekly", params={"week": WEEK}).json()
    assert [t["item_id"] for t in served["tracks"]] == expected and len(expected) == 30


def test_spark_als_ndcg_within_5_percent_of_embedded_on_hetrec(spark):
    params = {"factors": 32, "regularization": 1.0, "iterations": 10}
    store = dataset_store("lastfm-hetrec", [str(HETREC)])
    try:
        specs = [
            ModelSpec("embedded", lambda seed: ALS(random_state=seed, **params)),
            ModelSpec("spark", lambda seed: SparkALS(spark, random_state=seed, blocks=2, **params)),
        ]
        result = evaluate_models(EvaluationData(store, "hetrec"), specs, seeds=[0, 1, 2], k=20)
    finally:
        store.close()
    embedded, on_spark = ([s["ndcg"] for s in m.per_seed] for m in result.models)
    assert min(embedded) > 0.2  # a real model, not a broken one matched by another
    for seed, (a, b) in enumerate(zip(embedded, on_spark, strict=True)):
        assert abs(b - a) / a <= 0.05, f"seed {seed}: embedded {a:.4f}, Spark {b:.4f}"


def test_cli_says_what_is_wrong_before_starting_spark(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path, create=True).close()
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["--store", str(path), *map(str, args)], catch_exceptions=False)

    result = run("weekly", "--week", WEEK, "--engine", "spark")
    assert result.exit_code == 2 and "--out PATH" in result.output
    result = run(
        "weekly", "--week", WEEK, "--engine", "spark", "--user", "u1", "--out", tmp_path / "x"
    )
    assert result.exit_code == 2 and "leave out --user" in result.output
    result = run("train", "--engine", "spark", "--model", "ease")
    assert result.exit_code == 2 and "fits als, not ease" in result.output
    result = run("train", "--master", "yarn")
    assert result.exit_code == 2 and "--engine spark" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = run("export-events", "--out", tmp_path / "full")
    assert result.exit_code == 2 and "not empty" in result.output
    result = run("export-events", "--out", tmp_path / "full", "--overwrite")
    assert result.exit_code == 2 and "no manifest.json" in result.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
