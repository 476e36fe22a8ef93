"""Running policies against a simulated home screen: stream rates, regret, off-policy checks.

`simulate_home` serves the same sequence of contexts and candidate shelves to every policy,
``pages_per_day`` pages a simulated day, draws each shown card's stream from the world's true
probability, feeds the rewards back in micro-batches, and records per page the realised reward,
the true expected reward of the page served and that of the best page (regret). Policies are
compared with common random numbers: the same contexts and candidates, the same uniform draw
for the same slot of the same page (a card streams when the draw is below its probability),
and the same reward-model initialisation for every learned policy, so epsilon-greedy and greedy
differ only in exploring.

After the runs, two checks on fresh contexts drawn over the same days:

- what each policy with a reward model *learnt*: the true value of ranking greedily by its
  final model (``learned_value``), apart from what it earned while learning. Exploration pays
  only where it teaches the model something greedy's own data does not;
- off-policy evaluation: the epsilon-greedy policy as it stands at the end of its run (frozen)
  is evaluated by IPS, SNIPS and DR from the uniform-random policy's log, and compared with the
  frozen policy's true on-policy value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepcuts.bandit.estimators import (
    DoublyRobust,
    Interval,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)
from deepcuts.bandit.feedback import LoggedFeedback, from_impressions
from deepcuts.bandit.ope import ReplayPage, replay
from deepcuts.bandit.policies import EpsilonGreedy, Policy, make_policy
from deepcuts.bandit.types import BanditInputError, Context, Impression, Page, PageLayout, Shelf
from deepcuts.simulate.home.world import HomeWorld

Progress = Callable[[str, int], None]
START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class SimulationConfig:
    """What `simulate_home` runs.

    n_impressions : shown cards per policy (pages = n_impressions / slots per page).
    layout : shelves per page and cards per shelf.
    policies : policy ids to run (``uniform`` is needed for the off-policy check).
    epsilon : exploration of ``epsilon-greedy``.
    update_every : pages per micro-batch of feedback.
    pages_per_day : pages served per simulated day (the world's releases arrive daily, and a
        listener's batch-made shelves are refreshed daily).
    n_eval_pages : fresh contexts on which the frozen epsilon-greedy policy's true value and
        every learned policy's ``learned_value`` are computed (exactly, from position
        probabilities, for each context).
    seed : seed of contexts, candidates, rewards and policies.
    policy_params : extra constructor arguments per policy id.
    """

    n_impressions: int = 50_000
    layout: PageLayout = field(default_factory=PageLayout)
    policies: tuple[str, ...] = ("epsilon-greedy", "greedy", "uniform", "thompson", "linucb")
    epsilon: float = 0.1
    update_every: int = 1
    pages_per_day: int = 250
    n_eval_pages: int = 2000
    seed: int = 0
    policy_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.n_impressions, int) or self.n_impressions < 1:
            raise BanditInputError(
                f"n_impressions: must be a positive integer, not {self.n_impressions!r}"
            )
        if not isinstance(self.update_every, int) or self.update_every < 1:
            raise BanditInputError(
                f"update_every: must be a positive integer, not {self.update_every!r}"
            )
        if not isinstance(self.pages_per_day, int) or self.pages_per_day < 1:
            raise BanditInputError(
                f"pages_per_day: must be a positive integer, not {self.pages_per_day!r}"
            )
        if not isinstance(self.n_eval_pages, int) or self.n_eval_pages < 0:
            raise BanditInputError(
                f"n_eval_pages: must be a non-negative integer, not {self.n_eval_pages!r}"
            )
        if not self.policies:
            raise BanditInputError("policies: name at least one policy")
        if len(set(self.policies)) != len(self.policies):
            raise BanditInputError("policies: a policy is named twice")

    @property
    def n_pages(self) -> int:
        """Pages each policy serves."""
        return -(-self.n_impressions // (self.layout.n_shelves * self.layout.n_cards))

    def day_of(self, page: int) -> int:
        return page // self.pages_per_day

    def served_at(self, page: int) -> datetime:
        """When page ``page`` is served: days from START, spread evenly through each day."""
        day, k = divmod(page, self.pages_per_day)
        return START + timedelta(days=day, seconds=k * 86_400 / self.pages_per_day)

    def make(self, name: str, index: int = 0) -> Policy:
        """Policy ``name`` as configured. Every policy gets the same random state (common random
        numbers): epsilon-greedy and greedy then start from the same reward model and differ
        only in exploring. ``index`` is accepted for compatibility and not used."""
        params = dict(self.policy_params.get(name, {}))
        if name == "epsilon-greedy":
            params.setdefault("epsilon", self.epsilon)
        return make_policy(name, random_state=self.seed * 1000 + 17, **params)


@dataclass
class PolicyRun:
    """One policy's run: totals and curves (curves are sampled at ``checkpoints`` impressions)."""

    policy_id: str
    description: dict[str, Any]
    n_pages: int
    n_impressions: int
    streams: int
    stream_rate: float  # realised streams per impression
    expected_rate: float  # true expected streams per impression of the pages served
    optimal_rate: float  # of the best pages
    regret: float  # total expected streams lost to the best pages
    seconds: float
    checkpoints: list[int]
    cumulative_stream_rate: list[float]
    cumulative_expected_rate: list[float]
    cumulative_regret: list[float]
    window_stream_rate: list[float]
    # the true value, on the evaluation contexts, of ranking greedily by the final reward model
    learned_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoggedPage:
    """A served page with its candidates, for replaying target policies on the log."""

    context: Context
    shelves: list[Shelf]
    page: Page


@dataclass
class OffPolicyCheck:
    """The off-policy estimates of a frozen target from a log, against its true value."""

    target: str
    logging: str
    estimates: dict[str, Interval]
    on_policy_value: float  # true value on fresh contexts
    on_policy_std_error: float  # Monte Carlo error over those contexts
    logged_contexts_value: float  # true value on the log's own contexts
    n_eval_pages: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["estimates"] = {k: v.to_dict() for k, v in self.estimates.items()}
        d["covered"] = {k: v.contains(self.on_policy_value) for k, v in self.estimates.items()}
        return d


@dataclass
class SimulationResult:
    config: dict[str, Any]
    world: dict[str, Any]
    runs: dict[str, PolicyRun]
    ope: OffPolicyCheck | None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "config": self.config,
            "world": self.world,
            "runs": {k: v.to_dict() for k, v in self.runs.items()},
            "ope": None if self.ope is None else self.ope.to_dict(),
        }
        rates = {k: v.stream_rate for k, v in self.runs.items()}
        summary: dict[str, Any] = {"stream_rate": rates}
        if "uniform" in rates and rates["uniform"] > 0:
            summary["ratio_to_uniform"] = {k: r / rates["uniform"] for k, r in rates.items()}
        if "greedy" in rates:
            summary["difference_to_greedy"] = {k: r - rates["greedy"] for k, r in rates.items()}
        summary["expected_rate"] = {k: v.expected_rate for k, v in self.runs.items()}
        summary["learned_value"] = {
            k: v.learned_value for k, v in self.runs.items() if v.learned_value is not None
        }
        out["summary"] = summary
        return out


def _checkpoints(n_pages: int, n: int = 200) -> np.ndarray:
    return np.unique(np.linspace(1, n_pages, min(n, n_pages)).astype(int)) - 1


def run_policy(
    world: HomeWorld,
    policy: Policy,
    config: SimulationConfig,
    *,
    keep_log: bool = False,
    progress: Progress | None = None,
) -> tuple[PolicyRun, list[LoggedPage]]:
    """Serve ``config.n_impressions`` cards with ``policy``, learning from the streams."""
    layout = config.layout
    ctx_rng = np.random.default_rng([config.seed, 1])  # same contexts and shelves for every policy
    n_pages = config.n_pages
    # and the same draw for the same slot of the same page (common random numbers)
    draws = np.random.default_rng([config.seed, 2]).random(
        (n_pages, layout.n_shelves, layout.n_cards)
    )
    realised = np.zeros(n_pages)
    expected = np.zeros(n_pages)
    optimal = np.zeros(n_pages)
    slots = np.zeros(n_pages)
    pending: list[Impression] = []
    log: list[LoggedPage] = []
    started = time.perf_counter()
    for i in range(n_pages):
        day = config.day_of(i)
        context = world.sample_context(ctx_rng, day)
        shelves = world.candidate_shelves(context, ctx_rng, day)
        served_at = config.served_at(i)
        page = policy.select_page(
            context, shelves, layout, page_id=f"{policy.policy_id}:{i:07d}", served_at=served_at
        )
        probs_all = world.stream_probabilities(context, shelves)
        index = {s.shelf_id: k for k, s in enumerate(shelves)}
        shown_probs = [probs_all[index[s.shelf_id]] for s in page.shelves]
        p = world.page_expected_reward(page, shown_probs)
        slot = [(im.shelf_position, im.card_position) for im in page.impressions]
        r = (draws[i][tuple(np.array(slot).T)] < p).astype(np.float64)
        rewarded = [
            im.with_reward(float(x), served_at) for im, x in zip(page.impressions, r, strict=True)
        ]
        pending.extend(rewarded)
        realised[i], expected[i], slots[i] = r.sum(), p.sum(), len(p)
        optimal[i] = world.optimal_value(probs_all, layout)
        if keep_log:
            log.append(
                LoggedPage(
                    context,
                    shelves,
                    Page(page.page_id, context, page.shelves, page.cards, tuple(rewarded)),
                )
            )
        if (i + 1) % config.update_every == 0 or i == n_pages - 1:
            policy.update_params(pending)
            pending = []
        if progress is not None and (i + 1) % 50 == 0:
            progress(policy.policy_id, 50)
    if progress is not None and n_pages % 50:
        progress(policy.policy_id, n_pages % 50)
    cs = np.cumsum(slots)
    at = _checkpoints(n_pages)
    window = max(1, n_pages // 50)
    win_rate = [
        float(
            realised[max(0, k - window + 1) : k + 1].sum()
            / slots[max(0, k - window + 1) : k + 1].sum()
        )
        for k in at
    ]
    run = PolicyRun(
        policy_id=policy.policy_id,
        description=policy.describe(),
        n_pages=n_pages,
        n_impressions=int(cs[-1]),
        streams=int(realised.sum()),
        stream_rate=float(realised.sum() / cs[-1]),
        expected_rate=float(expected.sum() / cs[-1]),
        optimal_rate=float(optimal.sum() / cs[-1]),
        regret=float((optimal - expected).sum()),
        seconds=time.perf_counter() - started,
        checkpoints=[int(cs[k]) for k in at],
        cumulative_stream_rate=[float(x) for x in (np.cumsum(realised) / cs)[at]],
        cumulative_expected_rate=[float(x) for x in (np.cumsum(expected) / cs)[at]],
        cumulative_regret=[float(x) for x in np.cumsum(optimal - expected)[at]],
        window_stream_rate=win_rate,
    )
    return run, log


def log_table(log: Sequence[LoggedPage]) -> LoggedFeedback:
    """The simulated log as `LoggedFeedback`, with the cards each page did not show listed as
    candidates, so that the table (``to_frame``) can be replayed exactly by ``deepcuts ope``."""
    feedback = from_impressions(im for lp in log for im in lp.page.impressions)
    rows = []
    for lp in log:
        shown = {(im.shelf.shelf_id, im.card.item_id) for im in lp.page.impressions}
        for s in lp.shelves:
            for c in s.cards:
                if (s.shelf_id, c.item_id) not in shown:
                    rows.append(
                        {
                            "page_id": lp.page.page_id,
                            "shelf_id": s.shelf_id,
                            "shelf_type": s.shelf_type,
                            "shelf_title": s.title,
                            "action": c.item_id,
                            "item_kind": c.kind,
                            **{f"card.{k}": v for k, v in c.features.items()},
                        }
                    )
    return replace(feedback, candidates=pd.DataFrame(rows) if rows else None)


# -- off-policy evaluation on a simulated log ----------------------------------------------------
def replay_logged(log: Sequence[LoggedPage]) -> list[ReplayPage]:
    """The simulated log's pages for replay, rows numbered as `from_impressions` numbers them."""
    out, start = [], 0
    for lp in log:
        ims = [im for im in lp.page.impressions if im.reward is not None]
        index = {s.shelf_id: k for k, s in enumerate(lp.shelves)}
        cards = [{c.item_id: n for n, c in enumerate(s.cards)} for s in lp.shelves]
        si = np.array([index[im.shelf.shelf_id] for im in ims])
        out.append(
            ReplayPage(
                lp.context,
                lp.shelves,
                np.arange(start, start + len(ims)),
                si,
                np.array([cards[s][im.card.item_id] for s, im in zip(si, ims, strict=True)]),
                np.array([im.shelf_position for im in ims]),
                np.array([im.card_position for im in ims]),
            )
        )
        start += len(ims)
    return out


def on_policy_value(
    world: HomeWorld,
    policy: Policy,
    layout: PageLayout,
    contexts: Sequence[tuple[Context, list[Shelf]]],
) -> tuple[float, float]:
    """The policy's true expected reward per shown card over the given contexts (exact for each
    context, from its position probabilities), with the Monte Carlo standard error."""
    totals, counts = [], []
    for context, shelves in contexts:
        probs = world.stream_probabilities(context, shelves)
        total, n = world.expected_value(probs, policy.page_probabilities(context, shelves, layout))
        totals.append(total)
        counts.append(n)
    t, c = np.array(totals), np.array(counts, dtype=np.float64)
    value = float(t.sum() / c.sum())
    if len(t) < 2:
        return value, float("nan")
    resid = (t - value * c) / c.mean()
    return value, float(resid.std(ddof=1) / np.sqrt(len(t)))


def evaluation_contexts(
    world: HomeWorld, config: SimulationConfig
) -> list[tuple[Context, list[Shelf]]]:
    """``config.n_eval_pages`` fresh contexts with their candidates, on days of the run."""
    rng = np.random.default_rng([config.seed, 3])
    fresh = []
    for _ in range(config.n_eval_pages):  # on the days of the run, as the log's pages were
        day = config.day_of(int(rng.integers(config.n_pages)))
        c = world.sample_context(rng, day)
        fresh.append((c, world.candidate_shelves(c, rng, day)))
    return fresh


def learned_value(
    world: HomeWorld,
    policy: Policy,
    layout: PageLayout,
    contexts: Sequence[tuple[Context, list[Shelf]]],
) -> float | None:
    """The true value per card of ranking greedily by the policy's reward model on the given
    contexts: what it has learnt, apart from what exploring cost it. None without a model."""
    if not isinstance(policy, EpsilonGreedy) or not contexts:
        return None
    exploit = make_policy("greedy", random_state=0, reward_model=policy.reward_model)
    return on_policy_value(world, exploit, layout, contexts)[0]


def off_policy_check(
    world: HomeWorld,
    target: EpsilonGreedy,
    log: Sequence[LoggedPage],
    config: SimulationConfig,
    logging_policy: str = "uniform",
    fresh: Sequence[tuple[Context, list[Shelf]]] | None = None,
) -> OffPolicyCheck:
    """IPS, SNIPS and DR of a frozen target from a log, against its true on-policy value on
    ``fresh`` contexts (`evaluation_contexts` by default)."""
    feedback: LoggedFeedback = from_impressions(im for lp in log for im in lp.page.impressions)
    arrays = replay(target, replay_logged(log), len(feedback), target.reward_model)
    t = arrays["target_propensity"]
    estimates = {
        "ips": InverseProbabilityWeighting().estimate_interval(feedback, t),
        "snips": SelfNormalizedInverseProbabilityWeighting().estimate_interval(feedback, t),
        "dr": DoublyRobust().estimate_interval(
            feedback,
            t,
            expected_reward=arrays["expected_reward"],
            expected_reward_target=arrays["expected_reward_target"],
        ),
    }
    fresh = evaluation_contexts(world, config) if fresh is None else fresh
    value, se = (
        on_policy_value(world, target, config.layout, fresh)
        if fresh
        else (float("nan"), float("nan"))
    )
    logged_value, _ = on_policy_value(
        world, target, config.layout, [(lp.context, lp.shelves) for lp in log]
    )
    return OffPolicyCheck(
        target.policy_id, logging_policy, estimates, value, se, logged_value, len(fresh)
    )


def simulate_home(
    world: HomeWorld, config: SimulationConfig | None = None, progress: Progress | None = None
) -> tuple[SimulationResult, list[LoggedPage]]:
    """Run every configured policy, then the off-policy check (when both epsilon-greedy and
    uniform ran) and each learned policy's ``learned_value``. Returns the result and the
    uniform policy's log (empty if it did not run)."""
    config = config or SimulationConfig()
    runs: dict[str, PolicyRun] = {}
    uniform_log: list[LoggedPage] = []
    final: dict[str, Policy] = {}
    for k, name in enumerate(config.policies):
        policy = config.make(name, k)
        run, log = run_policy(
            world, policy, config, keep_log=(name == "uniform"), progress=progress
        )
        runs[name] = run
        final[name] = policy
        if name == "uniform":
            uniform_log = log
    fresh = evaluation_contexts(world, config)
    ope = None
    eg = final.get("epsilon-greedy")
    if isinstance(eg, EpsilonGreedy) and uniform_log:
        ope = off_policy_check(world, eg, uniform_log, config, fresh=fresh)
    for name, policy in final.items():
        runs[name].learned_value = learned_value(world, policy, config.layout, fresh)
    cfg = asdict(config)
    cfg["layout"] = asdict(config.layout)
    world_info = {
        "users": world.n_users,
        "tracks": world.n_tracks,
        "params": world.truth.params,
        "home": asdict(world.config),
    }
    return SimulationResult(cfg, world_info, runs, ope), uniform_log


def write_outputs(result: SimulationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``home_simulation.json`` and ``home_curves.png`` (stream rate and regret curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "home_simulation.json"
    json_path.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for name, run in result.runs.items():
        axes[0].plot(run.checkpoints, run.cumulative_stream_rate, label=name)
        axes[1].plot(run.checkpoints, run.window_stream_rate, label=name)
        axes[2].plot(run.checkpoints, run.cumulative_regret, label=name)
    axes[0].set_title("cumulative stream rate")
    axes[1].set_title("stream rate, moving window")
    axes[2].set_title("cumulative regret (expected streams lost)")
    for ax in axes:
        ax.set_xlabel("impressions")
        ax.grid(alpha=0.3)
    axes[0].legend()
    if result.ope is not None:
        o = result.ope
        text = ", ".join(
            f"{k} {v.estimate:.4f} [{v.low:.4f}, {v.high:.4f}]" for k, v in o.estimates.items()
        )
        fig.suptitle(
            f"OPE of frozen {o.target} from {o.logging} log: {text}; true {o.on_policy_value:.4f}",
            fontsize=9,
        )
    fig.tight_layout()
    png_path = out / "home_curves.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return {"json": json_path, "png": png_path}
