"""Does exploring pay on the simulated home screen? Epsilon-greedy against greedy, seed by seed.

Not a speed benchmark: the study behind the home screen's choice of policy, run on demand.
For each seed and each examination setting (how fast attention falls with the shelf's
position and the card's), it simulates a world (400 listeners, 3,000 tracks), then serves
the same 50,000 impressions (the same contexts, candidates and reward draws) with
  - epsilon-greedy (BaRT's policy, the factorization machine, epsilon 0.1 by default),
  - greedy (the same model, never exploring),
  - uniform order with a model learning from its log on the side (epsilon 1),
and prints, per seed, each run's true expected stream rate and what each run's final model is
worth exploited greedily on 2,000 fresh pages (what it learnt, apart from what exploring cost).
The last lines give the mean and the range of epsilon-greedy minus greedy, and on how many
seeds epsilon-greedy streamed more.

    python benchmarks/home_exploration.py [--seeds 0,1,2,3] [--impressions 50000]
        [--examination 0.8/0.85 --examination 0.5/0.5] [--epsilon 0.1] [--epsilon-decay 250]
        [--position-model examination|logit] [--max-weight 2]

``--position-model`` says how the reward model treats the slot: the position-based
examination model (the default) or BaRT's additive logit bias. ``--max-weight`` clips the
inverse-propensity weights the reward model trains with (the model's default, 2).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from deepcuts.bandit.policies import make_policy  # noqa: E402
from deepcuts.bandit.reward import RewardModel  # noqa: E402
from deepcuts.simulate import simulate_world  # noqa: E402
from deepcuts.simulate.home.runs import (  # noqa: E402
    SimulationConfig,
    evaluation_contexts,
    learned_value,
    run_policy,
)
from deepcuts.simulate.home.world import HomeWorld, HomeWorldConfig  # noqa: E402


def one_seed(root: Path, seed: int, decays: tuple[float, float], args) -> dict[str, float]:
    world_dir = root / f"world-{seed}"
    if not (world_dir / "truth").is_dir():
        simulate_world(world_dir, users=400, tracks=3000, weeks=1, audio_share=0.0, seed=seed)
    home = HomeWorldConfig(seed=seed, shelf_decay=decays[0], card_decay=decays[1])
    world = HomeWorld.from_world(world_dir, home)
    config = SimulationConfig(
        n_impressions=args.impressions, seed=seed, n_eval_pages=args.eval_pages
    )
    state = config.seed * 1000 + 17  # every learner starts from the same model
    model = {"position_model": args.position_model, "max_weight": args.max_weight}
    policies = {
        "epsilon-greedy": make_policy(
            "epsilon-greedy",
            state,
            epsilon=args.epsilon,
            reward_params=model,
            epsilon_decay=args.epsilon_decay,
        ),
        "greedy": make_policy("greedy", state, reward_params=model),
        "uniform+learner": make_policy("epsilon-greedy", state, epsilon=1.0, reward_params=model),
    }
    out = {}
    for name, policy in policies.items():
        out[name] = run_policy(world, policy, config)[0].expected_rate
    fresh = evaluation_contexts(world, config)
    for name, policy in policies.items():
        out[f"learnt:{name}"] = learned_value(world, policy, config.layout, fresh)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--impressions", type=int, default=50_000)
    parser.add_argument("--eval-pages", type=int, default=2000)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument(
        "--epsilon-decay",
        type=float,
        default=None,
        help="decay epsilon-greedy's epsilon to epsilon / (1 + pages / N) (default: constant)",
    )
    parser.add_argument("--position-model", choices=("examination", "logit"), default="examination")
    parser.add_argument(
        "--max-weight",
        type=float,
        default=inspect.signature(RewardModel).parameters["max_weight"].default,
        help="clip of the reward model's inverse-propensity weights (default: the model's, 2)",
    )
    parser.add_argument(
        "--examination",
        action="append",
        help="SHELF/CARD decay of attention per position, e.g. 0.8/0.85 (the world's default)",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [tuple(float(x) for x in e.split("/")) for e in (args.examination or ["0.8/0.85"])]
    cols = ["epsilon-greedy", "greedy", "uniform+learner"]
    with tempfile.TemporaryDirectory() as tmp:
        for decays in settings:
            print(
                f"\nexamination: shelf decay {decays[0]}, card decay {decays[1]}; epsilon {args.epsilon}; "
                f"reward model position term: {args.position_model}, weights clipped at {args.max_weight:g}"
            )
            print(
                "seed  expected stream rate (eps / greedy / uniform)   eps-greedy   final model exploited (eps / greedy / uniform log)"
            )
            diffs = []
            for seed in seeds:
                started = time.perf_counter()
                r = one_seed(Path(tmp), seed, decays, args)
                diffs.append(r["epsilon-greedy"] - r["greedy"])
                rates = " / ".join(f"{r[c]:.4f}" for c in cols)
                learnt = " / ".join(f"{r['learnt:' + c]:.4f}" for c in cols)
                print(f"{seed:>4}  {rates}           {diffs[-1]:+.4f}      {learnt}", flush=True)
                print(f"  seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
            d = np.array(diffs)
            print(
                f"epsilon-greedy - greedy: mean {d.mean():+.4f}, median {np.median(d):+.4f}, "
                f"range [{d.min():+.4f}, {d.max():+.4f}]; epsilon-greedy ahead on {int((d > 0).sum())} of {len(d)} seeds"
            )


if __name__ == "__main__":
    main()
