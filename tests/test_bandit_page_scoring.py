"""Scoring a whole page at once (`RewardModel.card_logits` over `PageBlocks`) gives the logits of
scoring each shelf's per-card rows (`Featurizer.rows` + `FactorizationMachine.decision_function`),
and grows the feature space and the model the same way."""

import numpy as np

from deepcuts.bandit import (
    Card,
    Context,
    EpsilonGreedy,
    PageLayout,
    RewardModel,
    Shelf,
    ThompsonSampling,
)
from tests.bandit_helpers import context, shelves


def mixed_page(seed: int = 1) -> list[Shelf]:
    """Shelves of different sizes and card widths: cards with and without vectors, extra
    features on some, and a shelf where no card has a vector (so it has no CF column)."""
    rng = np.random.default_rng(seed)
    out = shelves(3, 4, seed=seed)
    mixed = tuple(
        Card(
            f"m{c}",
            "track" if c % 3 else "artist",
            features={"genre": "jazz", "log_popularity": float(c) / 3}
            | ({"artist_id": f"a{c}"} if c % 2 else {}),
            vector=rng.normal(size=4) if c % 2 else None,
        )
        for c in range(7)
    )
    cold = tuple(Card(f"c{c}", "track", features={"genre": "rock"}) for c in range(3))
    return [
        *out,
        Shelf("mixed:0", "genre_mix", "Mixed", mixed),
        Shelf("cold:0", "fresh", "Cold", cold),
    ]


def per_card_logits(model: RewardModel, ctx, page: list[Shelf]) -> list[np.ndarray]:
    """The reference: one row per card (each shelf's `Featurizer.rows`, stacked), scored row
    by row."""
    rows, offsets = model.page_rows(ctx, page)
    z = model.fm.decision_function(rows, np.asarray(model.space.linear_only))
    return [z[offsets[i] : offsets[i + 1]] for i in range(len(page))]


def trained_model(seed: int = 0) -> RewardModel:
    """A small model that has learnt from a few served pages (non-trivial w and V)."""
    policy = EpsilonGreedy(epsilon=0.5, random_state=seed, reward_params={"n_factors": 4})
    rng = np.random.default_rng(seed)
    for u in range(6):
        page = policy.select_page(context(f"u{u}"), mixed_page(u), PageLayout(3, 3))
        rewarded = [im.with_reward(float(rng.random() < 0.4)) for im in page.impressions]
        policy.update_params(rewarded)
    return policy.reward_model  # type: ignore[return-value]


def test_page_logits_equal_the_per_card_logits_on_a_trained_model():
    model = trained_model()
    assert np.abs(model.fm.V_).sum() > 0 and np.abs(model.fm.w_).sum() > 0
    for u, seed in (("u0", 1), ("u3", 4), ("new-listener", 9)):
        ctx, page = context(u), mixed_page(seed)
        fast = model.card_logits(ctx, page)
        slow = per_card_logits(model, ctx, page)
        assert [len(z) for z in fast] == [len(s.cards) for s in page]
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        # the blocks, laid side by side, are the per-card rows (with one more padding column
        # on shelves without a CF column)
        blocks = model.page_blocks(ctx, page)
        np.testing.assert_allclose(
            model.logits_from_rows(blocks.rows()), np.concatenate(slow), rtol=1e-12, atol=1e-12
        )
        # a context without a user vector has no CF column anywhere
        bare = context(u)
        object.__setattr__(bare, "user_vector", None)
        for a, b in zip(
            model.card_logits(bare, page), per_card_logits(model, bare, page), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_kept_card_terms_are_dropped_when_the_model_learns():
    model = trained_model(1)
    ctx, page = context("u2"), mixed_page(2)
    before = np.concatenate(model.card_logits(ctx, page))  # keeps each card's terms
    np.testing.assert_allclose(
        before, np.concatenate(per_card_logits(model, ctx, page)), rtol=1e-12
    )
    policy = EpsilonGreedy(epsilon=1.0, reward_model=model, random_state=1)
    served = policy.select_page(ctx, page, PageLayout(5, 4))
    model.update([im.with_reward(1.0) for im in served.impressions])
    after = np.concatenate(model.card_logits(ctx, page))
    assert np.abs(after - before).max() > 1e-6  # it learnt, and the page sees it
    np.testing.assert_allclose(after, np.concatenate(per_card_logits(model, ctx, page)), rtol=1e-12)


def test_a_listeners_kept_terms_serve_every_visit_and_only_their_shelves():
    """A listener's visit-free terms are kept between pages: every later visit (another hour,
    a device never seen, another session) still scores as its per-card rows do, and other
    shelves or another taste vector for the same listener are scored afresh."""
    model = trained_model(2)
    page = mixed_page(3)
    visits = [
        context("u1"),
        context("u1", features={"session_genre": "rock", "session_plays": 3}),
        Context("u1", hour=3, weekday=6, device="a-device-never-seen", country="BR",
                user_vector=context("u1").user_vector),
        Context("u1", hour=3, weekday=6, user_vector=np.ones(4)),  # a new taste vector
    ]  # fmt: skip
    for ctx, shown in [(v, page) for v in visits] + [(visits[0], mixed_page(4))]:
        fast = model.card_logits(ctx, shown)
        for a, b in zip(fast, per_card_logits(model, ctx, shown), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert len(model._listeners) == 1  # one listener, kept once


def test_kept_listeners_make_way_beyond_the_budget():
    model = trained_model(3)
    model.MAX_KEPT_ROWS = 3 * sum(len(s.cards) for s in mixed_page(1))
    for u in range(10):
        ctx = context(f"v{u}")
        fast = model.card_logits(ctx, mixed_page(1))
        for a, b in zip(fast, per_card_logits(model, ctx, mixed_page(1)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert list(model._listeners) == ["v7", "v8", "v9"]  # the latest, within the budget
    assert model._kept_rows == model.MAX_KEPT_ROWS


def test_page_scoring_grows_the_feature_space_and_the_model_as_per_card_scoring_does():
    fast, slow = RewardModel(random_state=3), RewardModel(random_state=3)
    for u, seed in (("u1", 2), ("u2", 5)):
        ctx = context(u, features={"session_genre": "jazz"})
        a = fast.card_logits(ctx, mixed_page(seed))
        b = per_card_logits(slow, ctx, mixed_page(seed))
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    assert fast.space.names == slow.space.names
    assert fast.space.linear_only_mask().tolist() == slow.space.linear_only
    np.testing.assert_array_equal(fast.fm.V_, slow.fm.V_)  # same new rows, same random draws


def test_thompson_members_score_a_page_as_they_score_its_rows():
    policy = ThompsonSampling(n_members=3, random_state=0)
    ctx, page = context("u5"), mixed_page(3)
    got = policy.card_scores(ctx, page)
    for m, member in enumerate(policy.members):
        for s, shelf in enumerate(page):
            rows = member.featurizer.rows(ctx, shelf, shelf.cards)
            np.testing.assert_allclose(
                got[s][m], member.logits_from_rows(rows), rtol=1e-12, atol=1e-12
            )


def test_an_item_that_comes_back_with_another_vector_is_scored_with_the_card_on_the_page():
    """A card's features are its item id's first encoding (as `Featurizer.rows` keeps them),
    but its CF score is the vector of the card on the page: on a later page, and on the same
    page where one item shows on three shelves with three different vectors (or none)."""
    model = trained_model(4)
    rng = np.random.default_rng(7)
    ctx = context("u1")

    def twice(vector) -> Shelf:
        return Shelf(f"s{rng.integers(1e9)}", "genre_mix", "Twice",
                     (Card("m1", "track", vector=vector), Card("m2", "track", vector=rng.normal(size=4))))  # fmt: skip

    for page in ([twice(rng.normal(size=4))], [twice(rng.normal(size=4)), twice(None), twice(rng.normal(size=4))]):  # fmt: skip
        fast = model.card_logits(ctx, page)
        for a, b in zip(fast, per_card_logits(model, ctx, page), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert model.featurizer.cards.replaced >= 3
