"""Discover Weekly for every user against bare implicit recommend, in the same run.

Simulates a world (default 100,000 users x 50,000 tracks, 1 week of listening), ingests it,
fits deepcuts' ALS (64 factors), then times for the same users and the same factors:
  - the peer: implicit's `AlternatingLeastSquares.recommend(users, rows, N=30,
    filter_already_liked_items=True)` on the model's own factors;
  - deepcuts: the whole weekly batch (every candidate source, features, ranking, filters,
    caps, diversity, explanations) with the hand-weighted blend ranker, setup included, after
    a warm-up on 64 users that pays numba's one-time compile of the kernels.
Prints users/s for both and the ratio of the weekly batch's time to the peer's, run by run, and
the median ratio over `--repeat` runs (default 3; goal <= 2.5).

    python benchmarks/bench_weekly.py [--users 100000] [--tracks 50000] [--weeks 1] [--sample N] [--workers 2] [--repeat 3]
        [--profile FILE]

`--sample` times the weekly batch (and the peer) on the first N users only. `--profile` runs
the batch once more after the timed run, in one thread under cProfile, writes the statistics
to FILE and prints where the time went (setup and the batch's stages, by cumulative time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402

from deepcuts.io import NativeImporter  # noqa: E402
from deepcuts.models.cf import make_model  # noqa: E402
from deepcuts.signals import build_interactions  # noqa: E402
from deepcuts.simulate import simulate_world  # noqa: E402
from deepcuts.store import Store  # noqa: E402
from deepcuts.surfaces.weekly import DiscoverWeekly, WeeklyConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--weeks", type=int, default=1)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--workers",
        type=int,
        default=WeeklyConfig.workers,
        help="batches built at once, in threads",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each (the ratio's median is reported)"
    )
    parser.add_argument(
        "--profile", type=Path, help="profile the batch (one thread) into this file"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        simulate_world(
            folder / "world",
            users=args.users,
            tracks=args.tracks,
            weeks=args.weeks,
            seed=0,
            audio_share=0.0,
        )
        store = Store(folder / "store.duckdb", create=True)
        importer = NativeImporter()
        for f in importer.files([str(folder / "world")]):
            importer.ingest_file(store, f)
        latest = store.conn.execute("SELECT max(played_at) FROM listens").fetchall()[0][0]
        monday = (latest + timedelta(days=7 - latest.weekday())).date()
        inter = build_interactions(store, until=datetime.combine(monday, datetime.min.time()))
        print(
            f"world: {inter.shape[0]:,} users x {inter.shape[1]:,} items, {inter.matrix.nnz:,} pairs "
            f"(set up in {time.perf_counter() - began:.0f} s)"
        )
        model = make_model("als", {"factors": 64, "iterations": 15, "random_state": 0}).fit(
            inter.matrix
        )
        users = np.arange(
            inter.shape[0] if args.sample is None else min(args.sample, inter.shape[0])
        )

        # numba compiles weekly's kernels on first use, once per install (then cached): pay
        # that on a few users first, as an install would, so the timed run measures the batch.
        config = WeeklyConfig(batch_size=args.batch_size, workers=args.workers)
        sum(1 for _ in DiscoverWeekly(store, model, inter, monday, config=config).build(users[:64]))

        peer = AlternatingLeastSquares(factors=64, random_state=0)
        peer.user_factors = model.user_factors_
        peer.item_factors = model.item_factors_
        rows = inter.matrix[users]
        ratios = []
        for run in range(1, args.repeat + 1):  # the two alternate, so both see the same noise
            started = time.perf_counter()
            peer.recommend(users, rows, N=30, filter_already_liked_items=True)
            peer_s = time.perf_counter() - started

            started = time.perf_counter()
            dw = DiscoverWeekly(store, model, inter, monday, config=config)
            setup_s = time.perf_counter() - started
            n_lists = sum(1 for _ in dw.build(users))
            weekly_s = time.perf_counter() - started
            ratios.append(weekly_s / peer_s)
            print(f"run {run} of {args.repeat}")
            print(
                f"  implicit recommend(N=30):     {len(users) / peer_s:>10,.0f} users/s ({peer_s:.1f} s)"
            )
            print(
                f"  deepcuts weekly batch:        {n_lists / weekly_s:>10,.0f} users/s ({weekly_s:.1f} s, of which setup {setup_s:.1f} s)"
            )
            print(f"  weekly time / recommend time: {weekly_s / peer_s:.2f}")
        print(
            f"weekly time / recommend time, median of {len(ratios)}: "
            f"{statistics.median(ratios):.2f} (goal <= 2.5)"
        )
        if args.profile:
            profile(store, model, inter, monday, users, args, config)


def profile(store, model, inter, monday, users, args, config) -> None:
    """The batch in one thread under cProfile: the stages by cumulative time."""
    import cProfile
    import pstats

    one = WeeklyConfig(batch_size=config.batch_size, workers=1)
    profiler = cProfile.Profile()
    profiler.enable()
    sum(1 for _ in DiscoverWeekly(store, model, inter, monday, config=one).build(users))
    profiler.disable()
    profiler.dump_stats(args.profile)
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    print(f"profile (one thread) written to {args.profile}; by cumulative time:")
    stats.print_stats(r"deepcuts|implicit|scipy/sparse/_compressed|sklearn", 35)


if __name__ == "__main__":
    main()
