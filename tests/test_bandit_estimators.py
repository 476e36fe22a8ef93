"""Off-policy estimators: closed-form values on hand-made logs, unbiasedness on simulated logs."""

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from deepcuts.bandit import (
    BanditInputError,
    DoublyRobust,
    EpsilonGreedy,
    InverseProbabilityWeighting,
    LoggedFeedback,
    PageLayout,
    SelfNormalizedInverseProbabilityWeighting,
    UniformRandom,
    from_impressions,
)
from tests.bandit_helpers import context, shelves

Z = NormalDist().inv_cdf(0.975)


def hand_log(pages=None):
    return LoggedFeedback(
        action=np.array(["a", "a", "b", "c"]),
        position=np.array([0, 1, 0, 0]),
        reward=np.array([1.0, 0.0, 1.0, 0.0]),
        propensity=np.array([0.5, 0.25, 0.5, 0.2]),
        page=pages,
    )


TARGET = np.array([1.0, 0.5, 0.0, 0.4])  # weights 2, 2, 0, 2
Q = np.array([0.6, 0.2, 0.5, 0.1])
QT = np.array([0.7, 0.3, 0.2, 0.4])


def test_ips_snips_dr_match_closed_form_values():
    log = hand_log()
    assert InverseProbabilityWeighting().estimate_policy_value(log, TARGET) == pytest.approx(0.5)
    assert SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
        log, TARGET
    ) == pytest.approx(2 / 6)
    dr = DoublyRobust().estimate_policy_value(
        log, TARGET, expected_reward=Q, expected_reward_target=QT
    )
    assert dr == pytest.approx((1.5 - 0.1 + 0.2 + 0.2) / 4)
    # clipping weights at 1.5
    assert InverseProbabilityWeighting(max_weight=1.5).estimate_policy_value(
        log, TARGET
    ) == pytest.approx(1.5 / 4)


def test_normal_intervals_match_closed_form_one_row_per_page():
    iv = InverseProbabilityWeighting().estimate_interval(hand_log(), TARGET)
    # terms 2, 0, 0, 0: sample variance 1, standard error 1/2
    assert iv.std_error == pytest.approx(0.5)
    assert (iv.low, iv.high) == pytest.approx((0.5 - Z * 0.5, 0.5 + Z * 0.5))
    assert (iv.n_rows, iv.n_pages, iv.method, iv.alpha) == (4, 4, "normal", 0.05)
    # SNIPS: linearised terms w (r - V) / mean(w) = (2 * 2/3, 2 * -1/3, 0, 2 * -1/3) / 1.5
    s = SelfNormalizedInverseProbabilityWeighting().estimate_interval(hand_log(), TARGET)
    psi = np.array([4 / 3, -2 / 3, 0, -2 / 3]) / 1.5
    assert s.std_error == pytest.approx(np.sqrt(4 / 3 * np.sum(psi**2) / 16))
    d = DoublyRobust().estimate_interval(
        hand_log(), TARGET, expected_reward=Q, expected_reward_target=QT
    )
    assert d.std_error == pytest.approx(np.std([1.5, -0.1, 0.2, 0.2], ddof=1) / 2)


def test_rows_of_a_page_are_one_unit():
    iv = InverseProbabilityWeighting().estimate_interval(
        hand_log(np.array(["p1", "p1", "p2", "p3"])), TARGET, alpha=0.1
    )
    # page sums of centred terms: 1.5 - 0.5, -0.5, -0.5 -> variance 3/2 * 1.5 / 16
    se = np.sqrt(1.5 * 1.5 / 16)
    assert iv.std_error == pytest.approx(se)
    assert iv.high - iv.estimate == pytest.approx(NormalDist().inv_cdf(0.95) * se)
    assert iv.n_pages == 3


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    n = 400
    log = LoggedFeedback(
        np.arange(n).astype(str), np.zeros(n, int), rng.random(n) < 0.3, np.full(n, 0.5)
    )
    t = np.where(rng.random(n) < 0.5, 1.0, 0.0)
    normal = InverseProbabilityWeighting().estimate_interval(log, t)
    boot = InverseProbabilityWeighting().estimate_interval(
        log, t, method="bootstrap", n_bootstrap=300, random_state=0
    )
    assert boot.low < boot.estimate < boot.high
    assert boot.estimate == normal.estimate
    assert abs((boot.high - boot.low) - (normal.high - normal.low)) < 0.3 * (
        normal.high - normal.low
    )


def _toy_truth(cands):
    rng = np.random.default_rng(42)
    return [rng.uniform(0.05, 0.6, len(s.cards)) for s in cands]


def _exam(j, k):
    return 0.8**j * 0.7**k


def _exact_value(policy, ctx, cands, layout, truth):
    probs = policy.page_probabilities(ctx, cands, layout)
    total = 0.0
    for j in range(probs.shelves.shape[0]):
        for s, pc in enumerate(probs.cards):
            for k in range(pc.shape[0]):
                total += probs.shelves[j, s] * _exam(j, k) * float(pc[k] @ truth[s])
    return total / (layout.n_shelves * layout.n_cards)


@pytest.mark.parametrize("logging", ["uniform", "epsilon-greedy"])
def test_ips_is_unbiased_on_simulated_logs(logging):
    """Mean of IPS over many independent logs equals the target's exact value."""
    ctx, cands, layout = context(), shelves(3, 4), PageLayout(2, 2)
    truth = _toy_truth(cands)
    target = EpsilonGreedy(epsilon=0.2, random_state=7)
    value = _exact_value(target, ctx, cands, layout, truth)
    probs = target.page_probabilities(ctx, cands, layout)
    index = {s.shelf_id: k for k, s in enumerate(cands)}
    logger = (
        UniformRandom(random_state=1)
        if logging == "uniform"
        else EpsilonGreedy(epsilon=0.5, random_state=3)
    )
    rng = np.random.default_rng(0)
    estimates, covered = [], 0
    for _ in range(150):
        ims = []
        for _ in range(20):
            page = logger.select_page(ctx, cands, layout)
            for im in page.impressions:
                s = index[im.shelf.shelf_id]
                c = next(k for k, x in enumerate(cands[s].cards) if x is im.card)
                p = _exam(im.shelf_position, im.card_position) * truth[s][c]
                ims.append(
                    (
                        im.with_reward(float(rng.random() < p)),
                        probs.slot(s, c, im.shelf_position, im.card_position),
                    )
                )
        log = from_impressions(im for im, _ in ims)
        iv = InverseProbabilityWeighting().estimate_interval(log, np.array([t for _, t in ims]))
        estimates.append(iv.estimate)
        covered += iv.low <= value <= iv.high
    estimates = np.array(estimates)
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - value) <= 3.5 * se, (estimates.mean(), value, se)
    if logging == "uniform":  # weights bounded by 1 / (1/3 * 1/4): intervals nearly nominal
        assert covered / len(estimates) >= 0.85, covered


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda e: e.estimate_policy_value(hand_log(), TARGET[:3]), "target_propensity"),
        (lambda e: e.estimate_policy_value(hand_log(), TARGET * 2), "target_propensity"),
        (
            lambda e: e.estimate_policy_value(hand_log(), np.array([1, np.nan, 0, 0])),
            "target_propensity",
        ),
        (lambda e: e.estimate_policy_value("log", TARGET), "feedback"),
        (lambda e: e.estimate_interval(hand_log(), TARGET, alpha=1.5), "alpha"),
        (lambda e: e.estimate_interval(hand_log(), TARGET, method="jackknife"), "method"),
        (
            lambda e: e.estimate_interval(hand_log(), TARGET, method="bootstrap", n_bootstrap=2),
            "n_bootstrap",
        ),
        (
            lambda e: e.estimate_policy_value(hand_log(), TARGET, expected_reward=Q),
            "expected_reward",
        ),
    ],
)
@pytest.mark.parametrize(
    "estimator", [InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting()]
)
def test_invalid_estimator_inputs_name_the_argument(estimator, call, name):
    with pytest.raises(BanditInputError, match=name):
        call(estimator)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"expected_reward": Q}, "expected_reward_target"),
        ({"expected_reward_target": QT}, "expected_reward"),
        ({"expected_reward": Q[:2], "expected_reward_target": QT}, "expected_reward"),
        ({"expected_reward": Q, "expected_reward_target": QT, "baseline": Q}, "baseline"),
    ],
)
def test_doubly_robust_needs_its_reward_model(kwargs, name):
    with pytest.raises(BanditInputError, match=name):
        DoublyRobust().estimate_policy_value(hand_log(), TARGET, **kwargs)


def test_snips_needs_some_weight_and_clipping_must_be_positive():
    with pytest.raises(BanditInputError, match="target_propensity"):
        SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(hand_log(), np.zeros(4))
    with pytest.raises(BanditInputError, match="max_weight"):
        InverseProbabilityWeighting(max_weight=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"action": np.array([])}, "action"),
        ({"reward": np.array([1.0, 0.0])}, "reward"),
        ({"reward": np.array([1.0, np.nan, 0, 0])}, "reward"),
        ({"propensity": np.array([0.5, 0.0, 0.5, 0.5])}, "propensity"),
        ({"propensity": np.array([0.5, 1.5, 0.5, 0.5])}, "propensity"),
        ({"position": np.array([0, -1, 0, 0])}, "position"),
        ({"position": np.array([0, 0.5, 0, 0])}, "position"),
        ({"position": np.array([0, 0, 0, 0]), "page": np.array(["p", "p", "q", "r"])}, "position"),
        ({"shelf_position": np.array([0, 0, -1, 0])}, "shelf_position"),
        ({"item_kind": np.array(["track", "video", "track", "track"])}, "item_kind"),
        ({"context": pd.DataFrame({"hour": [1, 2]})}, "context"),
        ({"page": np.array(["p"])}, "page"),
    ],
)
def test_invalid_logs_name_the_field(kwargs, name):
    base = dict(
        action=np.array(["a", "b", "c", "d"]),
        position=np.array([0, 1, 0, 0]),
        reward=np.array([1.0, 0.0, 1.0, 0.0]),
        propensity=np.array([0.5, 0.25, 0.5, 0.2]),
    )
    with pytest.raises(BanditInputError, match=name):
        LoggedFeedback(**{**base, **kwargs})
