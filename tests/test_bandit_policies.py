"""Policies: logged propensities are the frequencies of the choices, feedback changes pages."""

import numpy as np
import pytest

from deepcuts.bandit import (
    BanditInputError,
    Card,
    Context,
    EpsilonGreedy,
    Greedy,
    LinUCB,
    PageLayout,
    Policy,
    Shelf,
    ThompsonSampling,
    UniformRandom,
    make_policy,
)
from tests.bandit_helpers import choice_frequencies, context, shelves

LAYOUT = PageLayout(n_shelves=2, n_cards=2)
N = 3000


def _trained(policy):
    """A few rewarded pages so that learned policies have distinct scores."""
    rng = np.random.default_rng(5)
    cands = shelves()
    for _ in range(5):
        page = policy.select_page(context(), cands, LAYOUT)
        policy.update_params([im.with_reward(float(rng.random() < 0.5)) for im in page.impressions])
    return policy


@pytest.mark.parametrize(
    "policy",
    [
        EpsilonGreedy(epsilon=0.3, random_state=0),
        UniformRandom(random_state=1),
        ThompsonSampling(n_members=4, random_state=2),
        Greedy(random_state=3),
        LinUCB(random_state=4),
    ],
    ids=lambda p: p.policy_id,
)
def test_each_logged_propensity_is_the_frequency_of_that_choice(policy):
    policy = _trained(policy)
    ctx, cands = context(), shelves()
    counts, logged = choice_frequencies(policy, ctx, cands, LAYOUT, N)
    # every possible choice with positive probability, from the exact page probabilities
    probs = policy.page_probabilities(ctx, cands, LAYOUT)
    expected = {
        (s.shelf_id, c.item_id, j, k): probs.slot(si, ci, j, k)
        for si, s in enumerate(cands)
        for ci, c in enumerate(s.cards)
        for j in range(2)
        for k in range(2)
    }
    assert abs(sum(expected.values()) - 4) < 1e-9  # four slots, each filled once
    for key, p in expected.items():
        freq = counts.get(key, 0) / N
        assert abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / N) + 1e-3, (key, freq, p)
        if key in logged:
            assert logged[key] == pytest.approx(p)


def test_first_slot_propensity_given_earlier_is_its_propensity():
    policy = _trained(EpsilonGreedy(epsilon=0.2, random_state=0))
    page = policy.select_page(context(), shelves(), LAYOUT)
    first = page.impressions[0]
    assert (first.shelf_position, first.card_position) == (0, 0)
    assert first.propensity_given_earlier == pytest.approx(first.propensity)
    assert all(0 < im.propensity <= 1 for im in page.impressions)
    assert {im.policy_id for im in page.impressions} == {"epsilon-greedy"}
    assert all(im.n_shelf_candidates == 3 and im.n_card_candidates == 4 for im in page.impressions)


def test_greedy_and_linucb_log_propensity_one():
    for policy in (_trained(Greedy(random_state=0)), _trained(LinUCB(random_state=0))):
        page = policy.select_page(context(), shelves(), LAYOUT)
        assert all(im.propensity == 1.0 for im in page.impressions)


def test_page_shape_follows_the_layout_and_the_candidates():
    policy = EpsilonGreedy(random_state=0)
    page = policy.select_page(context(), shelves(3, 4), PageLayout(n_shelves=5, n_cards=3))
    assert len(page.shelves) == 3 and all(len(c) == 3 for c in page.cards)
    assert len({s.shelf_id for s in page.shelves}) == 3
    rows = page.rows()
    assert len(rows) == 3 and all(len(items) == 3 for _, _, items in rows)


def test_a_page_served_after_feedback_reflects_it():
    from deepcuts.bandit import Impression

    policy = Greedy(random_state=0)
    ctx, cands = context(), shelves()
    before = policy.select_page(ctx, cands, LAYOUT)
    first = before.impressions[0]
    shelf = next(s for s in cands if s is not first.shelf)
    loved = shelf.cards[-1]  # a card on another shelf, shown nowhere first
    for _ in range(30):  # the listener streams only this card, shown now and then by someone else
        page = policy.select_page(ctx, cands, LAYOUT)
        rewards = [im.with_reward(1.0 if im.card is loved else 0.0) for im in page.impressions]
        shown = Impression(
            page.page_id,
            ctx,
            shelf,
            loved,
            1,
            1,
            0.1,
            0.1,
            0.01,
            "x",
            "0",
            first.served_at,
            reward=1.0,
        )
        policy.update_params([*rewards, shown])
    after = policy.select_page(ctx, cands, LAYOUT)
    assert (after.impressions[0].shelf.shelf_id, after.impressions[0].card.item_id) == (
        shelf.shelf_id,
        loved.item_id,
    )
    assert policy.version == "30"


def test_select_action_chooses_one_pair_with_its_propensity():
    cands = shelves()
    actions = [(s, c) for s in cands for c in s.cards]
    policy = EpsilonGreedy(epsilon=0.5, random_state=0)
    probs = policy.action_probabilities(context(), actions)
    assert probs.shape == (12,) and probs.sum() == pytest.approx(1.0)
    rng_counts = np.zeros(12)
    for _ in range(2000):
        i, p = policy.select_action(context(), actions)
        assert p == pytest.approx(probs[i])
        rng_counts[i] += 1
    assert np.abs(rng_counts / 2000 - probs).max() < 0.05
    assert UniformRandom(random_state=0).action_probabilities(context(), actions) == pytest.approx(
        np.full(12, 1 / 12)
    )


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: EpsilonGreedy(epsilon=1.5), "epsilon"),
        (lambda: EpsilonGreedy(epsilon=-0.1), "epsilon"),
        (lambda: EpsilonGreedy(reward_model="fm"), "reward_model"),
        (lambda: Greedy(epsilon=0.1), "epsilon"),
        (lambda: ThompsonSampling(n_members=0), "n_members"),
        (lambda: LinUCB(alpha=-1), "alpha"),
        (lambda: LinUCB(ridge=0), "ridge"),
        (lambda: LinUCB(n_buckets=0), "n_buckets"),
        (lambda: UniformRandom(random_state="x"), "random_state"),
        (lambda: make_policy("softmax"), "policy"),
        (lambda: make_policy("uniform", epsilon=0.1), "policy"),
        (lambda: EpsilonGreedy(random_state=0).select_page(context(), []), "shelves"),
        (
            lambda: EpsilonGreedy(random_state=0).select_page(context(), shelves() + shelves()[:1]),
            "shelves",
        ),
        (lambda: EpsilonGreedy(random_state=0).select_page("u1", shelves()), "context"),
        (lambda: EpsilonGreedy(random_state=0).select_action(context(), []), "actions"),
        (lambda: EpsilonGreedy(random_state=0).select_action(context(), [("a", "b")]), "actions"),
        (lambda: PageLayout(n_shelves=0), "n_shelves"),
        (lambda: PageLayout(n_cards=1.5), "n_cards"),
    ],
)
def test_invalid_policy_arguments_name_the_argument(make, name):
    with pytest.raises(BanditInputError, match=name):
        make()


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: Context(""), "user_id"),
        (lambda: Context("u", hour=24), "hour"),
        (lambda: Context("u", weekday=7), "weekday"),
        (lambda: Context("u", device=""), "device"),
        (lambda: Context("u", country=""), "country"),
        (lambda: Context("u", user_vector=[np.nan]), "user_vector"),
        (lambda: Context("u", features={"x": [1]}), "features"),
        (lambda: Context("u", features={"x": float("inf")}), "features"),
        (lambda: Card(""), "item_id"),
        (lambda: Card("a", kind="video"), "kind"),
        (lambda: Card("a", vector=np.zeros((2, 2))), "vector"),
        (lambda: Shelf("", "t", "T", (Card("a"),)), "shelf_id"),
        (lambda: Shelf("s", "", "T", (Card("a"),)), "shelf_type"),
        (lambda: Shelf("s", "t", "", (Card("a"),)), "title"),
        (lambda: Shelf("s", "t", "T", ()), "cards"),
        (lambda: Shelf("s", "t", "T", (Card("a"), Card("a"))), "cards: shelf 's' has a card twice"),
        (lambda: Shelf("s", "t", "T", (Card("a"), "b")), "cards: must all be Card objects"),
    ],
)
def test_invalid_records_name_the_field(make, name):
    with pytest.raises(BanditInputError, match=name):
        make()


def test_impression_fields_are_checked():
    from datetime import UTC, datetime

    from deepcuts.bandit import Impression

    s = shelves()[0]
    ok = dict(page_id="p", context=context(), shelf=s, card=s.cards[0], shelf_position=0, card_position=0,
              shelf_propensity=0.5, card_propensity=0.5, propensity_given_earlier=0.25, policy_id="x",
              policy_version="0", served_at=datetime.now(UTC))  # fmt: skip
    assert Impression(**ok).propensity == 0.25
    for field, bad in [("shelf_position", -1), ("card_position", 0.5), ("shelf_propensity", 0.0),
                       ("card_propensity", 1.5), ("propensity_given_earlier", -0.1), ("reward", float("nan"))]:  # fmt: skip
        with pytest.raises(BanditInputError, match=field):
            Impression(**{**ok, field: bad})


@pytest.mark.parametrize(
    "policy",
    [EpsilonGreedy(epsilon=0.3, random_state=0), ThompsonSampling(n_members=4, random_state=2),
     LinUCB(random_state=4)],
    ids=lambda p: p.policy_id,
)  # fmt: skip
def test_a_served_page_s_impressions_are_what_the_checked_constructor_makes(policy):
    """`select_page` sets its impressions' fields directly (`Impression.drawn`), skipping the
    dataclass's per-field checks: each must still hold every field, as the constructor does."""
    from dataclasses import fields

    from deepcuts.bandit import Impression

    page = _trained(policy).select_page(context(), shelves(), LAYOUT)
    for im in page.impressions:
        values = {f.name: getattr(im, f.name) for f in fields(Impression)}
        assert vars(im) == vars(Impression(**values))
    rewarded = page.impressions[0].with_reward(1.0)
    assert rewarded.reward == 1.0 and rewarded.card is page.impressions[0].card


def test_a_ranking_that_reports_an_impossible_propensity_is_refused():
    class Broken(EpsilonGreedy):
        def draw_page(self, card_scores, layout):
            drawn = super().draw_page(card_scores, layout)
            # says the shelves it chose could not be chosen
            return drawn._replace(shelf_propensity=[0.0] * len(drawn.shelves))

    with pytest.raises(BanditInputError, match="shelf_propensity: must be a probability"):
        Broken(random_state=0).select_page(context(), shelves(), LAYOUT)


@pytest.mark.parametrize(
    "policy, epsilon",
    [(EpsilonGreedy, 0.0), (EpsilonGreedy, 0.1), (EpsilonGreedy, 0.5), (EpsilonGreedy, 1.0),
     (Greedy, 0.0)],
)  # fmt: skip
def test_epsilon_greedy_draws_a_page_in_plain_python_as_the_numpy_path_does(policy, epsilon):
    """`EpsilonGreedy.draw_page` (plain Python, what a served page runs) makes the same draws
    from the same random state and reports the same propensities as `Policy.draw_page` (the
    NumPy rankings every policy has), on shelves of different sizes with tied scores."""
    rng = np.random.default_rng(11)
    fast, general = policy(epsilon=epsilon, random_state=3), policy(epsilon=epsilon, random_state=3)
    for _ in range(300):
        sizes = rng.integers(1, 9, size=rng.integers(1, 8))
        # scores of one decimal tie often: ties go to the lower index in both
        scores = [np.round(rng.normal(size=int(n)), 1) for n in sizes]
        layout = PageLayout(n_shelves=int(rng.integers(1, 6)), n_cards=int(rng.integers(1, 6)))
        assert fast.draw_page(scores, layout) == Policy.draw_page(general, scores, layout)
    assert fast._rng.random() == general._rng.random()  # and used as many draws


def test_a_page_s_plain_python_draw_refuses_non_finite_scores():
    scores = [np.array([0.5, 0.1]), np.array([0.2, np.nan, 0.3])]
    with pytest.raises(BanditInputError, match="scores: has non-finite values"):
        EpsilonGreedy(random_state=0).draw_page(scores, LAYOUT)


class _Source:
    def __init__(self, name, shelves_):
        self.name = name
        self._shelves = shelves_

    def shelves(self, context, limit):
        return self._shelves


def test_shelf_sources_plug_in_as_named_sources_of_titled_cards():
    from deepcuts.bandit import gather_shelves

    cards = tuple(Card(f"t{i}") for i in range(12))
    mix = _Source("genre_mix", [Shelf("genre_mix:jazz", "genre_mix", "Jazz mix", cards)])
    dw = _Source(
        "discover_weekly", [Shelf("dw", "discover_weekly", "Your Discover Weekly", cards[:3])]
    )
    empty = _Source("fresh_finds", [])
    again = _Source("genre_mix", [Shelf("genre_mix:jazz", "genre_mix", "Jazz mix", cards[:2])])
    got = gather_shelves([mix, dw, empty, again], context(), limit=10)
    assert [s.shelf_id for s in got] == ["genre_mix:jazz", "dw"]
    assert len(got[0].cards) == 10 and got[1].title == "Your Discover Weekly"
    page = EpsilonGreedy(random_state=0).select_page(context(), got, PageLayout(2, 3))
    assert {s.shelf_type for s in page.shelves} == {"genre_mix", "discover_weekly"}
    with pytest.raises(BanditInputError, match="sources"):
        gather_shelves([_Source("radio", [got[0]])], context())
    with pytest.raises(BanditInputError, match="sources"):
        gather_shelves([object()], context())
    with pytest.raises(BanditInputError, match="limit"):
        gather_shelves([mix], context(), limit=0)
