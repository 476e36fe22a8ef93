"""Impressions in the store: logging pages, joining plays back as rewards, exporting, reading."""

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from deepcuts.bandit import (
    BanditInputError,
    Card,
    EpsilonGreedy,
    PageLayout,
    Shelf,
    SuccessRule,
    UniformRandom,
)
from deepcuts.bandit.feedback import LogColumns, feedback_from_frame, read_logged_table, write_table
from deepcuts.bandit.impressions import (
    COLUMNS,
    export_impressions,
    impression_records,
    join_rewards,
    log_impressions,
    page_log_rows,
    pending_impressions,
    read_store,
    rewarded_impressions,
)
from deepcuts.bandit.ope import evaluate
from deepcuts.io.errors import FormatError
from deepcuts.store.live import page_impressions
from tests.bandit_helpers import context, shelves

T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def test_migration_creates_the_impressions_table(store):
    cols = [
        r[0]
        for r in store.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'impressions' ORDER BY ordinal_position"
        ).fetchall()
    ]
    assert cols == list(COLUMNS)
    assert store.stats()["impressions"] == 0


SMALL = PageLayout(2, 3)


def _serve(store, policy, n_pages=3, served_at=T0, user="u1", layout=SMALL):
    pages = []
    for i in range(n_pages):
        page = policy.select_page(
            context(user, features={"session_genre": "jazz"}),
            shelves(),
            layout,
            served_at=served_at + timedelta(minutes=i),
        )
        log_impressions(store, page.impressions)
        pages.append(page)
    return pages


def test_the_live_logs_pages_read_back_as_rows_of_the_impressions_table():
    """The live log keeps a row per page, joined from parts its cards share; each of its
    impressions must read back as a whole row of the ``impressions`` table, with that
    impression's own values, rewarded or not, on any page (and `impression_records` reads
    them back for the store)."""
    policy = EpsilonGreedy(epsilon=0.5, random_state=1)
    impressions = []
    for i, user in enumerate(["u1", "u2", 'ü3 "quoted"']):
        page = policy.select_page(
            context(user, features={"session_genre": "jazz", "session_plays": i}),
            shelves(), SMALL, served_at=T0 + timedelta(minutes=i),
        )  # fmt: skip
        impressions += page.impressions
    impressions[1] = impressions[1].with_reward(1.0, T0 + timedelta(hours=1))
    pages = page_log_rows(impressions)
    assert [(p[0], p[1], p[3]) for p in pages] == [
        (im.page_id, im.context.user_id, 6) for im in impressions[::6]
    ]
    rows = [row for *_, text in pages for row in page_impressions(json.loads(text))]
    assert len(rows) == 3 * 6 and impression_records(impressions) == rows
    for row, im in zip(rows, impressions, strict=True):
        served_at = im.served_at.replace(tzinfo=None).isoformat()
        assert sorted(row) == sorted(COLUMNS)
        assert row["impression_id"] == im.impression_id and row["page_id"] == im.page_id
        assert (row["user_id"], row["served_at"]) == (im.context.user_id, served_at)
        assert (row["hour"], row["weekday"], row["device"], row["country"]) == (
            im.context.hour, im.context.weekday, im.context.device, im.context.country
        )  # fmt: skip
        assert json.loads(row["context"]) == dict(im.context.features)
        assert (row["shelf_id"], row["shelf_type"], row["shelf_title"]) == (
            im.shelf.shelf_id, im.shelf.shelf_type, im.shelf.title
        )  # fmt: skip
        assert (row["item_id"], row["item_kind"], row["content_type"]) == (
            im.card.item_id, im.card.kind, im.card.content_type
        )  # fmt: skip
        assert json.loads(row["card_features"]) == dict(im.card.features)
        assert (row["shelf_position"], row["card_position"]) == (
            im.shelf_position, im.card_position
        )  # fmt: skip
        assert (row["n_shelf_candidates"], row["n_card_candidates"]) == (
            im.n_shelf_candidates, im.n_card_candidates
        )  # fmt: skip
        assert (row["policy_id"], row["policy_version"]) == (im.policy_id, im.policy_version)
        for name in (
            "propensity",
            "shelf_propensity",
            "card_propensity",
            "propensity_given_earlier",
        ):
            assert row[name] == float(getattr(im, name))
    assert rows[1]["reward"] == 1.0 and rows[0]["reward"] is None
    assert rows[1]["reward_at"] == (T0 + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert rows[0]["reward_at"] is None


def test_a_probability_s_remembered_text_is_its_repr():
    from deepcuts.bandit.impressions import _PROBABILITY_TEXT, probability_text

    rng = np.random.default_rng(0)
    values = [*rng.random(1000), *rng.random(10).astype(np.float32), 1.0, 1e-300, 0.1 + 0.2]
    for value in [*values, *values]:  # found, then remembered
        assert probability_text(value) == repr(float(value))
    for value in rng.random(70_000):  # Thompson sampling's many averages: the memo stays bounded
        probability_text(value)
    assert len(_PROBABILITY_TEXT) <= 1 << 16


def test_an_impression_that_does_not_share_its_pages_context_keeps_its_own():
    """A page's impressions share its context and policy (what `page_log_rows` writes once);
    one that does not (never so on a served page) must still read back with its own."""
    from dataclasses import replace

    page = EpsilonGreedy(epsilon=0.5, random_state=1).select_page(
        context("u1"), shelves(), SMALL, served_at=T0
    )
    odd = replace(page.impressions[2], context=replace(page.context, device="tv"), policy_version="7",
                  served_at=T0 + timedelta(seconds=1))  # fmt: skip
    impressions = [*page.impressions[:2], odd, *page.impressions[3:]]
    (logged,) = page_log_rows(impressions)
    rows = page_impressions(json.loads(logged[4]))
    assert [r["impression_id"] for r in rows] == [im.impression_id for im in impressions]
    assert (rows[2]["device"], rows[2]["policy_version"]) == ("tv", "7")
    assert rows[2]["served_at"] == (T0 + timedelta(seconds=1)).replace(tzinfo=None).isoformat()
    assert {(r["device"], r["policy_version"]) for i, r in enumerate(rows) if i != 2} == {
        (page.context.device, page.impressions[0].policy_version)
    }


@pytest.mark.parametrize(
    "policy", [EpsilonGreedy(epsilon=0.3, random_state=2), UniformRandom(random_state=2)]
)
def test_a_served_page_is_logged_as_its_impressions_would_be(policy):
    """The service logs a page as the policy served it (`served_page_row`), never making its
    impressions: the row must be `page_log_rows`' of the impressions `page()` makes, to the
    byte, and read back to the same rows (a card on two pages, a session feature, an emoji)."""
    from deepcuts.bandit import Context
    from deepcuts.bandit.impressions import served_page_row

    candidates = shelves(n_shelves=4, n_cards=5, seed=3)
    for i in range(20):
        ctx = Context(f"u{i}", hour=i % 24, weekday=i % 7, device="ios", country="SE",
                      features={"session_genre": "jazz \U0001f3b7", "session_plays": i})  # fmt: skip
        served = policy.serve_page(ctx, candidates, SMALL, served_at=T0 + timedelta(minutes=i))
        page = served.page()
        row = served_page_row(served)
        assert [row] == page_log_rows(page.impressions)
        assert [r["impression_id"] for r in page_impressions(json.loads(row[4]))] == [
            im.impression_id for im in page.impressions
        ]


def _listen(store, user, item, played_at, ms, context_id=None):
    store.conn.execute(
        "INSERT INTO listens (user_id, item_id, played_at, ms_played, context_id) VALUES (?, ?, ?, ?, ?)",
        [user, item, played_at.replace(tzinfo=None), ms, context_id],
    ).fetchall()


def test_served_pages_are_logged_with_their_propensities(store):
    pages = _serve(store, EpsilonGreedy(epsilon=0.2, random_state=0))
    rows = store.conn.execute(
        "SELECT page_id, user_id, shelf_position, card_position, propensity, shelf_propensity * card_propensity, "
        "policy_id, policy_version, reward, context, n_shelf_candidates FROM impressions ORDER BY served_at, shelf_position, card_position"
    ).fetchall()
    assert len(rows) == 3 * 6
    first = pages[0].impressions[0]
    assert rows[0][0] == first.page_id and rows[0][1] == "u1" and rows[0][2:4] == (0, 0)
    assert rows[0][4] == pytest.approx(first.propensity) == pytest.approx(rows[0][5])
    assert rows[0][6] == "epsilon-greedy" and rows[0][7] == "0" and rows[0][8] is None
    assert '"session_genre": "jazz"' in rows[0][9] and rows[0][10] == 3


def test_plays_are_joined_back_as_rewards(store):
    page = _serve(store, UniformRandom(random_state=0), n_pages=1)[0]
    streamed, short, playlist, sleepy = page.impressions[:4]
    _listen(store, "u1", streamed.card.item_id, T0 + timedelta(minutes=5), 200_000)
    _listen(store, "u1", short.card.item_id, T0 + timedelta(minutes=6), 12_000)  # a skip
    _listen(
        store,
        "u1",
        "some-track",
        T0 + timedelta(minutes=7),
        90_000,
        context_id=playlist.card.item_id,
    )
    _listen(
        store, "u1", sleepy.card.item_id, T0 - timedelta(minutes=1), 200_000
    )  # before it was shown
    _listen(
        store, "u2", page.impressions[4].card.item_id, T0 + timedelta(minutes=1), 200_000
    )  # someone else
    counts = join_rewards(store, window=timedelta(hours=1), now=T0 + timedelta(minutes=30))
    assert counts == {"streamed": 2, "not_streamed": 0}  # the window is still open for the rest
    counts = join_rewards(store, window=timedelta(hours=1), now=T0 + timedelta(hours=2))
    assert counts == {"streamed": 0, "not_streamed": 4}
    rewards = dict(store.conn.execute("SELECT impression_id, reward FROM impressions").fetchall())
    assert rewards[streamed.impression_id] == 1.0 and rewards[playlist.impression_id] == 1.0
    assert rewards[short.impression_id] == 0.0 and rewards[sleepy.impression_id] == 0.0
    when = store.conn.execute(
        "SELECT reward_at FROM impressions WHERE impression_id = ?", [streamed.impression_id]
    ).fetchall()[0][0]
    assert when == (T0 + timedelta(minutes=5)).replace(tzinfo=None)


def test_success_threshold_follows_the_content_type(store):
    sleep = Shelf(
        "sleep", "mood_mix", "Sleep", (Card("pl:sleep", "playlist", content_type="sleep"),)
    )
    page = UniformRandom(random_state=0).select_page(
        context(), [sleep], PageLayout(1, 1), served_at=T0
    )
    log_impressions(store, page.impressions)
    _listen(store, "u1", "t", T0 + timedelta(minutes=1), 60_000, context_id="pl:sleep")
    rule = SuccessRule(by_content_type={"sleep": 120})
    assert join_rewards(store, rule, now=T0 + timedelta(hours=2)) == {
        "streamed": 0,
        "not_streamed": 1,
    }
    with pytest.raises(BanditInputError, match="window"):
        join_rewards(store, window=timedelta(0))


def test_export_and_read_back_for_evaluation(store, tmp_path):
    _serve(store, UniformRandom(random_state=0), n_pages=40)
    store.conn.execute(
        "UPDATE impressions SET reward = CASE WHEN card_position = 0 THEN 1.0 ELSE 0.0 END"
    ).fetchall()
    log, frame = read_store(store)
    assert len(log) == 240 and log.n_pages == 40
    assert {"ctx.session_genre", "user_id", "hour", "card.genre"} <= set(frame.columns)
    assert log.context_of(0).features == {"session_genre": "jazz"}
    assert log.card_of(0).features["genre"] in ("jazz", "rock")
    for suffix in ("parquet", "csv"):
        path = tmp_path / f"log.{suffix}"
        assert export_impressions(store, path) == 240
        again, _ = read_logged_table(path)
        np.testing.assert_allclose(again.propensity, log.propensity)
        assert list(again.action) == list(log.action)
    # uniform logging evaluated as uniform: IPS is the logged mean exactly (all weights 1)
    report = evaluate(log, policy="uniform")
    assert report.estimates["ips"].estimate == pytest.approx(log.reward.mean())
    assert report.estimates["snips"].estimate == pytest.approx(log.reward.mean())
    # these pages show 2 of 3 shelves and 3 of 4 cards: a learned policy cannot be replayed
    with pytest.raises(BanditInputError, match="cannot be replayed"):
        evaluate(log, policy="epsilon-greedy")


def test_learned_policies_are_evaluated_on_pages_that_show_every_candidate(store):
    _serve(store, UniformRandom(random_state=0), n_pages=100, layout=PageLayout(3, 4))
    # the listener only ever streams the first card of a shelf, and only when it is shown first
    store.conn.execute(
        "UPDATE impressions SET reward = CASE WHEN item_id LIKE '%-0' AND card_position = 0 THEN 1.0 ELSE 0.0 END"
    ).fetchall()
    log, _ = read_store(store)
    assert log.reward.mean() == pytest.approx(
        1 / 16, abs=0.03
    )  # uniform: 3 of 12 slots, 1 in 4 times
    assert evaluate(log, policy="uniform").estimates["ips"].estimate == pytest.approx(
        log.reward.mean()
    )
    report = evaluate(log, policy="greedy", n_epochs=3)
    assert set(report.estimates) == {"ips", "snips", "dr"}
    # greedy learns to put that card first: 3 of 12 slots stream, a value of 1/4
    for iv in report.estimates.values():
        assert iv.low <= 0.25 <= iv.high and iv.estimate > 0.15, iv
    assert any("trained on half of the pages" in note for note in report.notes)


def test_empty_store_is_a_clear_error(store):
    with pytest.raises(BanditInputError, match="no impressions with rewards"):
        read_store(store)


def test_logged_tables_from_elsewhere(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "item": rng.choice(["a", "b", "c"], n),
            "slot": np.zeros(n, int),
            "click": (rng.random(n) < 0.3).astype(int),
            "p": np.full(n, 1 / 3),
            "device": rng.choice(["ios", "web"], n),
            "new_policy": np.full(n, 1 / 3),
        }
    )
    write_table(frame, tmp_path / "log.csv")
    cols = LogColumns(
        action="item", position="slot", reward="click", propensity="p", exclude=("new_policy",)
    )
    log, raw = read_logged_table(tmp_path / "log.csv", cols)
    assert list(log.context.columns) == ["device"]
    report = evaluate(log, target=raw["new_policy"].to_numpy(), target_name="new_policy")
    assert report.estimates["ips"].estimate == pytest.approx(frame.click.mean())
    # uniform over a fixed action set of 3 cards: also the logged mean
    assert evaluate(log, policy="uniform").estimates["ips"].estimate == pytest.approx(
        frame.click.mean()
    )
    with pytest.raises(FormatError, match="missing column"):
        read_logged_table(tmp_path / "log.csv")
    bad = frame.assign(p=frame.p.where(frame.index != 5, 0.0))
    write_table(bad, tmp_path / "bad.csv")
    with pytest.raises(FormatError, match="propensity"):
        read_logged_table(tmp_path / "bad.csv", cols)
    with pytest.raises(FormatError, match="no such file"):
        read_logged_table(tmp_path / "missing.parquet")
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(FormatError, match="unknown log format"):
        read_logged_table(tmp_path / "log.json")
    with pytest.raises(BanditInputError, match="new_policy"):
        evaluate(log, target=np.full(n, 2.0), target_name="new_policy")
    with pytest.raises(BanditInputError, match="policy"):
        evaluate(log, policy="uniform", target=np.ones(n))
    with pytest.raises(FormatError, match="context"):
        feedback_from_frame(
            frame,
            LogColumns(
                action="item", position="slot", reward="click", propensity="p", context=["weather"]
            ),
        )


def test_rewarded_impressions_come_back_for_learning(store):
    """The store keeps features, not vectors: impressions rebuilt for the reward model get
    their vectors back from the callables and score exactly as when they were served."""
    policy = EpsilonGreedy(random_state=0)
    page = _serve(store, policy, n_pages=1)[0]
    served = {im.impression_id: im for im in page.impressions}
    assert set(pending_impressions(store)) == set(served)
    first = page.impressions[0]
    _listen(store, "u1", first.card.item_id, T0 + timedelta(minutes=5), 200_000)
    join_rewards(store, window=timedelta(hours=1), now=T0 + timedelta(hours=2))
    assert pending_impressions(store) == []
    vectors = {c.item_id: c.vector for s in page.shelves for c in s.cards}
    back = rewarded_impressions(
        store,
        ids=list(served),
        user_vector=lambda u: page.context.user_vector,
        card_vector=vectors.get,
    )
    assert [im.impression_id for im in back] == [im.impression_id for im in page.impressions]
    rewards = {im.impression_id: im.reward for im in back}
    assert rewards[first.impression_id] == 1.0 and sum(rewards.values()) == 1.0
    for a, b in zip(back, page.impressions, strict=True):
        assert (a.shelf.shelf_id, a.card.item_id, a.shelf_position, a.card_position) == (
            b.shelf.shelf_id, b.card.item_id, b.shelf_position, b.card_position,
        )  # fmt: skip
        assert a.propensity == pytest.approx(b.propensity)
        assert a.context.features == b.context.features and a.context.device == b.context.device
    model = policy.reward_model
    rows_back = model.training_rows(back).rows
    rows_served = model.training_rows([im.with_reward(0.0) for im in page.impressions]).rows
    np.testing.assert_allclose(
        model.fm.decision_function(rows_back), model.fm.decision_function(rows_served)
    )
    # a watermark finds rewards it was not given the ids of; nothing later than the latest
    latest = max(im.reward_at for im in back)
    assert len(rewarded_impressions(store, rewarded_after=T0)) == len(back)
    assert rewarded_impressions(store, rewarded_after=latest) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("card_position", -1, "card_position: must be a non-negative integer"),
        ("shelf_position", 1.0, "shelf_position: must be a non-negative integer"),
        ("shelf_propensity", 0.0, "shelf_propensity: must be a probability in (0, 1]"),
        ("card_propensity", 1.5, "card_propensity: must be a probability in (0, 1]"),
        ("propensity_given_earlier", "0.5", "propensity_given_earlier: must be a probability"),
        ("card_propensity", float("nan"), "card_propensity: must be a probability in (0, 1]"),
        ("reward", float("inf"), "reward: must be a finite number or None"),
    ],
)
def test_an_impression_refuses_a_bad_slot_propensity_or_reward_naming_it(field, value, message):
    from dataclasses import replace

    (im, *_) = (
        EpsilonGreedy(epsilon=0.5, random_state=1)
        .select_page(context("u1"), shelves(), SMALL, served_at=T0)
        .impressions
    )
    assert replace(im, **{field: np.float64(0.5) if "propensity" in field else 1}).card is im.card
    with pytest.raises(BanditInputError, match=re.escape(message)):
        replace(im, **{field: value})
