"""Speed of playlist continuation on the real MPD sample (../shared/data/mpd-sample).

1. One continuation of 500 tracks from a 25-track playlist, after loading (goal: under 20 ms
   median): `continue_playlist` on the 100 "first 25" test playlists of seed 0, with their
   titles (compared by TF-IDF: the model uses MiniLM only below 10 seed tracks) and without,
   reasons included, against implicit's ALS (128 factors) recommending 500 for the same seeds
   with the user folded in (`recalculate_user=True`), measured in the same run. For the cost of
   MiniLM, also the 100 "title + first 1" playlists (their titles encoded at each call).
2. The whole 500-playlist evaluation of one seed (goal: under 2 minutes): `evaluate_continuation`
   with deepcuts alone (fit with the blend learnt on held-out playlists, then 500
   continuations), and with every peer as `deepcuts evaluate --task continuation` runs it.

    .venv/bin/python benchmarks/bench_continuation.py [--json out.json] [--skip-evaluation]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

DATA = Path(
    os.environ.get("DEEPCUTS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
MPD = DATA / "mpd-sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--skip-evaluation", action="store_true", help="only the single continuation"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="implicit")

    from implicit.cpu.als import AlternatingLeastSquares

    from deepcuts.evaluation.continuation import (
        CATEGORIES,
        evaluate_continuation,
        split_continuation,
    )
    from deepcuts.evaluation.datasets import dataset_store
    from deepcuts.models.playlist import PlaylistContinuation
    from deepcuts.signals.playlists import load_playlists
    from deepcuts.surfaces.continuation import Continuer, continue_playlist

    figures: dict = {"data": str(MPD)}
    t0 = time.perf_counter()
    with dataset_store("mpd", [str(MPD)]) as store:
        data = load_playlists(store)
    figures["load_s"] = time.perf_counter() - t0
    split = split_continuation(data, seed=0)
    t0 = time.perf_counter()
    model = PlaylistContinuation(random_state=0).fit(
        split.train,
        titles=split.train_titles,
        artists=data.artist_codes(),
        artist_names=data.artist_names(),
    )
    figures["fit_s"] = time.perf_counter() - t0
    continuer = Continuer(data, model, {})
    rows = np.flatnonzero(split.category == list(CATEGORIES).index("first 25"))
    ids = data.items.ids
    seeds = [
        [str(ids[i]) for i in split.seeds[r].indices[np.argsort(split.seeds[r].data)]] for r in rows
    ]
    titles = [split.titles[r] for r in rows]
    continue_playlist(continuer, title=titles[0], tracks=seeds[0], n=500)  # loads MiniLM once

    def timed(call) -> list[float]:
        out = []
        for k in range(len(rows)):
            t = time.perf_counter()
            call(k)
            out.append((time.perf_counter() - t) * 1000)
        return out

    with_title = timed(
        lambda k: continue_playlist(continuer, title=titles[k], tracks=seeds[k], n=500)
    )
    no_title = timed(lambda k: continue_playlist(continuer, tracks=seeds[k], n=500))
    ones = np.flatnonzero(split.category == list(CATEGORIES).index("title + first 1"))
    one_seed = [[str(ids[i]) for i in split.seeds[r].indices] for r in ones]
    one_ms = [0.0] * len(ones)
    for k, r in enumerate(ones):
        t = time.perf_counter()
        continue_playlist(continuer, title=split.titles[r], tracks=one_seed[k], n=500)
        one_ms[k] = (time.perf_counter() - t) * 1000
    binary = (split.train > 0).astype(np.float32)
    als = AlternatingLeastSquares(factors=128, random_state=0)
    als.fit(binary, show_progress=False)
    seed_rows = (split.seeds[rows] > 0).astype(np.float32).tocsr()
    als_ms = timed(
        lambda k: als.recommend(
            0, seed_rows[k], N=500, recalculate_user=True, filter_already_liked_items=True
        )
    )
    figures["single_continuation_ms"] = {
        "playlists": len(rows),
        "deepcuts_with_title_median": statistics.median(with_title),
        "deepcuts_without_title_median": statistics.median(no_title),
        "implicit_als_fold_in_median": statistics.median(als_ms),
        "ratio_with_title_to_als": statistics.median(with_title) / statistics.median(als_ms),
        "deepcuts_title_and_1_track_minilm_median": statistics.median(one_ms),
        "goal_ms": 20,
    }
    print(
        f"loading the MPD sample: {figures['load_s']:.1f} s; fitting (blend learnt): {figures['fit_s']:.1f} s"
    )
    s = figures["single_continuation_ms"]
    print(f"one continuation of 500 from 25 tracks, median of {len(rows)}: "
          f"{s['deepcuts_with_title_median']:.1f} ms with title (TF-IDF), "
          f"{s['deepcuts_without_title_median']:.1f} ms without; implicit ALS fold-in + top 500: "
          f"{s['implicit_als_fold_in_median']:.1f} ms (ratio {s['ratio_with_title_to_als']:.2f}); "
          f"title + 1 track (MiniLM encodes the title): {s['deepcuts_title_and_1_track_minilm_median']:.1f} ms")  # fmt: skip
    if not args.skip_evaluation:
        t0 = time.perf_counter()
        evaluate_continuation(data, seeds=[0], models=("deepcuts",))
        alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate_continuation(data, seeds=[0])
        everything = time.perf_counter() - t0
        figures["evaluation_one_seed_s"] = {
            "deepcuts_alone": alone,
            "with_every_peer": everything,
            "goal_s": 120,
        }
        print(f"500-playlist evaluation of one seed: deepcuts alone {alone:.1f} s, "
              f"with every peer {everything:.1f} s (goal 120 s)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
