"""What the operator page shows: how the home screen's bandit is doing, from the live log.

Everything here reads the live log (every page the service served, with its propensities, and
every event it accepted) and the published snapshot; it never opens the DuckDB store, so the
page answers while batch jobs hold the store.

- **Rewards** are joined as the learn job joins them (`deepcuts.bandit.impressions.join_rewards`):
  a card shown to a listener succeeds when that listener played it for at least the success
  rule's threshold (30 s) within the window (1 h) after the page was served; it fails once the
  window has passed without one; until then it is pending and left out of rates and estimates.
- **Exploration or exploitation**: an epsilon-greedy draw that took the best remaining
  candidate has P(draw | earlier) >= 1 - epsilon, an exploratory one epsilon / m (m candidates
  left). A card whose shelf draw and card draw were both the best ones has
  ``propensity_given_earlier`` >= (1 - epsilon)^2 and counts as exploitation; any exploratory
  draw makes it exploration. Greedy pages are all exploitation and uniform pages all exploration.
- **Off-policy estimates** of greedy, epsilon-greedy and uniform with the project's estimators
  (`deepcuts.bandit.ope.evaluate` with a target column: IPS, SNIPS and DR, 95% intervals). A
  served page shows fewer shelves than it chose from, so it cannot be replayed from the log
  alone; each page's candidates are rebuilt from the published snapshot (the listener's
  candidate shelves, the visit's logged context) and the published reward model gives the
  target's probability of each logged card at its slot. Uniform's is 1 / (shelf candidates x
  card candidates), from the logged counts.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from deepcuts.bandit.feedback import feedback_from_frame
from deepcuts.bandit.impressions import records_frame
from deepcuts.bandit.ope import evaluate
from deepcuts.bandit.policies import PageProbabilities
from deepcuts.bandit.reward import SuccessRule
from deepcuts.bandit.types import BanditInputError, Context, PageLayout
from deepcuts.snapshots.published import Published
from deepcuts.snapshots.versions import read_manifest, versions
from deepcuts.store.live import LiveLog

log = logging.getLogger(__name__)

TARGETS = ("greedy", "epsilon-greedy", "uniform")
MAX_OPE_PAGES = 1000  # the latest pages are evaluated; older ones are left out (said on the page)


@dataclass
class Estimate:
    policy: str
    estimates: dict[str, dict[str, float]] = field(default_factory=dict)  # ips/snips/dr
    error: str | None = None


@dataclass
class AdminReport:
    days: int
    since: datetime
    impressions: int
    decided: int
    pending: int
    streams: int
    per_kind: (
        pd.DataFrame
    )  # shelf_type, impressions, decided, streams, stream_rate, exploit, explore
    per_day: pd.DataFrame  # day, shelf_type, impressions
    estimates: list[Estimate]
    ope_pages: int
    snapshots: list[dict[str, object]]
    waiting: dict[str, int]
    plots: dict[str, str]  # name -> inline SVG


def rewarded(
    frame: pd.DataFrame,
    plays: pd.DataFrame,
    now: datetime,
    rule: SuccessRule | None = None,
    window: timedelta = timedelta(hours=1),
) -> pd.Series:
    """Each impression's reward as the learn job would join it: 1.0, 0.0 or NaN (pending).

    ``plays`` has user_id, item_id, at (naive UTC) and ms_played of plays and skips."""
    rule = rule or SuccessRule()
    reward = pd.Series(np.nan, index=frame.index, dtype="float64")
    if frame.empty:
        return reward
    threshold = frame["content_type"].map(lambda k: rule.threshold_ms(str(k))).to_numpy()
    end = frame["served_at"] + window
    if len(plays):
        joined = (
            frame[["impression_id", "user_id", "item_id", "served_at"]]
            .assign(end=end, threshold=threshold)
            .merge(plays, on=["user_id", "item_id"])
        )
        hit = joined[
            (joined["at"] >= joined["served_at"])
            & (joined["at"] <= joined["end"])
            & (joined["ms_played"] >= joined["threshold"])
        ]
        streamed = frame["impression_id"].isin(set(hit["impression_id"]))
    else:
        streamed = pd.Series(False, index=frame.index)
    now_naive = now.astimezone(UTC).replace(tzinfo=None)
    reward[streamed] = 1.0
    reward[~streamed & (end <= now_naive)] = 0.0
    return reward


def exploited(frame: pd.DataFrame, epsilon: float) -> np.ndarray:
    """True where a card's draws were the policy's best ones (see the module docstring)."""
    policy = frame["policy_id"].astype(str).to_numpy()
    given = frame["propensity_given_earlier"].astype(float).to_numpy()
    out = given >= (1.0 - epsilon) ** 2 - 1e-9
    out[policy == "greedy"] = True
    out[policy == "uniform"] = False
    return out


def logged_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rewarded impressions in the logged-table format `feedback_from_frame` reads (as
    `deepcuts.bandit.impressions.impressions_frame` makes from the store)."""
    frame = frame.reset_index(drop=True)
    ctx = pd.json_normalize([json.loads(x or "{}") for x in frame["context"]]).add_prefix("ctx.")
    card = pd.json_normalize([json.loads(x or "{}") for x in frame["card_features"]]).add_prefix(
        "card."
    )
    base = frame.drop(columns=["context", "card_features", "reward_at", "served_at"]).rename(
        columns={"item_id": "action", "card_position": "position"}
    )
    base["reward"] = base["reward"].astype(float)
    return pd.concat([base, ctx, card], axis=1)


def target_probabilities(
    published: Published,
    frame: pd.DataFrame,
    policies: Sequence[str],
    epsilon: float,
    layout: PageLayout,
) -> dict[str, np.ndarray]:
    """Each target policy's probability of each logged card at its logged slot, on each page's
    candidates as the published snapshot has them (0 where the card is no longer a candidate).

    Greedy and epsilon-greedy rank by the same published reward model, so each page's card
    scores are computed once and each policy turns them into position probabilities."""
    out = {p: np.zeros(len(frame)) for p in policies}
    if "uniform" in out:
        out["uniform"] = 1.0 / (
            frame["n_shelf_candidates"].astype(float).to_numpy()
            * frame["n_card_candidates"].astype(float).to_numpy()
        )
    ranked = [p for p in policies if p != "uniform"]
    if not ranked:
        return out
    cols = {
        name: frame[name].tolist()
        for name in ("user_id", "hour", "weekday", "device", "country", "context", "shelf_id",
                     "item_id", "shelf_position", "card_position")
    }  # fmt: skip
    with published.models_lock:
        choosers = {p: published.bandit.policy(p, epsilon) for p in ranked}
        scorer = next(iter(choosers.values()))
        for rows in frame.groupby("page_id", sort=False).indices.values():
            r0 = rows[0]
            user = str(cols["user_id"][r0])
            u = published.user_index.get(user)
            shelves = published.shelves(u) if u is not None else []
            if not shelves:
                continue
            context = Context(
                user_id=user,
                hour=int(cols["hour"][r0]),
                weekday=int(cols["weekday"][r0]),
                device=str(cols["device"][r0]),
                country=str(cols["country"][r0]),
                user_vector=published.user_vector(u),
                features=json.loads(cols["context"][r0] or "{}"),
            )
            scores = scorer.card_scores(context, shelves)  # as `Policy.page_probabilities`
            k_s = min(layout.n_shelves, len(shelves))
            probs = {
                p: PageProbabilities(
                    c.marginals(c.shelf_scores(scores, layout.n_cards), k_s),
                    tuple(c.marginals(s, min(layout.n_cards, s.shape[-1])) for s in scores),
                )
                for p, c in choosers.items()
            }
            shelf_at = {s.shelf_id: k for k, s in enumerate(shelves)}
            for r in rows:
                k = shelf_at.get(str(cols["shelf_id"][r]))
                if k is None:
                    continue
                c = next((n for n, card in enumerate(shelves[k].cards)
                          if card.item_id == cols["item_id"][r]), None)  # fmt: skip
                if c is None:
                    continue
                j, pos = int(cols["shelf_position"][r]), int(cols["card_position"][r])
                for p in ranked:
                    out[p][r] = probs[p].slot(k, c, j, pos)
    return out


def estimate(
    published: Published, decided: pd.DataFrame, epsilon: float, layout: PageLayout
) -> tuple[list[Estimate], int]:
    """IPS, SNIPS and DR of each target on the latest decided pages; returns (estimates, pages)."""
    if decided.empty:
        return [Estimate(p, error="no impression has a known reward yet") for p in TARGETS], 0
    pages = pd.unique(decided["page_id"])[-MAX_OPE_PAGES:]
    decided = decided[decided["page_id"].isin(set(pages))].reset_index(drop=True)
    table = logged_table(decided)
    try:
        fb = feedback_from_frame(table, source="live log")
    except Exception as exc:  # a log the estimators refuse is shown, not raised
        return [Estimate(p, error=str(exc)) for p in TARGETS], len(pages)
    targets = target_probabilities(published, decided, TARGETS, epsilon, layout)
    out = []
    for policy in TARGETS:
        try:
            report = evaluate(fb, target=targets[policy], target_name=policy, seed=0)
            out.append(
                Estimate(
                    policy,
                    {
                        k: {"estimate": v.estimate, "low": v.low, "high": v.high}
                        for k, v in report.estimates.items()
                    },
                )
            )
        except BanditInputError as exc:
            out.append(Estimate(policy, error=str(exc)))
    return out, len(pages)


def snapshot_history(root) -> list[dict[str, object]]:
    """Published versions, newest first: number, when made, by whom, reward model version."""
    out = []
    for v in sorted(versions(root), reverse=True):
        try:
            m = read_manifest(root, v)
        except Exception as exc:  # a version being written or removed
            log.debug("skipping snapshot %s: %s", v, exc)
            continue
        out.append(
            {
                "version": m.version,
                "created_at": m.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                "published_by": m.meta.get("published_by", "publish"),
                "reward_version": m.meta.get("reward_version"),
            }
        )
    return out


def build_report(
    live: LiveLog,
    published: Published,
    snapshot_root,
    *,
    days: int = 7,
    epsilon: float = 0.1,
    layout: PageLayout | None = None,
    now: datetime | None = None,
) -> AdminReport:
    """The operator page's figures for the last ``days`` days."""
    now = now or datetime.now(UTC)
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = live.impressions_since(since)
    frame = records_frame(rows) if rows else records_frame([])
    events = live.events_since(since - timedelta(hours=1), types=("play", "skip"))
    plays = pd.DataFrame(
        {
            "user_id": [e.user_id for e in events],
            "item_id": [e.item_id for e in events],
            "at": pd.to_datetime(
                [e.at.astimezone(UTC).replace(tzinfo=None) for e in events]
            ).astype("datetime64[us]"),
            "ms_played": [e.ms_played or 0 for e in events],
        }
    )
    if not frame.empty:
        frame["served_at"] = frame["served_at"].astype("datetime64[us]")
    frame["reward"] = rewarded(frame, plays, now).to_numpy()
    frame["exploit"] = exploited(frame, epsilon) if len(frame) else np.array([], dtype=bool)
    per_kind = (
        frame.groupby("shelf_type")
        .agg(
            impressions=("impression_id", "size"),
            decided=("reward", "count"),
            streams=("reward", "sum"),
            exploit=("exploit", "sum"),
        )
        .reset_index()
        if len(frame)
        else pd.DataFrame(columns=["shelf_type", "impressions", "decided", "streams", "exploit"])
    )
    per_kind["explore"] = per_kind["impressions"] - per_kind["exploit"]
    per_kind["stream_rate"] = per_kind["streams"] / per_kind["decided"].where(
        per_kind["decided"] > 0
    )
    per_kind = per_kind.sort_values("impressions", ascending=False).reset_index(drop=True)
    per_day = (
        frame.assign(day=frame["served_at"].dt.strftime("%m-%d"))
        .groupby(["day", "shelf_type"])
        .size()
        .rename("impressions")
        .reset_index()
        if len(frame)
        else pd.DataFrame(columns=["day", "shelf_type", "impressions"])
    )
    decided = frame[frame["reward"].notna()]
    estimates, ope_pages = estimate(published, decided, epsilon, layout or PageLayout())
    report = AdminReport(
        days=days,
        since=since,
        impressions=len(frame),
        decided=len(decided),
        pending=int(frame["reward"].isna().sum()),
        streams=int((frame["reward"] == 1.0).sum()),
        per_kind=per_kind,
        per_day=per_day,
        estimates=estimates,
        ope_pages=ope_pages,
        snapshots=snapshot_history(snapshot_root),
        waiting=live.count_waiting(),
        plots={},
    )
    report.plots = plots(report, now)
    return report


# -- plots: matplotlib's SVG backend, inlined into the page ------------------------------------
COLOURS = ("#1db954", "#3d7eff", "#ff8c42", "#c04cfd", "#f2c14e", "#21b8c4", "#ef476f", "#8d99ae")


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", transparent=True)
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # without the XML prolog and DOCTYPE: inline in HTML


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.edgecolor": "#888", "text.color": "#222",
         "axes.labelcolor": "#222", "xtick.color": "#444", "ytick.color": "#444"}
    )  # fmt: skip
    return plt.subplots(figsize=(width, height))


def _wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 0.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def plots(report: AdminReport, now: datetime) -> dict[str, str]:
    """Three SVG charts: impressions per day by shelf kind, stream rate per kind (95% Wilson
    intervals), and each kind's share chosen by exploration and by exploitation."""
    out: dict[str, str] = {}
    kinds = list(report.per_kind["shelf_type"])
    colour = {k: COLOURS[n % len(COLOURS)] for n, k in enumerate(kinds)}
    days = [(report.since + timedelta(days=d)).strftime("%m-%d") for d in range(report.days + 1)]

    fig, ax = _figure(6.4, 2.8)
    bottom = np.zeros(len(days))
    table = report.per_day.pivot_table(
        index="day", columns="shelf_type", values="impressions", aggfunc="sum", fill_value=0
    ).reindex(days, fill_value=0)
    x = np.arange(len(days))
    for k in kinds:
        values = table[k].to_numpy(dtype=float) if k in table.columns else np.zeros(len(days))
        ax.bar(x, values, bottom=bottom, label=k, color=colour[k], width=0.7)
        bottom += values
    ax.set_xticks(x, days)
    ax.set_ylabel("cards shown")
    ax.set_title("Impressions per day, by shelf kind", loc="left", fontsize=10)
    if kinds:
        ax.legend(fontsize=7, frameon=False, ncols=2, loc="upper left")
    ax.tick_params(axis="x", labelsize=7)
    out["impressions"] = _svg(fig)

    fig, ax = _figure(6.4, 0.5 + 0.32 * max(len(kinds), 1))
    y = np.arange(len(kinds))
    rates = report.per_kind["stream_rate"].fillna(0.0).to_numpy(dtype=float)
    lows, highs = zip(
        *[
            _wilson(s, n)
            for s, n in zip(report.per_kind["streams"], report.per_kind["decided"], strict=True)
        ],
        strict=True,
    ) if kinds else ((), ())  # fmt: skip
    ax.barh(y, rates, color=[colour[k] for k in kinds], height=0.6)
    if kinds:
        ax.errorbar(rates, y, xerr=[np.maximum(rates - np.array(lows), 0), np.maximum(np.array(highs) - rates, 0)], fmt="none",
                    ecolor="#333", capsize=3, lw=1)  # fmt: skip
    for yy, (r, n) in enumerate(zip(rates, report.per_kind["decided"], strict=True)):
        ax.text(1.01, yy, f"{r:.0%} of {int(n)}" if n else "none decided", va="center", fontsize=7,
                transform=ax.get_yaxis_transform())  # fmt: skip
    ax.set_yticks(y, kinds)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("stream rate (played 30 s or more within an hour), 95% interval")
    ax.set_title("Stream rate, by shelf kind", loc="left", fontsize=10)
    out["stream_rate"] = _svg(fig)

    fig, ax = _figure(6.4, 0.5 + 0.32 * max(len(kinds), 1))
    total = report.per_kind["impressions"].to_numpy(dtype=float)
    share = np.divide(
        report.per_kind["exploit"].to_numpy(dtype=float),
        total,
        out=np.zeros(len(kinds)),
        where=total > 0,
    )
    ax.barh(y, share, color="#3d7eff", height=0.6, label="exploitation (best candidate)")
    ax.barh(y, 1 - share, left=share, color="#ff8c42", height=0.6, label="exploration")
    ax.set_yticks(y, kinds)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of cards shown")
    ax.set_title("Chosen by exploitation vs exploration", loc="left", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncols=2)
    out["exploration"] = _svg(fig)
    return out
