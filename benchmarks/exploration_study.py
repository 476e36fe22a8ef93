"""What exploration buys on the simulated home screen (issue 23): the study behind docs/exploration.md.

Three worlds, each the default simulated home world (400 listeners, 3,000 tracks, 50,000
impressions = 2,500 pages of 4 shelves x 5 cards, 250 pages a day, so 10 days), seed by seed:

- ``steady``: the world as it is. Policies: greedy, epsilon-greedy (0.1), epsilon-greedy with
  a decaying epsilon (0.1 / (1 + pages / 250)), Thompson sampling, LinUCB and uniform. Each
  policy's own log is kept, and from it every other policy, frozen at the end of its run, is
  evaluated off-policy (IPS, SNIPS, DR with a slot-mean reward model, DR with a cross-fitted
  reward model on the logged context and card features) against its true value on 2,000
  fresh pages (section 3 and 4 of the issue).
- ``new-shelf``: on day 5 (the run's midpoint, page 1,250) the "New releases for you" shelf
  starts being offered; 30% of listeners like it best of all their shelves, the rest average
  (`HomeWorldConfig.new_shelf`). Greedy, epsilon-greedy, Thompson and LinUCB; per page after
  the change, whether the new shelf was shown to a listener who likes it best, and whether the
  oracle (the best page, from the truth) would have shown it.
- ``drift``: on day 5 every listener's taste moves halfway toward another random listener's
  (`HomeWorldConfig.drift`). The same four policies.

Every policy gets the same contexts, candidates, reward draws and initial model (common random
numbers; see `deepcuts.simulate.home.runs`), so greedy's and epsilon-greedy's figures for the
steady world are those of ``benchmarks/home_exploration.py`` on the same seed.

    python benchmarks/exploration_study.py run --world steady --seeds 0-19 --out study/
    python benchmarks/exploration_study.py run --world new-shelf --seeds 0-19 --out study/
    python benchmarks/exploration_study.py run --world drift --seeds 0-19 --out study/
    python benchmarks/exploration_study.py report --out study/ --docs docs/

``run`` writes one JSON file per world and seed and skips those already written, so a run
that was stopped finishes with the same command. ``report`` reads whatever seeds are there,
prints the tables (Markdown) and writes the plots (PNG) into ``--docs``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from deepcuts.bandit.estimators import (  # noqa: E402
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)
from deepcuts.bandit.feedback import from_impressions  # noqa: E402
from deepcuts.bandit.ope import (  # noqa: E402
    cross_fitted_reward_model,
    replay,
    slot_mean_reward,
    support_violations,
)
from deepcuts.simulate import simulate_world  # noqa: E402
from deepcuts.simulate.home.runs import (  # noqa: E402
    SimulationConfig,
    evaluation_contexts,
    on_policy_value,
    replay_logged,
    run_policy,
)
from deepcuts.simulate.home.world import HomeWorld, HomeWorldConfig  # noqa: E402

CHANGE_DAY = 5  # 2,500 pages at 250 a day: day 5 starts at page 1,250, the midpoint
NEW_SHELF = "new_releases"
DECAY_PAGES = 250
STEADY = ("greedy", "epsilon-greedy", "epsilon-decay", "thompson", "linucb", "uniform")
CHANGED = ("greedy", "epsilon-greedy", "thompson", "linucb")
OPE_LOGGERS = ("greedy", "epsilon-greedy", "thompson", "linucb", "uniform")
# LinUCB is not a target: its exact page probabilities cost 0.1 s a page, 4 minutes a log
OPE_TARGETS = ("greedy", "epsilon-greedy", "thompson", "uniform")


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def change_day(config: SimulationConfig) -> int:
    """The day holding the run's midpoint (day 5 of 10 at the default size)."""
    return max(1, config.n_pages // 2 // config.pages_per_day)


def make_world(root: Path, seed: int, kind: str, day: int = CHANGE_DAY) -> HomeWorld:
    world_dir = root / f"world-{seed}"
    if not (world_dir / "truth").is_dir():
        simulate_world(world_dir, users=400, tracks=3000, weeks=1, audio_share=0.0, seed=seed)
    change: dict = {}
    if kind == "new-shelf":
        change = {"change_day": day, "new_shelf": NEW_SHELF}
    elif kind == "drift":
        change = {"change_day": day, "drift": True}
    return HomeWorld.from_world(world_dir, HomeWorldConfig(seed=seed, **change))


def make_policy(config: SimulationConfig, name: str):  # type: ignore[no-untyped-def]
    if name == "epsilon-decay":
        return SimulationConfig(
            seed=config.seed, policy_params={"epsilon-greedy": {"epsilon_decay": DECAY_PAGES}}
        ).make("epsilon-greedy")
    return config.make(name)


def page_rates(world: HomeWorld, log, change_page: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Realised and true expected streams per impression, after the change page."""
    streams = expected = slots = 0.0
    for lp in log[change_page:]:
        streams += sum(float(im.reward) for im in lp.page.impressions)
        expected += float(world.page_expected_reward(lp.page).sum())
        slots += len(lp.page.impressions)
    return {"post_stream_rate": streams / slots, "post_expected_rate": expected / slots}


def ope_pairs(world, config, logs, finals, fresh):  # type: ignore[no-untyped-def]
    """Every (logging -> target) pair: IPS, SNIPS, DR (slot mean), DR (features), truth."""
    truth = {name: on_policy_value(world, p, config.layout, fresh) for name, p in finals.items()}
    out = []
    for logger, log in logs.items():
        feedback = from_impressions(im for lp in log for im in lp.page.impressions)
        pages = replay_logged(log)
        folds = np.arange(len(pages)) % 2  # pages alternate between the two halves
        models = cross_fitted_reward_model(feedback, pages, folds, seed=config.seed)
        q_slot = slot_mean_reward(feedback, np.repeat(folds, [len(p.rows) for p in pages]))
        for target, policy in finals.items():
            if target == logger:
                continue
            arrays = {}
            for f, model in enumerate(models):
                part = replay(
                    policy,
                    [p for p, pf in zip(pages, folds, strict=True) if pf == f],
                    len(feedback),
                    model,
                )
                for k, v in part.items():
                    arrays.setdefault(k, np.full(len(feedback), np.nan))
                    arrays[k][~np.isnan(v)] = v[~np.isnan(v)]
            t = arrays["target_propensity"]
            violating = support_violations(feedback.propensity, t)
            row = {
                "logging": logger,
                "target": target,
                "true": truth[target][0],
                "true_se": truth[target][1],
                "n_rows": len(feedback),
                "violating_rows": int(violating.sum()),
                "violating_mass": float((1 - t[violating]).sum()),
            }
            est = {
                "ips": InverseProbabilityWeighting().estimate_interval(feedback, t),
                "snips": SelfNormalizedInverseProbabilityWeighting().estimate_interval(feedback, t),
                "dr_slot": DoublyRobust().estimate_interval(
                    feedback, t, expected_reward=q_slot, expected_reward_target=q_slot
                ),
                "dr": DoublyRobust().estimate_interval(
                    feedback,
                    t,
                    expected_reward=arrays["expected_reward"],
                    expected_reward_target=arrays["expected_reward_target"],
                ),
            }
            for k, iv in est.items():
                row[k] = iv.estimate
                row[f"{k}_low"] = iv.low
                row[f"{k}_high"] = iv.high
            out.append(row)
    return out


def run_world(
    root: Path,
    seed: int,
    kind: str,
    impressions: int = 50_000,
    eval_pages: int = 2000,
    with_ope: bool = True,
    save_logs: Path | None = None,
) -> dict:
    config = SimulationConfig(seed=seed, n_impressions=impressions, n_eval_pages=eval_pages)
    world = make_world(root, seed, kind, change_day(config))
    change_page = change_day(config) * config.pages_per_day
    names = STEADY if kind == "steady" else CHANGED
    result: dict = {"seed": seed, "world": kind, "policies": {}}
    logs, finals = {}, {}
    for name in names:
        started = time.perf_counter()
        policy = make_policy(config, name)
        run, log = run_policy(world, policy, config, keep_log=True)
        r = {
            "stream_rate": run.stream_rate,
            "expected_rate": run.expected_rate,
            "optimal_rate": run.optimal_rate,
        }
        if kind != "steady":
            r.update(page_rates(world, log, change_page))
        if kind == "new-shelf":
            r["fan_visit_shown"] = [
                int(any(s.shelf_type == NEW_SHELF for s in lp.page.shelves))
                for lp in log[change_page:]
                if world.new_shelf_fans[world.user_index[lp.context.user_id]]
            ]
            r["fan_visit_at"] = [
                k
                for k, lp in enumerate(log[change_page:])
                if world.new_shelf_fans[world.user_index[lp.context.user_id]]
            ]
            if "oracle_fan_shown" not in result:
                oracle = []
                for lp in log[change_page:]:
                    if not world.new_shelf_fans[world.user_index[lp.context.user_id]]:
                        continue
                    probs = world.stream_probabilities(lp.context, lp.shelves)
                    best, _ = world.optimal_shelves(probs, config.layout)
                    oracle.append(int(any(lp.shelves[i].shelf_type == NEW_SHELF for i in best)))
                result["oracle_fan_shown"] = oracle
        result["policies"][name] = r
        logs[name], finals[name] = log, policy
        print(
            f"  {kind} seed {seed} {name}: {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    if kind == "steady" and with_ope:
        result["ope"] = run_ope(world, config, logs, finals)
    elif kind == "steady" and save_logs is not None:  # for `ope` later
        with open(save_logs, "wb") as fh:
            pickle.dump({"logs": logs, "finals": finals}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return result


def run_ope(world, config, logs, finals) -> list[dict]:  # type: ignore[no-untyped-def]
    """Section 3 on one seed: every logger's log, the targets of OPE_TARGETS."""
    started = time.perf_counter()
    fresh = evaluation_contexts(world, config)
    ope_logs = {k: v for k, v in logs.items() if k in OPE_LOGGERS}
    ope_finals = {k: v for k, v in finals.items() if k in OPE_TARGETS}
    out = ope_pairs(world, config, ope_logs, ope_finals, fresh)
    print(
        f"  steady seed {config.seed} ope: {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return out


def cmd_ope(args: argparse.Namespace) -> None:
    out = Path(args.out)
    for seed in parse_seeds(args.seeds):
        path = out / f"ope-{seed}.json"
        saved = out / "logs" / f"steady-{seed}.pkl"
        if path.exists() or not saved.exists():
            continue
        with open(saved, "rb") as fh:
            state = pickle.load(fh)
        config = SimulationConfig(
            seed=seed, n_impressions=args.impressions, n_eval_pages=args.eval_pages
        )
        world = make_world(Path(args.worlds), seed, "steady")
        rows = run_ope(world, config, state["logs"], state["finals"])
        path.write_text(json.dumps({"seed": seed, "ope": rows}) + "\n")


def cmd_run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.worlds)
    for seed in parse_seeds(args.seeds):
        path = out / f"{args.world}-{seed}.json"
        if path.exists():
            continue
        started = time.perf_counter()
        logs = out / "logs" / f"steady-{seed}.pkl"
        logs.parent.mkdir(exist_ok=True)
        result = run_world(
            root, seed, args.world, args.impressions, args.eval_pages, not args.no_ope, logs
        )
        path.write_text(json.dumps(result) + "\n")
        print(
            f"{args.world} seed {seed}: {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run seeds of one world, one JSON file each")
    run.add_argument("--world", choices=("steady", "new-shelf", "drift"), required=True)
    run.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 0,1,2")
    run.add_argument("--out", required=True, help="folder of the per-seed JSON files")
    run.add_argument(
        "--worlds", default="/tmp/deepcuts-worlds", help="where simulated worlds are kept"
    )
    run.add_argument(
        "--impressions", type=int, default=50_000, help="per policy (a smoke test: fewer)"
    )
    run.add_argument("--no-ope", action="store_true", help="steady world: skip section 3")
    run.add_argument("--eval-pages", type=int, default=2000, help="fresh pages for true values")
    ope = sub.add_parser("ope", help="section 3 from the steady runs' saved logs (--no-ope)")
    ope.add_argument("--seeds", default="0-19")
    ope.add_argument("--out", required=True)
    ope.add_argument("--worlds", default="/tmp/deepcuts-worlds")
    ope.add_argument("--impressions", type=int, default=50_000)
    ope.add_argument("--eval-pages", type=int, default=2000)
    report = sub.add_parser("report", help="tables and plots from the JSON files")
    report.add_argument("--out", required=True)
    report.add_argument("--docs", default=None, help="write the PNG plots here")
    args = parser.parse_args()
    if args.command == "run":
        cmd_run(args)
    elif args.command == "ope":
        cmd_ope(args)
    else:
        from exploration_report import cmd_report  # noqa: PLC0415

        cmd_report(args)


if __name__ == "__main__":
    main()
