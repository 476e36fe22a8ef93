"""The simulated home world's changes: a shelf kind that arrives, and tastes that drift.

Small worlds (120 listeners, 600 tracks): what is checked is the definition, not a policy.
"""

import numpy as np
import pytest

from deepcuts.bandit import BanditInputError, PageLayout
from deepcuts.simulate import load_truth, simulate_world
from deepcuts.simulate.home.world import SHELF_TYPES, HomeWorld, HomeWorldConfig


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    simulate_world(d, users=120, tracks=600, weeks=1, audio_share=0.0, seed=3)
    return load_truth(d)


def test_the_new_shelf_arrives_on_the_change_day_and_fans_like_it_best(truth):
    steady = HomeWorld(truth, HomeWorldConfig(seed=3))
    world = HomeWorld(truth, HomeWorldConfig(seed=3, change_day=2, new_shelf="new_releases"))
    rng = np.random.default_rng(0)
    for day in range(4):
        for _ in range(5):
            c = world.sample_context(rng, day)
            types = {s.shelf_type for s in world.candidate_shelves(c, rng, day)}
            assert ("new_releases" in types) == (day >= 2)
    fans = world.new_shelf_fans
    assert fans.sum() == round(0.3 * world.n_users)
    k = SHELF_TYPES.index("new_releases")
    others = np.delete(world.explanation, k, axis=1)
    assert np.allclose(world.explanation[fans, k], others[fans].max(axis=1) + 1.0)
    assert np.allclose(world.explanation[~fans, k], others[~fans].mean(axis=1))
    assert not world.daypart_effect[k].any() and not world.device_effect[k].any()
    # the other shelf types are the steady world's
    assert np.array_equal(others, np.delete(steady.explanation, k, axis=1))


def test_tastes_drift_halfway_to_another_listener_on_the_change_day(truth):
    world = HomeWorld(truth, HomeWorldConfig(seed=3, change_day=1, drift=True))
    partner = world.drift_partner
    assert not np.any(partner == np.arange(world.n_users))
    rng = np.random.default_rng(1)
    before, after = world.sample_context(rng, 0), world.sample_context(rng, 1)
    u = world.user_index[after.user_id]
    v = truth.user_vectors.astype(np.float64)
    assert np.allclose(world.true_user_vector(after), 0.5 * (v[u] + v[partner[u]]))
    u0 = world.user_index[before.user_id]
    assert np.allclose(world.true_user_vector(before), v[u0])
    assert np.allclose(
        world.taste(u, 1), 0.5 * (truth.user_taste[u] + truth.user_taste[partner[u]])
    )
    assert np.allclose(world.taste(u, 0), truth.user_taste[u])
    # what policies see does not move: the CF estimate was made before
    assert np.array_equal(after.user_vector, world.user_est[u])
    # the true stream probabilities follow the drifted taste
    shelves = world.candidate_shelves(after, rng, 1)
    steady = HomeWorld(truth, HomeWorldConfig(seed=3))
    steady.recent_releases(1)  # the same releases (drawn per seed and day) in the steady world
    drifted = world.stream_probabilities(after, shelves)
    steady_probs = steady.stream_probabilities(after, shelves)
    same = [np.allclose(a, b) for a, b in zip(drifted, steady_probs, strict=True)]
    assert not any(same)


def test_drift_needs_the_worlds_own_contexts(truth):
    world = HomeWorld(truth, HomeWorldConfig(seed=3, change_day=1, drift=True))
    rng = np.random.default_rng(2)
    c = HomeWorld(truth, HomeWorldConfig(seed=3)).sample_context(rng, 1)
    with pytest.raises(BanditInputError, match="sample_context"):
        world.stream_probabilities(c, [])


def test_the_best_page_is_the_shelves_of_highest_value(truth):
    world = HomeWorld(truth, HomeWorldConfig(seed=3))
    rng = np.random.default_rng(4)
    c = world.sample_context(rng, 0)
    probs = world.stream_probabilities(c, world.candidate_shelves(c, rng, 0))
    order, values = world.optimal_shelves(probs, PageLayout())
    assert len(order) == 4 and np.all(np.diff(values[order]) <= 0)
    assert values[order].min() >= np.delete(values, order).max()
    assert world.optimal_value(probs, PageLayout()) == pytest.approx(
        float(world.examination(np.arange(4), 0) @ values[order])
    )


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"new_shelf": "new_releases"}, "change_day"),
        ({"drift": True, "change_day": -1}, "change_day"),
        ({"new_shelf": "podcasts", "change_day": 1}, "new_shelf"),
        ({"new_shelf": "new_releases", "change_day": 1, "new_shelf_fans": 1.5}, "new_shelf_fans"),
    ],
)
def test_bad_change_settings_are_refused(kw, field):
    with pytest.raises(BanditInputError, match=field):
        HomeWorldConfig(**kw)
