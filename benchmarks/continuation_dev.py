"""Compare continuation settings on playlists held out of the training playlists, never the test.

`deepcuts evaluate --task continuation` reports the test playlists of seeds 0-2; choosing a
setting by those figures would tune to the check. This script chooses on development cuts
instead: for each seed it removes that seed's 500 test playlists (as `split_continuation` draws
them), then cuts ``--playlists`` of the remaining playlists with at least 40 tracks as the
challenge cuts them (seed 1000 + the test seed, the categories given) and fits each setting on
the rest. It prints, per setting and category, R-precision and NDCG@500 (mean over seeds), the
paired difference from the first setting (mean and the smallest and largest over seeds), and
implicit's ALS (128 factors) on the same cuts for the ratio the issue asks about.

    python benchmarks/continuation_dev.py --params '{}' --params '{"min_length": 40}' \\
        [--categories "first 25" ...] [--seeds 0,1,2] [--playlists 500] [--json out.json]

Each setting is `PlaylistContinuation`'s keyword arguments as JSON (``random_state`` is the
seed). One setting and one seed take about 80 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

DATA = Path(
    os.environ.get("DEEPCUTS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
PEER = "implicit-als"


def main() -> None:
    from deepcuts.evaluation.continuation import CATEGORIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", action="append", type=json.loads, help="a setting as JSON (repeat; first: the baseline) [default: {}]"
    )  # fmt: skip
    parser.add_argument(
        "--categories", nargs="+", choices=list(CATEGORIES), default=list(CATEGORIES),
        help="the cuts [default: every category, dealt evenly]",
    )  # fmt: skip
    parser.add_argument("--seeds", default="0,1,2", help="test seeds whose playlists are removed")
    parser.add_argument("--playlists", type=int, default=500, help="development cuts per seed")
    parser.add_argument("--data", type=Path, default=DATA / "mpd-sample", help="MPD slices")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    settings = args.params or [{}]
    bad = [s for s in settings if not isinstance(s, dict) or "random_state" in s]
    if bad:
        parser.error(
            f"--params must be JSON objects without random_state (the seed sets it): {bad}"
        )
    warnings.filterwarnings("ignore", module="implicit")
    # what each fit learnt, and where it could not do as a setting asked (fewer held-out sets)
    logging.basicConfig(format="  %(message)s")
    logging.getLogger("deepcuts.models.playlist").setLevel(logging.INFO)
    figures = run(
        args.data,
        settings,
        args.categories,
        [int(s) for s in args.seeds.split(",")],
        args.playlists,
    )
    report(settings, figures)
    if args.json:
        args.json.write_text(
            json.dumps({"settings": settings, "figures": figures}, indent=1) + "\n"
        )


def run(
    path: Path, settings: list[dict], categories: list[str], seeds: list[int], n_dev: int
) -> dict:
    """``figures[name][category][metric]``: one value per seed; names are the settings'
    positions ("0", "1", ...) and the peer."""
    from deepcuts.evaluation.continuation import als_peer, category_means, split_continuation
    from deepcuts.evaluation.datasets import dataset_store
    from deepcuts.models.playlist import PlaylistContinuation
    from deepcuts.signals.ids import IdMap
    from deepcuts.signals.playlists import load_playlists

    with dataset_store("mpd", [str(path)]) as store:
        data = load_playlists(store)
    artists, names = data.artist_codes(), data.artist_names()
    figures: dict = {}

    def record(name: str, recs: np.ndarray, split) -> None:
        for cat, means in category_means(recs, split.truth, split.category).items():
            slot = figures.setdefault(name, {}).setdefault(cat, {})
            for metric in ("r_precision", "ndcg@500"):
                slot.setdefault(metric, []).append(means[metric])

    for seed in seeds:
        test = set(split_continuation(data, seed).test_playlists.tolist())
        keep = [p for p in range(len(data)) if p not in test]
        rest = dataclasses.replace(
            data,
            playlists=IdMap(data.playlists.ids[keep]),
            titles=[data.titles[p] for p in keep],
            sequences=[data.sequences[p] for p in keep],
        )
        dev = split_continuation(rest, 1000 + seed, n_dev, categories=categories)
        for k, params in enumerate(settings):
            began = time.perf_counter()
            model = PlaylistContinuation(random_state=seed, **params)
            model.fit(dev.train, titles=dev.train_titles, artists=artists, artist_names=names)
            recs, _ = model.recommend_playlists(dev.seeds, dev.titles, 500)
            record(str(k), recs, dev)
            print(
                f"seed {seed}, setting {k} {json.dumps(params)}: {time.perf_counter() - began:.0f} s",
                flush=True,
            )
        record(PEER, als_peer(dev, seed), dev)
    return figures


def report(settings: list[dict], figures: dict) -> None:
    print()
    for k, params in enumerate(settings):
        print(f"setting {k}: {json.dumps(params)}")
    for cat in figures["0"]:
        print(f"\n{cat}")
        for name in [*(str(k) for k in range(len(settings))), PEER]:
            line = f"  {name:>12}"
            for metric, got in figures[name][cat].items():
                line += f"  {metric} {np.mean(got):.4f}"
                if name not in ("0", PEER):
                    diff = np.subtract(got, figures["0"][cat][metric])
                    line += f" ({diff.mean():+.4f}, {diff.min():+.4f}..{diff.max():+.4f})"
            if name != PEER:
                peer = np.mean(figures[PEER][cat]["r_precision"])
                line += f"  {np.mean(figures[name][cat]['r_precision']) / peer:.3f}x ALS"
            print(line)


if __name__ == "__main__":
    main()
