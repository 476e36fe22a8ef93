"""Off-policy evaluation's guard and DR's reward models (issue 23).

- ``deepcuts ope`` refuses a target that puts probability on cards a deterministic logging
  policy could never have shown, with a message, not a number;
- DR's reward models are cross-fitted: a row's prediction never depends on its own reward;
- with a context that explains the reward, DR's error is below IPS's;
- the one-pass DR computation in `replay` equals the slot-by-slot one.
"""

import json

import numpy as np
import pandas as pd
import pytest

from deepcuts.bandit import BanditInputError
from deepcuts.bandit.feedback import LoggedFeedback, feedback_from_frame
from deepcuts.bandit.ope import (
    ReplayPage,
    context_reward,
    cross_fitted_reward_model,
    evaluate,
    impressions_of,
    replay,
    row_folds,
    support_violations,
)
from deepcuts.bandit.policies import EpsilonGreedy, Greedy
from deepcuts.bandit.types import PageLayout
from tests.bandit_helpers import context, shelves


def _greedy_log(n_pages: int = 40) -> pd.DataFrame:
    """A deterministic policy's log: every shown card had propensity 1."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(n_pages):
        for j in range(2):
            for pos in range(2):
                rows.append(
                    {
                        "page_id": f"p{p}", "shelf_id": f"s{j}", "shelf_position": j,
                        "shelf_type": "genre_mix", "action": f"c{j}{pos}", "position": pos,
                        "reward": int(rng.random() < 0.3), "propensity": 1.0,
                        "device": ["ios", "web"][p % 2], "n_shelf_candidates": 2,
                        "n_card_candidates": 2,
                    }
                )  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["greedy_again"] = 1.0
    frame["half_half"] = 0.5
    return frame


def test_support_violations_are_rows_with_propensity_one_and_a_target_below_one():
    p = np.array([1.0, 1.0, 0.5, 0.2])
    t = np.array([1.0, 0.4, 0.0, 1.0])
    assert support_violations(p, t).tolist() == [False, True, False, False]


def test_ope_refuses_a_target_outside_a_deterministic_logs_support(run_cli, tmp_path):
    _greedy_log().to_csv(tmp_path / "greedy.csv", index=False)
    for args in (("--target-column", "half_half"), ("--policy", "uniform")):
        result = run_cli("ope", "--log", tmp_path / "greedy.csv", *args, expect=3)
        assert "could never have shown" in result.output
        assert "propensity is 1" in result.output
        assert "ips" not in result.output.lower().split("ips, snips")[0]  # no estimate table
    # a target that agrees with the log everywhere is estimated (its value is the log's)
    out = run_cli(
        "ope", "--log", tmp_path / "greedy.csv", "--target-column", "greedy_again", "--json", "-"
    )
    report = json.loads(out.stdout)
    frame = _greedy_log()
    assert report["estimates"]["ips"]["estimate"] == pytest.approx(frame.reward.mean())


def test_feature_columns_must_be_context_columns(run_cli, tmp_path):
    _greedy_log().to_csv(tmp_path / "greedy.csv", index=False)
    result = run_cli(
        "ope", "--log", tmp_path / "greedy.csv", "--target-column", "greedy_again",
        "--feature-columns", "mood", expect=3,
    )  # fmt: skip
    assert "mood" in result.output and "context column" in result.output


def _context_log(seed: int, n: int = 2000) -> tuple[pd.DataFrame, float]:
    """One slot, two cards logged uniformly; the listener's mood explains most of the reward.
    The target shows card a with probability 0.9. Returns the log and the target's true value."""
    rng = np.random.default_rng(seed)
    happy = rng.random(n) < 0.5
    card_a = rng.random(n) < 0.5
    p = np.where(happy, 0.8, 0.1) + np.where(card_a, 0.05, 0.0)
    frame = pd.DataFrame(
        {
            "page_id": np.arange(n).astype(str), "action": np.where(card_a, "a", "b"),
            "position": 0, "reward": (rng.random(n) < p).astype(int), "propensity": 0.5,
            "mood": np.where(happy, "happy", "sad"), "target": np.where(card_a, 0.9, 0.1),
        }
    )  # fmt: skip
    truth = 0.5 * (0.8 + 0.1) + 0.9 * 0.05
    return frame, truth


def test_dr_with_a_context_model_beats_ips_when_the_context_explains_the_reward():
    err = {"ips": [], "dr": []}
    covered = 0
    for seed in range(12):
        frame, truth = _context_log(seed)
        log = feedback_from_frame(frame.drop(columns="target"))
        report = evaluate(log, target=frame["target"].to_numpy(), seed=seed)
        for k in err:
            err[k].append(abs(report.estimates[k].estimate - truth))
        covered += report.estimates["dr"].contains(truth)
        assert any("mood" in note for note in report.notes)
    assert np.mean(err["dr"]) < 0.8 * np.mean(err["ips"]), err  # 0.0096 against 0.0148
    assert covered >= 10


def test_the_context_model_is_cross_fitted():
    frame, _ = _context_log(0, 600)
    log = feedback_from_frame(frame.drop(columns="target"))
    folds = row_folds(log, 0)
    q = context_reward(log, folds, ["mood"])
    # change every reward of half 0: half 0's predictions, made by half 1's model, stay put
    flipped = frame.drop(columns="target").copy()
    flipped.loc[folds == 0, "reward"] = 1 - flipped.loc[folds == 0, "reward"]
    q2 = context_reward(feedback_from_frame(flipped), folds, ["mood"])
    assert np.allclose(q[folds == 0], q2[folds == 0])
    assert not np.allclose(q[folds == 1], q2[folds == 1])


def _replay_pages(n_pages: int = 12) -> tuple[LoggedFeedback, list[ReplayPage]]:
    rng = np.random.default_rng(5)
    pages, rows = [], []
    start = 0
    for p in range(n_pages):
        ctx = context(f"u{p % 3}")
        sh = shelves(3, 4, seed=p)
        si = np.array([0, 0, 1, 1])
        ci = np.array([0, 1, 0, 1])
        pages.append(
            ReplayPage(ctx, sh, np.arange(start, start + 4), si, ci, np.array([0, 0, 1, 1]),
                       np.array([0, 1, 0, 1]))
        )  # fmt: skip
        for k in range(4):
            rows.append(
                {"page_id": f"p{p}", "action": sh[si[k]].cards[ci[k]].item_id, "position": ci[k],
                 "shelf_position": si[k], "shelf_id": sh[si[k]].shelf_id,
                 "reward": int(rng.random() < 0.4), "propensity": 0.25}
            )  # fmt: skip
        start += 4
    return feedback_from_frame(pd.DataFrame(rows)), pages


def test_the_feature_model_is_cross_fitted():
    log, pages = _replay_pages()
    fold = np.arange(len(pages)) % 2
    models = cross_fitted_reward_model(log, pages, fold, seed=1)
    # model 0 scores half 0 and learnt only from half 1: changing half 0's rewards changes nothing
    flipped = LoggedFeedback(
        action=log.action, position=log.position,
        reward=np.where(np.repeat(fold, 4) == 0, 1 - log.reward, log.reward),
        propensity=log.propensity, page=log.page, shelf=log.shelf,
        shelf_position=log.shelf_position,
    )  # fmt: skip
    again = cross_fitted_reward_model(flipped, pages, fold, seed=1)
    p = pages[0]
    assert np.allclose(
        models[0].card_logits(p.context, p.shelves)[0],
        again[0].card_logits(p.context, p.shelves)[0],
    )
    assert not np.allclose(
        models[1].card_logits(p.context, p.shelves)[0],
        again[1].card_logits(p.context, p.shelves)[0],
    )


def test_one_pass_dr_terms_equal_the_slot_by_slot_ones():
    log, pages = _replay_pages()
    model = cross_fitted_reward_model(log, pages, np.arange(len(pages)) % 2, seed=2)[0]
    target = EpsilonGreedy(epsilon=0.3, reward_model=model, random_state=0)
    fast = replay(target, pages, len(log), model)
    q = np.full(len(log), np.nan)
    qt = np.full(len(log), np.nan)
    for page in pages:
        probs = target.page_probabilities(page.context, page.shelves, page.layout)
        z = model.card_logits(page.context, page.shelves)
        for r, s, c, j, l_pos in zip(page.rows, page.shelf_index, page.card_index,
                                     page.shelf_position, page.card_position, strict=True):  # fmt: skip
            at = [model.at_slot(x, int(j), int(l_pos)) for x in z]
            q[r] = at[s][c]
            qt[r] = sum(
                probs.shelves[j, k] * float(pc[l_pos] @ at[k]) for k, pc in enumerate(probs.cards)
            )
    assert np.allclose(fast["expected_reward"], q)
    assert np.allclose(fast["expected_reward_target"], qt)
    assert np.all((fast["target_propensity"] > 0) & (fast["target_propensity"] <= 1))


def test_a_decaying_epsilon_halves_after_the_given_batches_and_its_propensities_follow():
    log, pages = _replay_pages(4)
    policy = EpsilonGreedy(epsilon=0.2, epsilon_decay=2, random_state=0)
    assert policy.current_epsilon == 0.2
    for p in pages[:2]:
        policy.update_params(impressions_of(log, p))
    assert policy.current_epsilon == pytest.approx(0.1)
    probs = policy.page_probabilities(pages[0].context, pages[0].shelves, PageLayout(2, 2))
    worst = probs.shelves.min()  # a shelf's chance at a position is at least eps / n
    assert worst == pytest.approx(0.1 / 3, rel=0.05) or worst >= 0.1 / 3 * 0.99
    with pytest.raises(BanditInputError, match="epsilon_decay"):
        EpsilonGreedy(epsilon_decay=0)
    assert Greedy(random_state=0).current_epsilon == 0.0
