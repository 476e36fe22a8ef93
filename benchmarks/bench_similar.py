"""Similar and radio from a published snapshot: the nearest-neighbour index against exact search.

Loads the item vectors of a store's current snapshot, builds the Voyager index `deepcuts
publish` builds for a catalogue above `--index-above` (timing the build: what a publish pays),
and answers "similar to this track" for --queries items with a vector one at a time, as
`Published.similar` does (`nearest`), by exact search (every item scored) and by the index. Prints the median
microseconds a query of each, their ratio, and the index's recall@10 of exact search's answers.

    python benchmarks/bench_similar.py --store DIR/deepcuts.duckdb [--queries 2000] [--n 10]
    python benchmarks/bench_similar.py --random 500000,64

A catalogue of 100,000 tracks: `python benchmarks/bench_serve.py --users 2000 --tracks 100000
--routes similar` builds one (about 15 minutes on 2 cores) and drives the route over HTTP.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from deepcuts.index import ExactIndex, VoyagerIndex
from deepcuts.snapshots.published import PART_FILES
from deepcuts.snapshots.versions import read_manifest, snapshot_root, version_name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="A published store.")
    source.add_argument(
        "--random", metavar="ITEMS,DIM",
        help="Random unit vectors instead (e.g. 500000,64): no structure, HNSW's hardest case.",
    )  # fmt: skip
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--n", type=int, default=10, help="Items a query asks for.")
    args = parser.parse_args()

    if args.store is not None:
        root = snapshot_root(args.store)
        manifest = read_manifest(root)
        vectors = np.load(root / version_name(manifest.version) / PART_FILES["item_vectors"])
        source = f"snapshot v{manifest.version:06d}"
    else:
        n_items, dim = (int(x) for x in args.random.split(","))
        vectors = np.random.default_rng(0).standard_normal((n_items, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        source = "random unit vectors"
    rows = np.flatnonzero(np.any(vectors != 0, axis=1))
    print(f"{source}: {len(vectors):,} items, {len(rows):,} with a "
          f"{vectors.shape[1]}-dimensional vector")  # fmt: skip

    began = time.perf_counter()
    ann = VoyagerIndex(vectors, rows=rows)
    build = time.perf_counter() - began
    exact = ExactIndex(vectors, rows=rows)
    rng = np.random.default_rng(0)
    queries = rng.choice(rows, min(args.queries, len(rows)), replace=False)

    def one(index, item: int) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        found = index.nearest(vectors[item], args.n, exclude=np.array([item]))
        return found, time.perf_counter() - t

    times: dict[str, list[float]] = {"exact": [], "voyager": []}
    hits = []
    for item in queries:  # alternating, so that both meet the same state of the machine
        truth, t_exact = one(exact, int(item))
        found, t_ann = one(ann, int(item))
        times["exact"].append(t_exact)
        times["voyager"].append(t_ann)
        hits.append(len(set(found.tolist()) & set(truth.tolist())) / max(len(truth), 1))
    med = {k: 1e6 * statistics.median(v) for k, v in times.items()}
    print(f"index built in {build:.1f} s (Voyager HNSW, M=16, ef_construction=200, all cores)")
    print(f"{len(queries):,} queries of {args.n}, median us a query: exact {med['exact']:.0f}, "
          f"voyager {med['voyager']:.0f} (exact / voyager {med['exact'] / med['voyager']:.2f}); "
          f"recall@{args.n} of exact: {np.mean(hits):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
