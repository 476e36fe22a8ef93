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
  page is evaluated by a policy that learned from it. DR's reward model is a factorization
  machine on the logged context and card features, shelf type and slot, cross-fitted the same
  way (`cross_fitted_reward_model`), the same for every target.

With a target column, DR's reward model is a cross-fitted logistic regression on the log's context
columns and the slot (`context_reward`), or the slot's mean reward when the log has none.

Either way `evaluate` refuses (BanditInputError) a target that puts probability on cards the
logging policy could never have shown (`support_violations`): from a deterministic log
(propensity 1) only a target that agrees with it everywhere can be estimated.
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
from deepcuts.bandit.policies import POLICIES, Policy, make_policy
from deepcuts.bandit.reward import RewardModel, _sigmoid
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
            if reward_model.position_model == "examination":
                # q = examine(j, l) * P(stream | looked at): the slot only scales, so the target's
                # expected q at every slot comes from one pass over the shelves
                looked = [_sigmoid(z) for z in logits]
                ps = probs.shelves
                n_l = max(pc.shape[0] for pc in probs.cards)
                per_shelf = np.zeros((len(looked), n_l))
                for k, (pc, g) in enumerate(zip(probs.cards, looked, strict=True)):
                    per_shelf[k, : pc.shape[0]] = pc @ g
                mixed = ps @ per_shelf  # (shelf positions, card positions)
                e = np.exp(
                    reward_model.examination.log_probability(
                        page.shelf_position, page.card_position
                    )
                )
                for i, (r, s, c, j, l_pos) in enumerate(
                    zip(
                        page.rows,
                        page.shelf_index,
                        page.card_index,
                        page.shelf_position,
                        page.card_position,
                        strict=True,
                    )
                ):
                    t[r] = probs.slot(int(s), int(c), int(j), int(l_pos))
                    q[r] = e[i] * float(looked[s][c])
                    inside = j < ps.shape[0] and l_pos < n_l
                    qt[r] = e[i] * float(mixed[j, l_pos]) if inside else 0.0
                continue
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


def support_violations(propensity: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rows where the target puts probability on cards the logging policy could never have shown
    at that slot: the logging policy showed the logged card with probability 1 (it was
    deterministic there), and the target gives that card less than 1, so the rest of its
    probability is on cards with logging probability 0. No importance weight exists for them."""
    p = np.asarray(propensity, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    return (p >= 1.0 - 1e-9) & (t < 1.0 - 1e-9)


def check_support(log: LoggedFeedback, target: np.ndarray, name: str) -> None:
    """Refuse (BanditInputError) when the target leaves the logging policy's support."""
    bad = support_violations(log.propensity, target)
    if bad.any():
        mass = float((1.0 - target[bad]).sum())
        first = int(np.flatnonzero(bad)[0])
        raise BanditInputError(
            f"{name}: puts probability on cards the logging policy could never have shown: on "
            f"{int(bad.sum())} of {len(log)} rows (first: row {first}, page {log.page[first]}) the "
            f"logging propensity is 1 (a deterministic choice) but the target gives the logged "
            f"card less than 1 ({mass:.1f} rows' worth of probability elsewhere, where the logging "
            f"propensity is 0). IPS, SNIPS and DR cannot estimate this target from this log; log "
            f"with a policy that explores (e.g. epsilon-greedy) to evaluate other policies"
        )


def row_folds(log: LoggedFeedback, seed: int) -> np.ndarray:
    """Each row's half (0 or 1) for cross-fitting: whole pages, at random."""
    return _folds(log, seed)


def slot_mean_reward(log: LoggedFeedback, folds: np.ndarray) -> np.ndarray:
    """The mean reward of each row's slot, learnt on the other half of the pages."""
    q = np.empty(len(log))
    slots = pd.DataFrame({"j": log.shelf_position, "l": log.position, "r": log.reward})
    for f in (0, 1):
        train_rows, test_rows = folds != f, folds == f
        means = slots[train_rows].groupby(["j", "l"])["r"].mean()
        overall = (
            float(log.reward[train_rows].mean()) if train_rows.any() else float(log.reward.mean())
        )
        keys = zip(log.shelf_position[test_rows], log.position[test_rows], strict=True)
        q[test_rows] = [float(means.get(k, overall)) for k in keys]
    return q


def context_reward(
    log: LoggedFeedback, folds: np.ndarray, columns: Sequence[str], seed: int = 0
) -> np.ndarray:
    """P(reward | the row's context columns and slot), a logistic regression over one-hot
    categories and standardised numbers, cross-fitted: each half of the pages is scored by a
    model fitted on the other half only. It does not depend on the card, so a target's expected
    value of it at a slot is the same whatever the target shows there (what DR needs when only
    the target's probability of the logged card is known)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    frame = log.context[list(columns)].copy() if columns else pd.DataFrame(index=range(len(log)))
    frame = frame.reset_index(drop=True)
    frame["__slot"] = [
        f"{int(j)}/{int(k)}" for j, k in zip(log.shelf_position, log.position, strict=True)
    ]
    numeric = [
        c
        for c in frame.columns
        if c != "__slot"
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    categorical = [c for c in frame.columns if c not in numeric]
    q = np.empty(len(log))
    for f in (0, 1):
        train_rows, test_rows = folds != f, folds == f
        if not test_rows.any():
            continue
        y = log.reward[train_rows] > 0
        if y.all() or not y.any():  # one class in the training half: its rate is the model
            q[test_rows] = float(y.mean())
            continue
        enc = OneHotEncoder(handle_unknown="ignore")
        parts = [enc.fit_transform(frame.loc[train_rows, categorical].astype(str))]
        test_parts = [enc.transform(frame.loc[test_rows, categorical].astype(str))]
        if numeric:
            x = frame[numeric].to_numpy(dtype=np.float64)
            x = np.nan_to_num(x, nan=np.nanmean(x[train_rows], axis=0))
            mu, sd = x[train_rows].mean(axis=0), x[train_rows].std(axis=0) + 1e-9
            from scipy import sparse

            parts.append(sparse.csr_matrix((x[train_rows] - mu) / sd))
            test_parts.append(sparse.csr_matrix((x[test_rows] - mu) / sd))
            from scipy.sparse import hstack

            x_train, x_test = hstack(parts).tocsr(), hstack(test_parts).tocsr()
        else:
            x_train, x_test = parts[0], test_parts[0]
        model = LogisticRegression(C=1.0, max_iter=500, random_state=seed)
        model.fit(x_train, y)
        q[test_rows] = model.predict_proba(x_test)[:, 1]
    return q


def cross_fitted_reward_model(
    log: LoggedFeedback,
    pages: Sequence[ReplayPage],
    page_fold: np.ndarray,
    seed: int = 0,
    n_epochs: int = 2,
) -> list[RewardModel]:
    """DR's reward model on the logged context and card features (the factorization machine
    over context columns, card.* features, shelf type and slot): model f is trained only on the
    pages of the other half (``page_fold != f``) and is to score the pages of half f."""
    models = []
    for f in (0, 1):
        model = RewardModel(random_state=seed + f)
        holder = make_policy("epsilon-greedy", random_state=seed + f, reward_model=model)
        train(
            holder,
            log,
            [p for p, pf in zip(pages, page_fold, strict=True) if pf != f],
            n_epochs,
            seed + f,
        )
        models.append(model)
    return models


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
    feature_columns: Sequence[str] | None = None,
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
    feature_columns : context columns of DR's reward model when the target is a column (default:
        every context column of the log); see `context_reward`.

    Raises BanditInputError when the target puts probability on cards the logging policy could
    never have shown (`support_violations`): no estimate exists then.
    """
    if (policy is None) == (target is None):
        raise BanditInputError(
            "policy: give either a policy name or a target column, not both or neither"
        )
    notes: list[str] = []
    folds = _folds(log, seed)

    if feature_columns is not None:
        unknown = [c for c in feature_columns if c not in log.context.columns]
        if unknown:
            card = [c for c in unknown if c.startswith("card.")]
            raise BanditInputError(
                f"feature_columns: {', '.join(unknown)} not context column(s) of the log"
                + (
                    " (card features enter DR's model only when the target is a policy, whose "
                    "probabilities of every candidate card are known)"
                    if card
                    else f"; the log's context columns: {', '.join(map(str, log.context.columns))}"
                )
            )
    columns = list(log.context.columns) if feature_columns is None else list(feature_columns)

    def by_column(t: np.ndarray, name: str) -> OpeReport:
        check_support(log, t, name)
        if columns:  # DR's reward model: context columns and slot, cross-fitted
            q = context_reward(log, folds, columns, seed)
            notes.append(
                "DR's reward model: a logistic regression on the context columns "
                f"({', '.join(map(str, columns))}) and the slot, cross-fitted on the other half of the "
                "pages; it does not see the card (the target's probabilities are known only at logged cards)"
            )
        else:  # the mean reward of each slot, learnt on the other half of the pages
            q = slot_mean_reward(log, folds)
            notes.append(
                "DR's reward model is the cross-fitted mean reward of each slot (the log has no "
                "context columns; the target is known only at logged cards)"
            )
        arrays = {"target_propensity": t, "expected_reward": q, "expected_reward_target": q}
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
    models = cross_fitted_reward_model(log, pages, page_fold, seed, n_epochs)
    arrays: dict[str, np.ndarray] = {}
    for f in (0, 1):
        train_pages = [p for p, pf in zip(pages, page_fold, strict=True) if pf != f]
        test_pages = [p for p, pf in zip(pages, page_fold, strict=True) if pf == f]
        if not test_pages:
            continue
        target_policy = make_policy(policy, random_state=seed + f, **(policy_params or {}))
        if policy != "uniform":
            train(target_policy, log, train_pages, n_epochs, seed + f)
        part = replay(target_policy, test_pages, len(log), models[f])
        for k, v in part.items():
            arrays.setdefault(k, np.full(len(log), np.nan))
            done = ~np.isnan(v)
            arrays[k][done] = v[done]
    check_support(log, arrays["target_propensity"], policy)
    if policy != "uniform":
        notes.append(
            f"{policy} trained on half of the pages, evaluated on the other half, and the other way round ({n_epochs} passes)"
        )
    notes.append(
        "DR's reward model: a factorization machine on the logged context and card features, "
        "shelf type and slot, trained on the other half of the pages (cross-fitted)"
    )
    return OpeReport(
        policy,
        _estimates(log, arrays, alpha, method, seed),
        len(log),
        log.n_pages,
        float(log.reward.mean()),
        notes,
    )
