"""`deepcuts home`: the home screen from the published snapshot, logged, and the learn job's
loop (plays joined to the logged cards, the models taught, the next page changed).

One small simulated world is built with the real pipeline (simulate, ingest, train, weekly,
publish) once per module; each test works on its own copy of the store, models and snapshot.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.store import Store
from deepcuts.store.live import IMPRESSIONS_KEPT_DAYS, LiveLog, live_log_path

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
    _cli(store, "publish")
    return root


@pytest.fixture
def store_path(built, tmp_path):
    """A private copy of the built store (and its models folder)."""
    shutil.copy(built / "store.duckdb", tmp_path / "store.duckdb")
    shutil.copytree(built / "models", tmp_path / "models")
    shutil.copytree(built / "store.snapshots", tmp_path / "store.snapshots")
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


def learn(store_path, at):
    return json.loads(_cli(store_path, "learn", "--at", at.isoformat(), "--json").stdout)


def logged_rows(store_path):
    return [row for _, row in LiveLog(live_log_path(store_path)).waiting_impressions()]


def test_home_shows_at_least_8_shelf_types_across_listeners(store_path):
    """20 listeners visit a quarter of an hour apart, default layout; the learn job then moves
    every logged card into the store and rewards the ones whose window has passed."""
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
    assert len(logged_rows(store_path)) == shown
    learnt = learn(store_path, AT + timedelta(hours=7))  # every page's window has passed
    assert learnt["impressions_absorbed"] == shown and learnt["learned"] == shown
    with Store(store_path, read_only=True) as s:
        assert s.conn.execute("SELECT count(*) FROM impressions").fetchall()[0][0] == shown
        assert (
            s.conn.execute("SELECT count(*) FROM impressions WHERE reward IS NOT NULL").fetchall()[
                0
            ][0]
            == shown
        )


def test_the_page_is_logged_with_its_propensities(store_path):
    user = users(store_path, 1)[0]
    p = page(store_path, "--user", user, "--hour", 7, "--weekday", 2, "--device", "ios", "--country", "se",
             "--shelves", 3, "--cards", 4, "--at", AT.isoformat())  # fmt: skip
    assert p["user_id"] == user and p["policy"]["policy_id"] == "epsilon-greedy"
    assert p["context"]["hour"] == 7 and p["context"]["weekday"] == 2
    assert p["context"]["device"] == "ios" and p["context"]["country"] == "SE"
    assert p["context"]["has_user_vector"] and p["context"]["session_genre"]
    # four cards a shelf, or as many as a shelf has (exploration may show a short one)
    shown = sum(len(s["cards"]) for s in p["shelves"])
    assert p["logged"] == shown and len(p["shelves"]) == 3
    assert [s["position"] for s in p["shelves"]] == [0, 1, 2]
    for s in p["shelves"]:
        assert s["title"] and 0 < s["shelf_propensity"] <= 1
        assert [c["position"] for c in s["cards"]] == list(range(len(s["cards"])))
        for c in s["cards"]:
            assert c["name"] and 0 < c["card_propensity"] <= 1
            assert c["propensity"] == pytest.approx(
                s["shelf_propensity"] * c["card_propensity"], rel=1e-4
            )
    rows = logged_rows(store_path)
    assert len(rows) == shown and {r["page_id"] for r in rows} == {p["page_id"]}
    logged = {r["impression_id"]: r for r in rows}
    for s in p["shelves"]:
        for c in s["cards"]:
            r = logged[c["impression_id"]]
            assert len(s["cards"]) == min(4, r["n_card_candidates"])
            assert (r["shelf_position"], r["card_position"], r["policy_id"], r["hour"], r["device"]) == (
                s["position"], c["position"], "epsilon-greedy", 7, "ios")  # fmt: skip
            assert r["propensity"] == pytest.approx(c["propensity"], rel=1e-4)
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
    """The feedback loop: streams of one shelf type's cards, joined by the learn job and learnt
    from, move that shelf type up the listener's ranking on the next published pages."""
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
    learnt = learn(store_path, at + timedelta(hours=2))
    assert learnt["streamed"] >= streamed >= 5 and learnt["published_version"]
    after, last = ranking(at + timedelta(hours=2))
    assert (
        last["policy"]["version"] == str(learnt["reward_version"]) and learnt["reward_version"] > 0
    )
    assert after.index(target) < before.index(target), (target, before, after)
    with Store(store_path, read_only=True) as s:
        rewards = s.conn.execute(
            "SELECT shelf_type, avg(reward), count(reward) FROM impressions GROUP BY shelf_type"
        ).fetchall()
    by_type = {t: (r, n) for t, r, n in rewards}
    assert by_type[target][0] * by_type[target][1] >= streamed
    assert by_type[target][0] > max(r for t, (r, _) in by_type.items() if t != target)


def test_the_reward_model_persists_without_pickle(store_path):
    user = users(store_path, 1)[0]
    shown = page(store_path, "--user", user, "--at", AT.isoformat())["logged"]
    assert (
        15 <= shown <= 20
    )  # (a shelf can hold fewer than 5 cards once no track is on two shelves)
    learnt = learn(store_path, AT + timedelta(hours=2))  # the first page's cards, unstreamed
    assert (learnt["streamed"], learnt["not_streamed"], learnt["learned"], learnt["batches"]) == (
        0,
        shown,
        shown,
        1,
    )
    for path in (store_path.parent / "models" / "home-bandit.npz",
                 store_path.parent / "store.snapshots" / f"v{learnt['published_version']:06d}" / "reward.npz"):  # fmt: skip
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
        assert meta["kind"] == "deepcuts.bandit.RewardModel" and meta["format_version"] == 1
        assert meta["extra"]["kind"] == "deepcuts.home" and meta["extra"]["version"] == 1
    assert (
        page(store_path, "--user", user, "--no-log", "--at", AT.isoformat())["policy"]["version"]
        == "1"
    )
    again = learn(store_path, AT + timedelta(hours=3))  # nothing is learnt twice
    assert (
        again["learned"] == 0
        and again["reward_version"] == 1
        and again["published_version"] is None
    )


def test_every_policy_serves_the_home_screen_and_keeps_what_it_learns(store_path):
    """Each policy `make_policy` makes serves through `deepcuts home --policy`; once Thompson
    sampling and LinUCB have served a page, the learn job makes their own models from every
    reward logged so far, keeps them in the one home model file, publishes them and goes on
    teaching them."""
    user = users(store_path, 1)[0]
    at = AT
    for name in ("epsilon-greedy", "greedy", "uniform", "thompson", "linucb"):
        at += timedelta(hours=2)
        p = page(store_path, "--user", user, "--policy", name, "--at", at.isoformat())
        assert p["policy"]["policy_id"] == name and p["logged"] > 0
        for s in p["shelves"]:
            assert 0 < s["shelf_propensity"] <= 1
            assert all(0 < c["propensity"] <= 1 for c in s["cards"])
    learnt = learn(store_path, at + timedelta(hours=2))
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
    # each caught up on the five pages in one batch (the join rewarded them before)
    assert learners["thompson"]["n_updates"] == 1 and learners["linucb"]["n_updates"] == 1
    assert learnt["learned"] > 0 and learnt["published_version"]
    # the published thompson model serves; the next pages teach every model
    p = page(
        store_path,
        "--user",
        user,
        "--policy",
        "thompson",
        "--at",
        (at + timedelta(hours=3)).isoformat(),
    )
    learn(store_path, at + timedelta(hours=5))
    learners, _ = saved()
    assert learners["thompson"]["n_updates"] == 2 and learners["linucb"]["n_updates"] == 2
    _cli(store_path, "home", "--user", user, "--policy", "softmax", expect=2)


def test_unknown_listener_and_missing_snapshot_are_clear_errors(store_path, tmp_path):
    result = _cli(store_path, "home", "--user", "nobody", expect=6)
    assert "no listener 'nobody'" in result.output
    _cli(store_path, "home", "--user", "x", "--at", "yesterday", expect=2)
    empty = tmp_path / "empty.duckdb"
    _cli(empty, "init")
    # an unknown listener is refused before anything else, even without a snapshot
    assert "deepcuts users" in _cli(empty, "home", "--user", "u00001", expect=6).output
    with Store(empty) as s:
        s.conn.execute("INSERT INTO users (user_id) VALUES ('u00001')")
    result = _cli(empty, "home", "--user", "u00001", expect=4)
    assert "deepcuts publish" in result.output


def test_learn_deletes_absorbed_impressions_from_the_live_log_once_they_are_old(store_path):
    """The live log keeps absorbed impressions for the operator page's longest window (90
    days), then the learn job deletes them; the store keeps every one."""
    user = users(store_path, 1)[0]
    first = page(store_path, "--user", user, "--at", AT.isoformat())["logged"]
    learn(store_path, AT + timedelta(hours=2))

    def in_live_log():
        with sqlite3.connect(live_log_path(store_path)) as conn:
            return conn.execute(
                "SELECT sum(impressions), sum(absorbed * impressions) FROM pages"
            ).fetchone()

    assert in_live_log() == (first, first)  # absorbed, and kept
    later = AT + timedelta(days=IMPRESSIONS_KEPT_DAYS + 2)
    second = page(store_path, "--user", user, "--at", later.isoformat())["logged"]
    learn(store_path, later - timedelta(days=2))  # the first page is 90 days old: kept
    assert in_live_log() == (first + second, first + second)
    learn(store_path, later + timedelta(hours=2))
    assert in_live_log() == (second, second)  # the first page is gone
    with Store(store_path, read_only=True) as s:
        assert s.conn.execute("SELECT count(*) FROM impressions").fetchall()[0][0] == first + second


def test_a_bandit_serves_with_one_policy_per_name_and_epsilon(tmp_path):
    """Serving reuses the policy that ranks by the shared model (making one seeds a generator
    from the OS), so its draws go on from page to page; a new epsilon or a replaced reward
    model gets a new one, and every policy reports the bandit's version."""
    from deepcuts.bandit.reward import RewardModel
    from deepcuts.surfaces.home import HomeBandit

    bandit = HomeBandit(RewardModel(random_state=0), tmp_path / "home.npz", version=3)
    first = bandit.policy("epsilon-greedy", 0.1)
    assert bandit.policy("epsilon-greedy", 0.1) is first and first.version == "3"
    draws = [first._rng.random() for _ in range(2)]
    assert bandit.policy("epsilon-greedy", 0.1)._rng.random() not in draws
    assert bandit.policy("epsilon-greedy", 0.2) is not first
    assert bandit.policy("greedy") is bandit.policy("greedy", 0.5)
    assert bandit.policy("uniform") is bandit.policy("uniform")
    bandit.version = 4
    assert bandit.policy("epsilon-greedy", 0.1) is first and first.version == "4"
    bandit.reward_model = RewardModel(random_state=1)
    again = bandit.policy("epsilon-greedy", 0.1)
    assert again is not first and again.reward_model is bandit.reward_model
