"""Tables and plots of the exploration study from its per-seed JSON files (see exploration_study.py).

    python benchmarks/exploration_study.py report --out study/ --docs docs/

prints Markdown tables (the ones in docs/exploration.md) and writes the PNG plots into --docs.
Only seeds whose files exist are used; every table says how many.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

WINDOW = 50  # fan visits in the moving share of the new shelf
GOAL_VISITS = 2000


def _load(out: Path, prefix: str) -> list[dict]:
    files = sorted(out.glob(f"{prefix}-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    return [json.loads(p.read_text()) for p in files]


def _ms(x) -> str:  # type: ignore[no-untyped-def]
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.4f} ± {x.std(ddof=1) if len(x) > 1 else 0.0:.4f}"


def steady_table(runs: list[dict]) -> str:
    if not runs:
        return "(no steady seeds yet)\n"
    names = list(runs[0]["policies"])
    seeds = [r["seed"] for r in runs]
    lines = [
        f"Steady world, {len(runs)} seeds ({', '.join(map(str, seeds))}); 50,000 impressions per policy.\n",
        "| policy | true expected stream rate (mean ± sd) | realised stream rate | shortfall to greedy (mean; range) | seeds within 0.01 of greedy |",
        "|---|---|---|---|---|",
    ]
    g = np.array([r["policies"]["greedy"]["expected_rate"] for r in runs])
    for n in names:
        e = np.array([r["policies"][n]["expected_rate"] for r in runs])
        s = np.array([r["policies"][n]["stream_rate"] for r in runs])
        d = g - e
        short = "—" if n == "greedy" else f"{d.mean():+.4f}; [{d.min():+.4f}, {d.max():+.4f}]"
        within = "—" if n == "greedy" else f"{int((d <= 0.01).sum())} of {len(d)}"
        lines.append(f"| {n} | {_ms(e)} | {_ms(s)} | {short} | {within} |")
    return "\n".join(lines) + "\n"


def changed_table(runs: list[dict], world: str) -> str:
    if not runs:
        return f"(no {world} seeds yet)\n"
    names = list(runs[0]["policies"])
    lines = [
        f"{world}: {len(runs)} seeds ({', '.join(str(r['seed']) for r in runs)}); the change on day 5 (page 1,250 of 2,500); "
        "figures over the 1,250 pages after it.\n",
        "| policy | post-change realised stream rate | post-change true expected rate | seeds ahead of greedy (realised) | seeds ahead of greedy (expected) |",
        "|---|---|---|---|---|",
    ]
    gs = np.array([r["policies"]["greedy"]["post_stream_rate"] for r in runs])
    ge = np.array([r["policies"]["greedy"]["post_expected_rate"] for r in runs])
    for n in names:
        s = np.array([r["policies"][n]["post_stream_rate"] for r in runs])
        e = np.array([r["policies"][n]["post_expected_rate"] for r in runs])
        ahead_s = "—" if n == "greedy" else f"{int((s > gs).sum())} of {len(s)}"
        ahead_e = "—" if n == "greedy" else f"{int((e > ge).sum())} of {len(e)}"
        lines.append(f"| {n} | {_ms(s)} | {_ms(e)} | {ahead_s} | {ahead_e} |")
    return "\n".join(lines) + "\n"


def moving_share(shown: list[int], window: int = WINDOW) -> np.ndarray:
    x = np.asarray(shown, dtype=float)
    if len(x) == 0:
        return x
    c = np.cumsum(np.r_[0.0, x])
    k = np.arange(1, len(x) + 1)
    lo = np.maximum(0, k - window)
    share = (c[k] - c[lo]) / (k - lo)
    share[k < min(window, len(x))] = np.nan  # only full windows: a share of 3 visits says little
    return share


def new_shelf_table(runs: list[dict]) -> str:
    if not runs:
        return "(no new-shelf seeds yet)\n"
    names = list(runs[0]["policies"])
    lines = [
        f"New shelf: share of the visits of listeners who like it best on which it is shown, {len(runs)} seeds. "
        f"'Reached' is the first visit after the change at which the share over the last {WINDOW} such visits "
        f"is at least half the oracle's share over the whole second half, counted from the {WINDOW}th such "
        f"visit on (goal: within {GOAL_VISITS:,} visits; the second half has 1,250).\n",
        "| policy | share shown, second half (mean ± sd) | oracle's share | seeds reaching half the oracle's share | visits to reach it (median over seeds that did) |",
        "|---|---|---|---|---|",
    ]
    oracle = np.array([np.mean(r["oracle_fan_shown"]) for r in runs])
    for n in names:
        share = np.array([np.mean(r["policies"][n]["fan_visit_shown"]) for r in runs])
        reached = []
        for r, o in zip(runs, oracle, strict=True):
            p = r["policies"][n]
            m = moving_share(p["fan_visit_shown"])
            hit = np.flatnonzero(m >= 0.5 * o)
            reached.append(p["fan_visit_at"][hit[0]] + 1 if len(hit) else None)
        ok = [v for v in reached if v is not None and v <= GOAL_VISITS]
        med = f"{np.median(ok):.0f}" if ok else "—"
        lines.append(f"| {n} | {_ms(share)} | {_ms(oracle)} | {len(ok)} of {len(runs)} | {med} |")
    return "\n".join(lines) + "\n"


OPE_KEYS = ("ips", "snips", "dr_slot", "dr")


def ope_table(rows_by_seed: list[dict]) -> str:
    if not rows_by_seed:
        return "(no OPE seeds yet)\n"
    pairs: dict[tuple[str, str], list[dict]] = {}
    for s in rows_by_seed:
        for row in s["ope"]:
            pairs.setdefault((row["logging"], row["target"]), []).append(row)
    lines = [
        f"Off-policy estimates from each policy's own log (steady world), {len(rows_by_seed)} seeds "
        f"({', '.join(str(s['seed']) for s in rows_by_seed)}). 'Defined' counts seeds on which the target "
        "stays inside the logging policy's support (no logged propensity of 1 where the target's is below 1; "
        "`deepcuts ope` refuses the others; where at most 1% of rows are outside, as with Thompson sampling's "
        "logs when all its members agree, the figures on the whole log are shown, marked *). Coverage: the 95% interval contains the true value (2,000 fresh "
        "pages). MAE: mean absolute error to the true value. DR (slot) is DR with the slot's mean reward as its "
        "model (the old one); DR is DR with the cross-fitted factorization machine on the logged context and "
        "card features.\n",
        "| logging → target | defined | coverage IPS / SNIPS / DR (slot) / DR | MAE IPS | MAE SNIPS | MAE DR (slot) | MAE DR |",
        "|---|---|---|---|---|---|---|",
    ]
    for (lg, tg), rows in pairs.items():
        n = len(rows)
        defined = [r for r in rows if r["violating_rows"] == 0]
        # a handful of rows outside the support (Thompson's members all agreeing): deepcuts ope
        # refuses, and the figures on the whole log are shown, marked *
        nearly = [r for r in rows if 0 < r["violating_rows"] <= 0.01 * r["n_rows"]]
        used = defined + nearly
        cov = " / ".join(
            f"{sum(r[f'{k}_low'] <= r['true'] <= r[f'{k}_high'] for r in used)}" for k in OPE_KEYS
        )
        mae = [np.mean([abs(r[k] - r["true"]) for r in used]) if used else np.nan for k in OPE_KEYS]
        cells = " | ".join("—" if np.isnan(m) else f"{m:.4f}" for m in mae)
        cov_cell = f"{cov} of {len(used)}" if used else "—"
        outside = int(np.median([r["violating_rows"] for r in rows]))
        n_rows = int(np.median([r["n_rows"] for r in rows]))
        defined_cell = f"{len(defined)} of {n}"
        if nearly:
            defined_cell += f" (* {outside} of {n_rows:,} rows outside: refused)"
        elif not used:
            defined_cell += f" (refused: {outside:,} of {n_rows:,} rows outside)"
        lines.append(f"| {lg} → {tg} | {defined_cell} | {cov_cell} | {cells} |")
    return "\n".join(lines) + "\n"


def plots(
    out: Path, docs: Path, steady: list[dict], shelf: list[dict], drift: list[dict], ope: list[dict]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs.mkdir(parents=True, exist_ok=True)
    written = []
    if steady:
        names = list(steady[0]["policies"])
        g = np.array([r["policies"]["greedy"]["expected_rate"] for r in steady])
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, n in enumerate(names):
            d = g - np.array([r["policies"][n]["expected_rate"] for r in steady])
            ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=14)
            ax.hlines(d.mean(), i - 0.3, i + 0.3, color="k")
        ax.axhline(0.01, color="r", ls="--", lw=1, label="goal: shortfall ≤ 0.01")
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_ylabel("greedy − policy (true expected stream rate)")
        ax.set_title(f"Steady world: what exploring costs ({len(steady)} seeds)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        p = docs / "exploration_steady.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    if shelf:
        names = list(shelf[0]["policies"])
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for n in names:
            curves = []
            for r in shelf:
                p = r["policies"][n]
                m = moving_share(p["fan_visit_shown"])
                # on the common grid of visits since the change
                grid = np.arange(1, 1251)
                at = np.searchsorted(np.asarray(p["fan_visit_at"]) + 1, grid, side="right") - 1
                curves.append(np.where(at >= 0, m[np.maximum(at, 0)], np.nan))
            ax.plot(np.arange(1, 1251), np.nanmean(curves, axis=0), label=n)
        oracle = np.mean([np.mean(r["oracle_fan_shown"]) for r in shelf])
        ax.axhline(oracle, color="k", ls="--", lw=1, label=f"oracle ({oracle:.2f})")
        ax.axhline(0.5 * oracle, color="gray", ls=":", lw=1, label="half the oracle's share")
        ax.set_xlabel("visits since the new shelf arrived (all listeners)")
        ax.set_ylabel(f"share of fans' pages showing it (last {WINDOW} fan visits)")
        ax.set_title(
            f"New shelf: shown to the listeners who like it best ({len(shelf)} seeds, mean)"
        )
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        p = docs / "exploration_new_shelf.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    if shelf or drift:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, runs, title in ((axes[0], shelf, "new shelf"), (axes[1], drift, "tastes drift")):
            if not runs:
                continue
            names = list(runs[0]["policies"])
            g = np.array([r["policies"]["greedy"]["post_stream_rate"] for r in runs])
            for i, n in enumerate(names):
                d = np.array([r["policies"][n]["post_stream_rate"] for r in runs]) - g
                ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=14)
                ax.hlines(d.mean(), i - 0.3, i + 0.3, color="k")
            ax.axhline(0, color="gray", lw=1)
            ax.set_xticks(range(len(names)), names, rotation=20)
            ax.set_title(f"{title}: post-change stream rate − greedy's ({len(runs)} seeds)")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        p = docs / "exploration_changes.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


def cmd_report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    steady, shelf, drift = _load(out, "steady"), _load(out, "new-shelf"), _load(out, "drift")
    # Section 3 comes from `ope` (on logs saved by `run --no-ope`) or from the steady run itself.
    ope = _load(out, "ope")
    done = {o["seed"] for o in ope}
    ope += [
        {"seed": s["seed"], "ope": s["ope"]}
        for s in steady
        if s.get("ope") and s["seed"] not in done
    ]
    ope.sort(key=lambda o: o["seed"])
    print("## Section 1\n")
    print(steady_table(steady))
    print("## Section 2\n")
    print(changed_table(shelf, "New shelf"))
    print(new_shelf_table(shelf))
    print(changed_table(drift, "Tastes drift"))
    print("## Sections 3 and 4\n")
    print(ope_table(ope))
    if args.docs:
        for p in plots(out, Path(args.docs), steady, shelf, drift, ope):
            print(f"wrote {p}")
