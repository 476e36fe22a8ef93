"""The simulated home screen: epsilon-greedy against uniform and greedy, and the OPE check.

The full-size run (50,000 impressions per policy) is `deepcuts simulate-home`; these tests use
20,000, which is enough for the same conclusions on this seed.
"""

import json

import numpy as np
import pytest

from deepcuts.bandit import BanditInputError, PageLayout
from deepcuts.bandit.environment import HomeWorld, HomeWorldConfig
from deepcuts.bandit.simulation import (
    SimulationConfig,
    on_policy_value,
    simulate_home,
    write_outputs,
)

N = 20_000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return HomeWorld.simulate(tmp_path_factory.mktemp("world"), users=400, tracks=3000, seed=0)


@pytest.fixture(scope="module")
def result(world):
    config = SimulationConfig(
        n_impressions=N, policies=("epsilon-greedy", "uniform"), n_eval_pages=300, seed=0
    )
    return simulate_home(world, config)


def test_epsilon_greedy_streams_at_least_1_3_times_uniform(result):
    runs = result[0].runs
    assert runs["uniform"].n_impressions >= N - 100
    ratio = runs["epsilon-greedy"].stream_rate / runs["uniform"].stream_rate
    assert ratio >= 1.3, ratio
    # and the true expected rates agree with the realised ones
    for run in runs.values():
        assert abs(run.expected_rate - run.stream_rate) < 0.02
        assert run.expected_rate < run.optimal_rate
    assert runs["epsilon-greedy"].regret < runs["uniform"].regret


def test_ope_from_uniform_logs_covers_the_on_policy_value(result):
    ope = result[0].ope
    assert ope is not None and ope.logging == "uniform"
    for name in ("ips", "snips", "dr"):
        iv = ope.estimates[name]
        assert iv.low <= ope.on_policy_value <= iv.high, (name, iv, ope.on_policy_value)
        assert iv.low <= ope.logged_contexts_value <= iv.high, (name, iv, ope.logged_contexts_value)
    # the model-based estimators are tighter than plain IPS
    assert (
        ope.estimates["dr"].high - ope.estimates["dr"].low
        < ope.estimates["ips"].high - ope.estimates["ips"].low
    )


def test_outputs_are_written(result, tmp_path):
    paths = write_outputs(result[0], tmp_path)
    data = json.loads(paths["json"].read_text())
    assert set(data["runs"]) == {"epsilon-greedy", "uniform"}
    assert data["summary"]["ratio_to_uniform"]["epsilon-greedy"] >= 1.3
    curve = data["runs"]["uniform"]
    assert (
        len(curve["checkpoints"])
        == len(curve["cumulative_regret"])
        == len(curve["cumulative_stream_rate"])
    )
    assert np.all(np.diff(curve["cumulative_regret"]) >= -1e-9)
    assert paths["png"].stat().st_size > 10_000


@pytest.mark.xfail(
    reason="in the simulated world greedy's own data already covers the features that matter, so "
    "epsilon-greedy's exploration costs more than it teaches (see the bandit report)",
    strict=False,
)
def test_epsilon_greedy_beats_greedy_over_the_run(world, result):
    config = SimulationConfig(n_impressions=N, policies=("greedy",), n_eval_pages=0, seed=0)
    greedy = simulate_home(world, config)[0].runs["greedy"]
    assert result[0].runs["epsilon-greedy"].stream_rate > greedy.stream_rate


def test_best_page_value_is_an_upper_bound(world):
    rng = np.random.default_rng(3)
    from deepcuts.bandit import EpsilonGreedy, UniformRandom

    layout = PageLayout(3, 4)
    contexts = []
    for _ in range(20):
        c = world.sample_context(rng)
        contexts.append((c, world.candidate_shelves(c, rng)))
    for policy in (UniformRandom(random_state=0), EpsilonGreedy(random_state=0)):
        value, _ = on_policy_value(world, policy, layout, contexts)
        best = (
            np.mean(
                [world.optimal_value(world.stream_probabilities(c, s), layout) for c, s in contexts]
            )
            / 12
        )
        assert 0 < value <= best + 1e-9


def test_candidates_cover_every_shelf_type(world):
    rng = np.random.default_rng(0)
    c = world.sample_context(rng)
    shelves = world.candidate_shelves(c, rng)
    assert len({s.shelf_type for s in shelves}) == 10
    assert all(len(s.cards) >= 5 for s in shelves)
    again = world.candidate_shelves(c, rng)  # same listener and day: the batch shelves repeat
    same = {
        s.shelf_id: [x.item_id for x in s.cards]
        for s in shelves
        if s.shelf_type != "keep_the_vibe_going"
    }
    assert all(
        same[s.shelf_id] == [x.item_id for x in s.cards] for s in again if s.shelf_id in same
    )


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: SimulationConfig(n_impressions=0), "n_impressions"),
        (lambda: SimulationConfig(update_every=0), "update_every"),
        (lambda: SimulationConfig(policies=()), "policies"),
        (lambda: SimulationConfig(policies=("uniform", "uniform")), "policies"),
        (lambda: SimulationConfig(n_eval_pages=-1), "n_eval_pages"),
        (lambda: HomeWorldConfig(cards_per_shelf=0), "cards_per_shelf"),
        (lambda: HomeWorldConfig(shelf_decay=0), "shelf_decay"),
        (lambda: HomeWorldConfig(vector_noise=-1), "vector_noise"),
        (lambda: HomeWorldConfig(shelf_types=("radio",)), "shelf_types"),
    ],
)
def test_invalid_simulation_settings_name_the_setting(make, name):
    with pytest.raises(BanditInputError, match=name):
        make()


def test_a_folder_without_truth_is_refused(tmp_path):
    with pytest.raises(BanditInputError, match="world"):
        HomeWorld.from_world(tmp_path)
