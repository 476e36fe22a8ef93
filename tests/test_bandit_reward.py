"""The factorization-machine reward model and the success rule."""

import numpy as np
import pytest

from deepcuts.bandit import (
    BanditInputError,
    EpsilonGreedy,
    FactorizationMachine,
    PageLayout,
    RewardModel,
    SuccessRule,
)
from deepcuts.bandit.features import FeatureRows, Featurizer
from tests.bandit_helpers import context, shelves


def interaction_data(n=6000, seed=0):
    """Users 1-10, items 11-30: P(y) depends only on a user x item interaction."""
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 11, n)
    items = rng.integers(11, 31, n)
    taste = rng.normal(size=11)
    kind = rng.normal(size=31)
    logit = 2.5 * taste[users] * kind[items]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    X = FeatureRows(np.stack([users, items], axis=1), np.ones((n, 2)))
    return X, y, logit


def test_factorization_machine_learns_a_pairwise_interaction():
    X, y, logit = interaction_data()
    fm = FactorizationMachine(n_factors=4, learning_rate=0.1, random_state=0).fit(
        X, y, n_epochs=8, batch_size=64
    )
    z = fm.decision_function(X)
    assert np.corrcoef(z, logit)[0, 1] > 0.9
    # a linear model cannot: the main effects carry nothing here
    assert fm.n_features_ >= 31 and fm.n_updates_ > 0


def test_online_updates_move_predictions_towards_the_rewards():
    fm = FactorizationMachine(random_state=0, prior_rate=0.2)
    X = FeatureRows(np.array([[1, 2]]), np.ones((1, 2)))
    before = fm.predict_proba(X)[0]
    assert before == pytest.approx(0.2, abs=0.01)
    seen = [before]
    for _ in range(50):
        fm.partial_fit(X, np.array([1.0]))
        seen.append(fm.predict_proba(X)[0])
    # one row's gradient is at most 1, so AdaGrad's sums starting at 1 halve the first steps:
    # 0.57 after 50 (0.94 when they started at 0)
    assert np.all(np.diff(seen) > 0) and seen[-1] > 0.5


def shared_vector_batch(seed: int, rows: int = 120, dim: int = 32, n_items: int = 40):
    """A listener's first pages: every row carries the listener's vector (the same ``dim``
    numeric features), the card's vector and the card's id; about 19% are streamed. Also rows
    for items the batch never shows."""
    rng = np.random.default_rng(seed)
    user, items = rng.normal(0, 0.3, dim), rng.normal(0, 0.3, (n_items, dim))

    def rows_for(item_ids: np.ndarray) -> FeatureRows:
        idx = np.zeros((len(item_ids), 2 * dim + 1), dtype=np.int64)
        val = np.ones(idx.shape)
        idx[:, :dim], val[:, :dim] = np.arange(1, dim + 1), user
        idx[:, dim:-1], val[:, dim:-1] = np.arange(dim + 1, 2 * dim + 1), items[item_ids]
        idx[:, -1] = 2 * dim + 1 + item_ids
        return FeatureRows(idx, val)

    y = (rng.random(rows) < 0.19).astype(float)
    return (
        rows_for(rng.integers(0, n_items // 2, rows)),
        y,
        rows_for(np.arange(n_items // 2, n_items)),
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_first_step_from_an_untrained_model_does_not_overshoot(seed):
    """AdaGrad's sums start at 1 (`initial_accumulator`). From 0, each feature's first step was
    a full learning rate in its gradient's sign, all 65 features of a row moved the same way,
    and a batch streamed at 0.21-0.24 sent the mean prediction to 0.37-0.48 (seeds 0, 1, 3
    and 4), unseen cards' with it; from 1 it lands within 0.08 of the batch's rate."""
    X, y, unseen = shared_vector_batch(seed)
    fm = FactorizationMachine(random_state=seed)
    fm.partial_fit(X, y)
    assert abs(fm.predict_proba(X).mean() - y.mean()) < 0.08
    assert abs(fm.predict_proba(unseen).mean() - y.mean()) < 0.08


def test_sample_weights_count_as_repeats():
    X = FeatureRows(np.array([[1], [1]]), np.ones((2, 1)))
    a = FactorizationMachine(random_state=0)
    b = FactorizationMachine(random_state=0)
    for _ in range(20):
        a.partial_fit(X, np.array([1.0, 0.0]), np.array([3.0, 1.0]))
        b.partial_fit(X, np.array([1.0, 0.0]), np.array([1.0, 1.0]))
    assert a.predict_proba(X)[0] > b.predict_proba(X)[0]
    # zero weight: no learning from that row
    c = FactorizationMachine(random_state=0)
    c.partial_fit(X.take(np.array([0])), np.array([1.0]), np.array([0.0]))
    assert c.predict_proba(X.take(np.array([0])))[0] == pytest.approx(0.2)


def test_slot_features_are_a_position_bias_only():
    model = RewardModel(random_state=0, position_model="logit")
    ctx, cands = context(), shelves()
    s = cands[0]
    rows = model.featurizer.rows(ctx, s, s.cards, [(0, 0)] * len(s.cards))
    model.fm.partial_fit(rows, np.ones(len(s.cards)), None, np.asarray(model.space.linear_only))
    lin = np.asarray(model.space.linear_only)
    slot_idx = [model.space.get("spos=0"), model.space.get("cpos=0")]
    assert all(lin[i] for i in slot_idx)
    assert np.all(model.fm.V_[slot_idx] == 0)
    # the slot-free ranking score does not change with the slot
    p00 = model.predict_proba(ctx, s, s.cards, [(0, 0)] * 4)
    p33 = model.predict_proba(ctx, s, s.cards, [(3, 3)] * 4)
    assert list(np.argsort(p00)) == list(np.argsort(p33))


SHELF_EXAM, CARD_EXAM = 0.5, 0.6  # P(looked at) = 0.5^j * 0.6^l in the test world below


def examination_world(n_pages, seed):
    """Uniformly ordered pages of 3 shelves x 4 cards (of 6) whose streams follow a
    position-based model: P(stream) = 0.5^j 0.6^l * sigmoid(appeal of the card)."""
    from deepcuts.bandit import UniformRandom

    rng = np.random.default_rng(seed)
    cands = shelves(4, 6, seed=1)
    appeal = {c.item_id: rng.normal(-0.3, 1.2) for s in cands for c in s.cards}
    policy = UniformRandom(random_state=seed)
    pages = []
    for i in range(n_pages):
        page = policy.select_page(context(f"u{i % 5}"), cands, PageLayout(3, 4))
        ims = []
        for im in page.impressions:
            e = SHELF_EXAM**im.shelf_position * CARD_EXAM**im.card_position
            p = e / (1 + np.exp(-appeal[im.card.item_id]))
            ims.append(im.with_reward(float(rng.random() < p)))
        pages.append(ims)
    return pages, appeal, cands


def error_against_truth(model, cands, appeal):
    """Mean |predicted - true P(stream)| over every card of ``cands`` at every slot of 3 x 4."""
    errors = []
    for s in cands:
        true_looked = np.array([1 / (1 + np.exp(-appeal[c.item_id])) for c in s.cards])
        for j in range(3):
            for l_ in range(4):
                pred = model.predict_proba(context("u0"), s, s.cards, [(j, l_)] * len(s.cards))
                errors.append(np.abs(pred - SHELF_EXAM**j * CARD_EXAM**l_ * true_looked))
    return float(np.concatenate(errors).mean())


def test_the_examination_model_learns_where_listeners_look_and_what_they_like():
    train, appeal, cands = examination_world(2500, seed=0)
    model = RewardModel(random_state=0)
    for ims in train:
        model.update(ims)
    e = model.examination
    np.testing.assert_allclose(np.exp(-e.shelf_[:3]), SHELF_EXAM ** np.arange(3), atol=0.05)
    np.testing.assert_allclose(np.exp(-e.card_[:4]), CARD_EXAM ** np.arange(4), atol=0.05)
    # the slot-free score is P(stream | looked at): it follows each card's appeal
    z = np.concatenate(model.card_logits(context("u0"), cands))
    truth = np.array([appeal[c.item_id] for s in cands for c in s.cards])
    assert np.corrcoef(z, truth)[0, 1] > 0.9
    # and its P(stream) at each slot is nearer the truth than an additive logit bias fitted to
    # the same log (which multiplies the odds, not the probability)
    logit = RewardModel(random_state=0, position_model="logit")
    for ims in train:
        logit.update(ims)
    assert error_against_truth(model, cands, appeal) < 0.8 * error_against_truth(
        logit, cands, appeal
    )


def test_the_examination_model_saves_and_loads(tmp_path):
    train, _, cands = examination_world(200, seed=0)
    for kind in ("examination", "logit"):
        model = RewardModel(random_state=0, position_model=kind)
        for ims in train:
            model.update(ims)
        model.save(tmp_path / f"{kind}.npz")
        loaded = RewardModel.load(tmp_path / f"{kind}.npz")
        assert loaded.position_model == kind
        slots = [(2, 3), (0, 1), (1, 0), (0, 0), (2, 2), (1, 1)]
        ctx = context("u1")
        np.testing.assert_allclose(
            loaded.predict_proba(ctx, cands[0], cands[0].cards, slots),
            model.predict_proba(ctx, cands[0], cands[0].cards, slots),
        )
        z = model.card_logits(ctx, cands)[1]
        np.testing.assert_allclose(loaded.at_slot(z, 2, 1), model.at_slot(z, 2, 1))


def test_inverse_propensity_weights_are_clipped_and_normalised():
    model = RewardModel(max_weight=10)
    w = model.weights(np.array([0.5, 0.01, 1.0]))
    raw = np.array([2.0, 10.0, 1.0])
    np.testing.assert_allclose(w, raw / raw.mean())
    assert RewardModel(propensity_weighting=False).weights(np.array([0.5, 0.01])) == pytest.approx(
        [1, 1]
    )


def test_default_clip_keeps_rare_exploration_from_dominating_a_batch():
    # An epsilon-greedy batch at epsilon 0.1: 90 exploited cards (propensity about 0.91) and
    # 10 explored ones (propensity 0.01). At a clip of 10 the explored tenth carried over half
    # the weight; the default clip keeps it near a sixth, and still weights it up.
    propensity = np.r_[np.full(90, 0.91), np.full(10, 0.01)]
    share = {
        clip: RewardModel(max_weight=clip).weights(propensity)[90:].sum() / 100
        for clip in (10, RewardModel().max_weight)
    }
    assert share[10] > 0.5
    assert 0.1 < share[RewardModel().max_weight] < 0.2


def test_reward_model_saves_and_loads_without_pickle(tmp_path):
    policy = EpsilonGreedy(random_state=0)
    ctx, cands = context(), shelves()
    page = policy.select_page(ctx, cands, PageLayout(2, 2))
    policy.update_params([im.with_reward(1.0) for im in page.impressions])
    model = policy.reward_model
    path = tmp_path / "reward.npz"
    model.save(path)
    loaded = RewardModel.load(path)
    for a, b in zip(model.card_logits(ctx, cands), loaded.card_logits(ctx, cands), strict=True):
        np.testing.assert_allclose(a, b)
    assert loaded.extra == {}
    model.save(path, extra={"version": 3, "note": "home"})  # replaces the file in one step
    assert RewardModel.load(path).extra == {"version": 3, "note": "home"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reward.npz"]  # no temporary left
    np.savez(tmp_path / "bad.npz", meta=np.array('{"format_version": 99}'))
    with pytest.raises(BanditInputError, match="path"):
        RewardModel.load(tmp_path / "bad.npz")


def test_success_rule_thresholds_per_content_type():
    rule = SuccessRule(by_content_type={"sleep": 120})
    assert rule.reward(30_000, "track") == 1.0
    assert rule.reward(29_999, "track") == 0.0
    assert rule.reward(60_000, "sleep") == 0.0
    assert rule.reward(120_000, "sleep") == 1.0
    assert rule.reward(None) == 0.0
    assert SuccessRule(seconds=10).threshold_ms("anything") == 10_000


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: SuccessRule(seconds=-1), "seconds"),
        (lambda: SuccessRule(by_content_type={"sleep": float("nan")}), "by_content_type"),
        (lambda: FactorizationMachine(n_factors=0)._init(), "n_factors"),
        (lambda: FactorizationMachine(learning_rate=0)._init(), "learning_rate"),
        (lambda: FactorizationMachine(reg_linear=-1)._init(), "reg_linear"),
        (lambda: FactorizationMachine(prior_rate=1.0)._init(), "prior_rate"),
        (
            lambda: FactorizationMachine().partial_fit(
                FeatureRows(np.ones((2, 1), int), np.ones((2, 1))), np.ones(3)
            ),
            "y",
        ),
        (
            lambda: FactorizationMachine().partial_fit(
                FeatureRows(np.ones((1, 1), int), np.ones((1, 1))), np.array([2.0])
            ),
            "y",
        ),
        (
            lambda: FactorizationMachine().partial_fit(
                FeatureRows(np.ones((1, 1), int), np.ones((1, 1))), np.ones(1), np.array([-1.0])
            ),
            "sample_weight",
        ),
        (
            lambda: FactorizationMachine().fit(
                FeatureRows(np.ones((1, 1), int), np.ones((1, 1))), np.ones(1), n_epochs=0
            ),
            "n_epochs",
        ),
        (lambda: FeatureRows(np.ones((2, 2), int), np.ones((2, 3))), "indices"),
        (lambda: RewardModel(max_weight=0.5), "max_weight"),
        (lambda: RewardModel(position_model="cascade"), "position_model"),
        (
            lambda: FactorizationMachine().step(
                FeatureRows(np.ones((2, 1), int), np.ones((2, 1))), np.ones(3)
            ),
            "grad",
        ),
        (lambda: Featurizer(hour_bucket=0), "hour_bucket"),
        (lambda: FactorizationMachine(initial_accumulator=-1)._init(), "initial_accumulator"),
    ],
)
def test_invalid_reward_model_arguments_name_the_argument(make, name):
    with pytest.raises(BanditInputError, match=name):
        make()


def test_cards_without_a_vector_say_so_beside_cards_with_one():
    """A cold card (no CF vector) on a shelf of cards with vectors: the others keep their CF
    score, the cold one gets a ``cf_missing`` indicator instead of losing it for the shelf."""
    from deepcuts.bandit import Card, Shelf

    f = Featurizer()
    ctx = context()
    warm = shelves(1, 3)[0]
    cold = Card("cold-1", "track", features={"genre": "jazz"})
    shelf = Shelf("mixed", warm.shelf_type, "Mixed", (*warm.cards, cold))
    rows = f.rows(ctx, shelf, shelf.cards)
    cf, missing = f.space.get("cf_score"), f.space.get("cf_missing")
    for r, card in enumerate(shelf.cards):
        names = set(rows.indices[r][rows.values[r] != 0].tolist())
        if card.vector is None:
            assert missing in names and cf not in names
        else:
            k = list(rows.indices[r]).index(cf)
            assert rows.values[r, k] == pytest.approx(float(card.vector @ ctx.user_vector))
