"""`deepcuts home`: the home screen served from a store, logged, and learning from plays.

One small simulated world is built with the real pipeline (simulate, ingest, train, weekly)
once per module; each test works on its own copy of the store and its models folder.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.store import Store

AT = datetime(2026, 11, 9, 18, 0)  # after the simulated weeks (from 2026-10-05, 4 weeks)


def _cli(store, *args, expect=0):
    result = CliRunner().invoke(
        main, ["--store", str(store), *[str(a) for a in args]], catch_exceptions=False
    )
    assert result.exit_code == expect, result.output
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    store = root / "store.duckdb"
    _cli(
        store,
        "simulate",
        "--users",
        120,
        "--tracks",
        600,
        "--weeks",
        4,
        "--seed",
        5,
        "--out",
        root / "world",
    )
    _cli(store, "ingest", "native", root / "world")
    _cli(store, "train")
    _cli(store, "weekly", "--week", "2026-W44")
    return root


@pytest.fixture
def store_path(built, tmp_path):
    """A private copy of the built store (and its models folder)."""
    shutil.copy(built / "store.duckdb", tmp_path / "store.duckdb")
    shutil.copytree(built / "models", tmp_path / "models")
    return tmp_path / "store.duckdb"


def users(store_path, n):
    with Store(store_path, read_only=True) as s:
        return [
            r[0]
            for r in s.conn.execute(
                "SELECT user_id FROM users ORDER BY user_id LIMIT ?", [n]
            ).fetchall()
        ]


def page(store_path, *args):
    return json.loads(_cli(store_path, "home", "--json", *args).stdout)


def test_home_shows_at_least_8_shelf_types_across_listeners(store_path):
    """20 listeners visit a quarter of an hour apart, from a new home model, default layout."""
    seen, shown = set(), 0
    for k, user in enumerate(users(store_path, 20)):
        p = page(store_path, "--user", user, "--at", (AT + timedelta(minutes=15 * k)).isoformat())
        assert len(p["shelves"]) == 4 and all(1 <= len(s["cards"]) <= 5 for s in p["shelves"])
        assert p["logged"] == sum(len(s["cards"]) for s in p["shelves"])
        items = [c["item_id"] for s in p["shelves"] for c in s["cards"]]
        assert len(items) == len(set(items)), "a track is on two shelves of one page"
        seen |= {s["shelf_type"] for s in p["shelves"]}
        shown += p["logged"]
    assert len(seen) >= 8, seen
    with Store(store_path, read_only=True) as s:
        assert s.conn.execute("SELECT count(*) FROM impressions").fetchall()[0][0] == shown
        assert (
            s.conn.execute("SELECT count(*) FROM impressions WHERE reward IS NOT NULL").fetchall()[
                0
            ][0]
            > 0
        )


def test_the_page_is_logged_with_its_propensities(store_path):
    user = users(store_path, 1)[0]
    p = page(store_path, "--user", user, "--hour", 7, "--weekday", 2, "--device", "ios", "--country", "se",
             "--shelves", 3, "--cards", 4, "--at", AT.isoformat())  # fmt: skip
    assert p["user_id"] == user and p["policy"]["policy_id"] == "epsilon-greedy"
    assert p["context"]["hour"] == 7 and p["context"]["weekday"] == 2
    assert p["context"]["device"] == "ios" and p["context"]["country"] == "SE"
    assert p["context"]["has_user_vector"] and "session_genre" in p["context"]
    assert p["logged"] == 12 and len(p["shelves"]) == 3
    assert [s["position"] for s in p["shelves"]] == [0, 1, 2]
    for s in p["shelves"]:
        assert s["title"] and 0 < s["shelf_propensity"] <= 1
        assert [c["position"] for c in s["cards"]] == [0, 1, 2, 3]
        for c in s["cards"]:
            assert c["name"] and 0 < c["card_propensity"] <= 1
            assert c["propensity"] == pytest.approx(
                s["shelf_propensity"] * c["card_propensity"], rel=1e-4
            )
    with Store(store_path, read_only=True) as s:
        rows = s.conn.execute(
            "SELECT impression_id, page_id, shelf_position, card_position, propensity, policy_id, hour, device "
            "FROM impressions"
        ).fetchall()
    assert len(rows) == 12 and {r[1] for r in rows} == {p["page_id"]}
    logged = {r[0]: r for r in rows}
    for s in p["shelves"]:
        for c in s["cards"]:
            r = logged[c["impression_id"]]
            assert (r[2], r[3], r[5], r[6], r[7]) == (
                s["position"],
                c["position"],
                "epsilon-greedy",
                7,
                "ios",
            )
            assert r[4] == pytest.approx(c["propensity"], rel=1e-4)
    # the default context: the listener's home country and most used platform
    with Store(store_path, read_only=True) as s:
        home_country = s.conn.execute(
            "SELECT country FROM users WHERE user_id = ?", [user]
        ).fetchall()[0][0]
    q = page(store_path, "--user", user, "--no-log", "--at", AT.isoformat())
    assert q["context"]["country"] == home_country and q["logged"] == 0
    assert q["context"]["hour"] == AT.hour and q["context"]["weekday"] == AT.weekday()
    text = _cli(store_path, "home", "--user", user, "--no-log").stdout
    assert f"Home for {user}" in text and "1. " in text


def test_rewards_for_one_shelf_type_raise_it_for_that_listener(store_path):
    """The feedback loop: streams of one shelf type's cards, joined and learnt from between
    visits, move that shelf type up the listener's ranking."""
    user = users(store_path, 3)[2]

    def ranking(at):
        p = page(store_path, "--user", user, "--policy", "greedy", "--no-log", "--shelves", 30, "--hour", 18,
                 "--at", at.isoformat())  # fmt: skip
        return [s["shelf_type"] for s in p["shelves"]], p

    def own_cards(p, shelf_type):  # its cards that no other shelf of the page shows
        others = {
            c["item_id"] for s in p["shelves"] if s["shelf_type"] != shelf_type for c in s["cards"]
        }
        mine = [
            c["item_id"] for s in p["shelves"] if s["shelf_type"] == shelf_type for c in s["cards"]
        ]
        return [i for i in mine if i not in others]

    before, first = ranking(AT)
    lower = [
        t
        for t in before[len(before) // 2 :]
        if before.count(t) == 1 and len(own_cards(first, t)) >= 3
    ]
    target = lower[0]  # a shelf type ranked in the lower half
    at, streamed = AT, 0
    for _ in range(6):  # every shelf shown; the listener streams the target's cards only
        at += timedelta(hours=2)
        p = page(store_path, "--user", user, "--shelves", 30, "--hour", 18, "--at", at.isoformat())
        plays = own_cards(p, target)
        streamed += len(plays)
        with Store(store_path) as s:
            for k, item in enumerate(plays):
                s.conn.execute(
                    "INSERT INTO listens (user_id, item_id, played_at, ms_played, play_count) VALUES (?, ?, ?, ?, 1)",
                    [user, item, (at + timedelta(minutes=5 + 4 * k)).replace(tzinfo=None), 180_000],
                )
    after, last = ranking(at + timedelta(hours=2))
    assert last["feedback"]["learned"] > 0 and last["policy"]["version"] == "6"
    assert after.index(target) < before.index(target), (target, before, after)
    with Store(store_path, read_only=True) as s:
        rewards = s.conn.execute(
            "SELECT shelf_type, avg(reward), count(reward) FROM impressions GROUP BY shelf_type"
        ).fetchall()
    by_type = {t: (r, n) for t, r, n in rewards}
    assert streamed >= 5 and by_type[target][0] * by_type[target][1] >= streamed
    assert by_type[target][0] > max(r for t, (r, _) in by_type.items() if t != target)


def test_the_reward_model_persists_without_pickle(store_path):
    user = users(store_path, 1)[0]
    shown = page(store_path, "--user", user, "--at", AT.isoformat())["logged"]
    path = store_path.parent / "models" / "home-bandit.npz"
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    assert meta["kind"] == "deepcuts.bandit.RewardModel" and meta["format_version"] == 1
    assert meta["extra"]["kind"] == "deepcuts.home" and meta["extra"]["version"] == 0
    # the next visit, two hours on, learns from the first page's (unstreamed) cards
    p = page(store_path, "--user", user, "--at", (AT + timedelta(hours=2)).isoformat())
    # (a shelf can hold fewer than 5 cards once no track is on two shelves)
    assert 15 <= shown <= 20
    assert p["feedback"] == {"streamed": 0, "not_streamed": shown, "learned": shown, "batches": 1}
    assert p["policy"]["version"] == "1"
    # and a third learns nothing twice
    p = page(store_path, "--user", user, "--at", (AT + timedelta(hours=2, minutes=1)).isoformat())
    assert p["feedback"]["learned"] == 0 and p["policy"]["version"] == "1"


def test_every_policy_serves_the_home_screen_and_keeps_what_it_learns(store_path):
    """Each policy `make_policy` makes serves through `deepcuts home --policy`; Thompson
    sampling and LinUCB make their own models on first use from every reward logged so far,
    keep them in the one home model file and go on learning from later pages."""
    user = users(store_path, 1)[0]
    at = AT
    page(store_path, "--user", user, "--at", at.isoformat())  # epsilon-greedy, logged
    for name in ("greedy", "uniform", "thompson", "linucb"):
        at += timedelta(hours=2)  # the pages before are learnt from, unstreamed
        p = page(store_path, "--user", user, "--policy", name, "--at", at.isoformat())
        assert p["policy"]["policy_id"] == name and p["logged"] > 0
        for s in p["shelves"]:
            assert 0 < s["shelf_propensity"] <= 1
            assert all(0 < c["propensity"] <= 1 for c in s["cards"])
    with Store(store_path, read_only=True) as s:
        served = dict(
            s.conn.execute(
                "SELECT policy_id, count(DISTINCT page_id) FROM impressions GROUP BY 1"
            ).fetchall()
        )
    assert served == {"epsilon-greedy": 1, "greedy": 1, "uniform": 1, "thompson": 1, "linucb": 1}
    path = store_path.parent / "models" / "home-bandit.npz"

    def saved():
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["meta"]))["extra"]["learners"], set(data.files)

    learners, files = saved()
    assert set(learners) == {"thompson", "linucb"} and len(learners["thompson"]["members"]) == 8
    assert {"linucb.A_inv", "linucb.b"} <= files and any(f.startswith("thompson.7.") for f in files)
    # thompson learnt the three earlier pages in one catch-up batch, then its own page when
    # linucb served; linucb caught up on all four pages in one batch
    assert learners["thompson"]["n_updates"] == 2 and learners["linucb"]["n_updates"] == 1
    # the next visit learns the linucb page (and nothing twice) into every model, then serves
    later = (at + timedelta(hours=2)).isoformat()
    p = page(store_path, "--user", user, "--policy", "thompson", "--at", later)
    assert p["feedback"]["learned"] > 0 and p["feedback"]["batches"] == 1
    assert p["policy"]["version"] == "3"
    learners, _ = saved()
    assert learners["thompson"]["n_updates"] == 3 and learners["linucb"]["n_updates"] == 2
    _cli(store_path, "home", "--user", user, "--policy", "softmax", expect=2)


def test_unknown_listener_and_missing_model_are_clear_errors(store_path, tmp_path):
    result = _cli(store_path, "home", "--user", "nobody", expect=6)
    assert "no listener 'nobody'" in result.output
    _cli(store_path, "home", "--user", "x", "--at", "yesterday", expect=2)
    empty = tmp_path / "empty.duckdb"
    _cli(empty, "init")
    # an unknown listener is refused before anything else, even without a model
    assert "deepcuts users" in _cli(empty, "home", "--user", "u00001", expect=6).output
    with Store(empty) as s:
        s.conn.execute("INSERT INTO users (user_id) VALUES ('u00001')")
    result = _cli(empty, "home", "--user", "u00001", expect=4)
    assert "deepcuts train" in result.output
