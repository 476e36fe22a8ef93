"""Off-policy evaluation of a named policy, or of a target column, on a logged table.

This is what ``deepcuts ope`` runs. Two ways to say what is evaluated:

- ``target_column``: a column holding the target policy's probability of each logged card at
  its logged slot (a policy from elsewhere). IPS and SNIPS use it directly; DR, which needs the
  target's whole distribution, uses a reward model that does not depend on the card (the mean
  reward at each slot, cross-fitted on the other half of the pages), so that its direct-method
  term is known whatever the target does.
- ``policy``: one of deepcuts' policies. Each page of the log is rebuilt (context, candidate
  shelves and cards; see `rebuild_pages`) and the policy's exact position probabilities are
  computed on it. Learned policies (epsilon-greedy, greedy, thompson, linucb) are trained on one
  half of the pages and evaluated on the other, then the other way round (cross-fitting), so no
  page is evaluated by a policy that learned from it. DR's reward model is the evaluated policy's
  own factorization machine (or a separately trained one for uniform and LinUCB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from deepcuts.bandit.estimators import (
    DoublyRobust,
    Interval,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)
from deepcuts.bandit.feedback import LoggedFeedback, rebuild_pages
from deepcuts.bandit.policies import POLICIES, EpsilonGreedy, Policy, ThompsonSampling, make_policy
from deepcuts.bandit.reward import RewardModel
from deepcuts.bandit.types import BanditInputError, Context, Impression, PageLayout, Shelf


@dataclass
class ReplayPage:
    """A logged page as a target policy sees it, with the log rows it holds.

    ``rows`` index the log; ``shelf_index`` and ``card_index`` place each row's card among the
    candidates; ``shelf_position`` and ``card_position`` are the logged slots.
    """

    context: Context
    shelves: list[Shelf]
    rows: np.ndarray
    shelf_index: np.ndarray
    card_index: np.ndarray
    shelf_position: np.ndarray
    card_position: np.ndarray

    @property
    def layout(self) -> PageLayout:
        return PageLayout(int(self.shelf_position.max()) + 1, int(self.card_position.max()) + 1)


def replay_pages(log: LoggedFeedback, candidates: str = "page") -> list[ReplayPage]:
    """The log's pages rebuilt for replay (see `rebuild_pages` for ``candidates``)."""
    return [
        ReplayPage(ctx, shelves, rows, si, ci, log.shelf_position[rows], log.position[rows])
        for ctx, shelves, rows, si, ci in rebuild_pages(log, candidates)
    ]


def replay(
    policy: Policy,
    pages: Sequence[ReplayPage],
    n_rows: int,
    reward_model: RewardModel | None = None,
) -> dict[str, np.ndarray]:
    """The target's probability of each logged card at its logged slot; with a reward model, also
    q(logged card) and the target's expected q at that slot (DR). Arrays of shape (n_rows,),
    NaN for rows not in ``pages``."""
    t = np.full(n_rows, np.nan)
    q = np.full(n_rows, np.nan)
    qt = np.full(n_rows, np.nan)
    for page in pages:
        probs = policy.page_probabilities(page.context, page.shelves, page.layout)
        if reward_model is not None:
            logits = reward_model.card_logits(page.context, page.shelves)
            at_slot: dict[tuple[int, int], list[np.ndarray]] = {}
        for r, s, c, j, l_pos in zip(
            page.rows,
            page.shelf_index,
            page.card_index,
            page.shelf_position,
            page.card_position,
            strict=True,
        ):
            t[r] = probs.slot(int(s), int(c), int(j), int(l_pos))
            if reward_model is None:
                continue
            slot = (int(j), int(l_pos))
            if slot not in at_slot:  # q of every candidate card at this slot
                at_slot[slot] = [reward_model.at_slot(z, *slot) for z in logits]
            q_slot = at_slot[slot]
            q[r] = float(q_slot[s][c])
            total = 0.0
            if j < probs.shelves.shape[0]:
                for k, pc in enumerate(probs.cards):
                    if probs.shelves[j, k] > 0 and l_pos < pc.shape[0]:
                        total += probs.shelves[j, k] * float(pc[l_pos] @ q_slot[k])
            qt[r] = total
    out = {"target_propensity": t}
    if reward_model is not None:
        out["expected_reward"] = q
        out["expected_reward_target"] = qt
    return out


def impressions_of(log: LoggedFeedback, page: ReplayPage) -> list[Impression]:
    """A logged page's rows as impressions a policy can learn from (the logged propensity is
    taken as the shelf part; the card part is then 1)."""
    out = []
    for r, s, c, j, l_pos in zip(
        page.rows,
        page.shelf_index,
        page.card_index,
        page.shelf_position,
        page.card_position,
        strict=True,
    ):
        shelf = page.shelves[int(s)]
        out.append(
            Impression(
                page_id=str(log.page[r]),
                context=page.context,
                shelf=shelf,
                card=shelf.cards[int(c)],
                shelf_position=int(j),
                card_position=int(l_pos),
                shelf_propensity=float(log.propensity[r]),
                card_propensity=1.0,
                propensity_given_earlier=float(log.propensity[r]),
                policy_id="logged",
                policy_version="",
                served_at=datetime(1970, 1, 1, tzinfo=UTC),
                reward=float(log.reward[r]),
            )
        )
    return out


def train(
    policy: Policy, log: LoggedFeedback, pages: Sequence[ReplayPage], n_epochs: int, seed: int
) -> Policy:
    """Let a policy learn from logged pages, page by page, ``n_epochs`` passes in random order."""
    rng = np.random.default_rng(seed)
    batches = [impressions_of(log, p) for p in pages]
    for _ in range(n_epochs):
        for i in rng.permutation(len(batches)):
            policy.update_params(batches[i])
    return policy


@dataclass
class OpeReport:
    """What ``deepcuts ope`` prints: the estimates and how they were made."""

    target: str
    estimates: dict[str, Interval]
    n_rows: int
    n_pages: int
    logged_value: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "n_rows": self.n_rows,
            "n_pages": self.n_pages,
            "logged_value": self.logged_value,
            "estimates": {k: v.to_dict() for k, v in self.estimates.items()},
            "notes": self.notes,
        }


def _truncated(log: LoggedFeedback, pages: Sequence[ReplayPage]) -> int:
    """How many pages have fewer rebuilt candidates than the logged candidate counts say."""
    if log.n_shelf_candidates is None or log.n_card_candidates is None:
        return 0
    bad = 0
    for p in pages:
        r = p.rows
        shelf_short = len(p.shelves) < log.n_shelf_candidates[r].max()
        card_short = any(
            len(p.shelves[s].cards) < n
            for s, n in zip(p.shelf_index, log.n_card_candidates[r], strict=True)
        )
        bad += bool(shelf_short or card_short)
    return bad


def _folds(log: LoggedFeedback, seed: int) -> np.ndarray:
    pages = pd.unique(log.page)  # in order of first appearance: the same log, the same folds
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(pages, rng.permutation(len(pages)) % 2, strict=True))
    return np.array([fold_of[p] for p in log.page])


def _estimates(
    log: LoggedFeedback, arrays: dict[str, np.ndarray], alpha: float, method: str, seed: int
) -> dict[str, Interval]:
    t = arrays["target_propensity"]
    kw = {"alpha": alpha, "method": method, "random_state": seed}
    out = {
        "ips": InverseProbabilityWeighting().estimate_interval(log, t, **kw),
        "snips": SelfNormalizedInverseProbabilityWeighting().estimate_interval(log, t, **kw),
    }
    if "expected_reward" in arrays:
        out["dr"] = DoublyRobust().estimate_interval(
            log,
            t,
            expected_reward=arrays["expected_reward"],
            expected_reward_target=arrays["expected_reward_target"],
            **kw,
        )
    return out


def evaluate(
    log: LoggedFeedback,
    *,
    policy: str | None = None,
    target: np.ndarray | pd.Series | None = None,
    target_name: str = "target",
    candidates: str | None = None,
    policy_params: dict[str, Any] | None = None,
    n_epochs: int = 2,
    alpha: float = 0.05,
    method: str = "normal",
    seed: int = 0,
) -> OpeReport:
    """Estimate a policy's value from a log with IPS, SNIPS and DR (see the module docstring).

    Parameters
    ----------
    log : the logged feedback.
    policy : a deepcuts policy id; or
    target : (n,) the target's probability of each logged card at its slot.
    candidates : how pages are rebuilt for a policy: ``"page"`` (cards logged on the page; the
        default when the log has a page column) or ``"all"`` (every card logged on that shelf).
    policy_params : constructor arguments of the policy (e.g. ``{"epsilon": 0.05}``).
    n_epochs : passes over the training half for learned policies.
    """
    if (policy is None) == (target is None):
        raise BanditInputError(
            "policy: give either a policy name or a target column, not both or neither"
        )
    notes: list[str] = []
    folds = _folds(log, seed)

    def by_column(t: np.ndarray, name: str) -> OpeReport:
        # DR's reward model: the mean reward of each slot, learnt on the other half of the pages
        q = np.empty(len(log))
        slots = pd.DataFrame({"j": log.shelf_position, "l": log.position, "r": log.reward})
        for f in (0, 1):
            train_rows, test_rows = folds != f, folds == f
            means = slots[train_rows].groupby(["j", "l"])["r"].mean()
            overall = (
                float(log.reward[train_rows].mean())
                if train_rows.any()
                else float(log.reward.mean())
            )
            keys = zip(log.shelf_position[test_rows], log.position[test_rows], strict=True)
            q[test_rows] = [float(means.get(k, overall)) for k in keys]
        arrays = {"target_propensity": t, "expected_reward": q, "expected_reward_target": q}
        notes.append(
            "DR's reward model is the cross-fitted mean reward of each slot (the target is known only at logged cards)"
        )
        return OpeReport(
            name,
            _estimates(log, arrays, alpha, method, seed),
            len(log),
            log.n_pages,
            float(log.reward.mean()),
            notes,
        )

    if target is not None:
        t = np.asarray(
            pd.to_numeric(pd.Series(np.asarray(target)), errors="coerce"), dtype=np.float64
        )
        if t.shape != (len(log),) or np.any(~np.isfinite(t)) or np.any((t < 0) | (t > 1)):
            raise BanditInputError(f"{target_name}: must hold a probability in [0, 1] on every row")
        return by_column(t, target_name)

    assert policy is not None
    if policy not in POLICIES:
        raise BanditInputError(f"policy: unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    has_pages = len(np.unique(log.page)) < len(log)
    candidates = candidates or ("page" if has_pages else "all")
    pages = replay_pages(log, candidates)
    truncated = _truncated(log, pages)
    if truncated and policy == "uniform":
        # uniform needs only the numbers of candidates, which the log has
        assert log.n_shelf_candidates is not None and log.n_card_candidates is not None
        notes.append(
            "pages showed fewer candidates than were chosen from: uniform probabilities from the logged candidate counts"
        )
        return by_column(1.0 / (log.n_shelf_candidates * log.n_card_candidates), policy)
    if truncated:
        raise BanditInputError(
            f"n_shelf_candidates: {truncated} pages showed fewer shelves or cards than the logging policy chose "
            f"from, so {policy} cannot be replayed on them; log pages that show every candidate, or give the "
            "target's probabilities as a column"
        )
    notes.append(
        f"pages rebuilt with candidates={candidates!r}: "
        + (
            "a shelf's candidates are the cards logged on it in that page"
            if candidates == "page"
            else "a shelf's candidates are every card logged on it"
        )
    )
    page_fold = np.array([folds[p.rows[0]] for p in pages])
    arrays: dict[str, np.ndarray] = {}
    for f in (0, 1):
        train_pages = [p for p, pf in zip(pages, page_fold, strict=True) if pf != f]
        test_pages = [p for p, pf in zip(pages, page_fold, strict=True) if pf == f]
        if not test_pages:
            continue
        target_policy = make_policy(policy, random_state=seed + f, **(policy_params or {}))
        if policy != "uniform":
            train(target_policy, log, train_pages, n_epochs, seed + f)
        if isinstance(target_policy, EpsilonGreedy):
            model = target_policy.reward_model
        elif isinstance(target_policy, ThompsonSampling):
            model = target_policy.members[0]
        else:
            model = RewardModel(random_state=seed + f)
            holder = make_policy("epsilon-greedy", random_state=seed + f, reward_model=model)
            train(holder, log, train_pages, n_epochs, seed + f)
        part = replay(target_policy, test_pages, len(log), model)
        for k, v in part.items():
            arrays.setdefault(k, np.full(len(log), np.nan))
            done = ~np.isnan(v)
            arrays[k][done] = v[done]
    if policy != "uniform":
        notes.append(
            f"{policy} trained on half of the pages, evaluated on the other half, and the other way round ({n_epochs} passes)"
        )
    return OpeReport(
        policy,
        _estimates(log, arrays, alpha, method, seed),
        len(log),
        log.n_pages,
        float(log.reward.mean()),
        notes,
    )
