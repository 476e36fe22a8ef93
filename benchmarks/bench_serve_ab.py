"""A route (home by default) of two versions of deepcuts side by side, driven at the same time.

On a shared, noisy machine two runs of `bench_serve.py` one after the other can differ by more
than a change does. Here the checkout under test and a baseline (another checkout's ``src``
folder, e.g. a `git worktree` of an earlier commit) each serve their own copy of the same
published world (`deepcuts serve --workers 2`), and two locust runs drive both at once with
the same listeners, so whatever else the machine does falls on both alike. Prints, for each,
requests/s, p50/p99 latency, errors and the server's CPU time per request, and the ratios.

    git worktree add --detach ../baseline <commit>
    python benchmarks/bench_serve_ab.py --baseline-src ../baseline/src [--route home] [--seconds 40] [--runs 2]

The world is `bench_serve.py`'s (built under --dir if it is not there yet); the baseline's copy
is made beside it once. Both must read the same snapshot and live-log formats.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import bench_serve as bench
import pandas as pd

ROUTES = ("home", "weekly", "similar", "events")  # bench_serve's locust users


def _drive_into(figures: list[dict], route: str, *drive_args) -> None:
    figures.append(bench.drive(route.capitalize(), *drive_args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, required=True,
                        help="The baseline's `src` folder (it goes first on PYTHONPATH).")  # fmt: skip
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "deepcuts-bench-serve",
                        help="Where bench_serve.py's world is (or is built) [default: %(default)s].")  # fmt: skip
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tracks", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=40, help="Each run's length [default: 40].")
    parser.add_argument("--clients", type=int, default=16,
                        help="Locust clients for each server [default: 16, 32 in all].")  # fmt: skip
    parser.add_argument("--runs", type=int, default=2, help="Runs, side by side [default: 2].")
    parser.add_argument("--route", choices=ROUTES, default="home",
                        help="Which route to drive [default: home].")  # fmt: skip
    args = parser.parse_args()
    if not (args.baseline_src / "deepcuts" / "__init__.py").exists():
        parser.error(f"--baseline-src: no deepcuts package in {args.baseline_src}")
    if importlib.util.find_spec("locust") is None:
        parser.error("locust is not installed: pip install -c constraints.txt -e '.[bench]'")

    root = args.dir / f"u{args.users}-t{args.tracks}"
    store = bench.build(root, args.users, args.tracks)
    copy = args.dir / f"u{args.users}-t{args.tracks}-baseline"
    if not (copy / "deepcuts.snapshots" / "CURRENT").exists():
        shutil.rmtree(copy, ignore_errors=True)
        live = {p.name for p in bench.live_log_files(store)}
        shutil.copytree(root, copy, ignore=lambda _d, names: [n for n in names if n in live])
    stores = {"this": store, "baseline": copy / store.name}
    paths = {"this": str(Path(__file__).resolve().parents[1] / "src"),
             "baseline": str(args.baseline_src.resolve())}  # fmt: skip

    snapshot = root / "deepcuts.snapshots"
    version = (snapshot / "CURRENT").read_text().strip()
    weekly = pd.read_parquet(snapshot / version / "weekly.parquet")
    sample = bench.sample_listeners(weekly["user_id"])
    items = pd.read_parquet(snapshot / version / "items.parquet")["item_id"]
    tracks = bench.sample_tracks(items, weekly["item"])
    figures: dict[str, list[dict]] = {name: [] for name in stores}
    for run in range(1, args.runs + 1):
        servers, hosts, envs, outs = {}, {}, {}, {}
        try:
            for name, path in stores.items():
                bench.empty_live_log(path)
                env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": paths[name]}
                dc = [sys.executable, "-m", "deepcuts", "--store", str(path)]
                key = bench.admin_key(path, env)
                envs[name] = {**env, "BENCH_USERS": json.dumps(sample),
                              "BENCH_TRACKS": json.dumps(tracks), "BENCH_KEY": key}  # fmt: skip
                port = bench.free_port()
                hosts[name] = f"http://127.0.0.1:{port}"
                servers[name] = bench.start(
                    [*dc, "serve", "--port", str(port), "--workers", "2"],
                    hosts[name] + "/healthz",
                    env,
                )
                outs[name] = Path(tempfile.mkdtemp(prefix=f"bench-serve-ab-{name}-"))
            print(
                f"run {run}: driving {args.route} on both for {args.seconds} s, "
                f"{args.clients} clients each",
                flush=True,
            )
            threads = [
                threading.Thread(
                    target=_drive_into,
                    args=(
                        figures[name],
                        args.route,
                        hosts[name],
                        args.seconds,
                        args.clients,
                        envs[name],
                        outs[name],
                        servers[name],
                    ),
                )  # fmt: skip
                for name in stores
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for server in servers.values():
                bench.stop(server)
        for name in stores:
            r = figures[name][-1]
            cpu = (
                ""
                if r["server_cpu_ms"] is None
                else f"  server CPU {r['server_cpu_ms']:.2f} ms/req"
            )
            print(f"  {name:<9}{r['requests']:>8,} requests {r['errors']:>3} errors {r['rps']:>8.1f} req/s"
                  f"  p50 {r['p50_ms']:.0f} / p99 {r['p99_ms']:.0f} ms{cpu}", flush=True)  # fmt: skip
    pairs = list(zip(figures["this"], figures["baseline"], strict=True))
    rps = [t["rps"] / b["rps"] for t, b in pairs]
    print(f"this / baseline, run by run: {', '.join(f'{r:.3f}' for r in rps)}x req/s "
          f"(median {statistics.median(rps):.3f}x)")  # fmt: skip
    p99 = [t["p99_ms"] / b["p99_ms"] for t, b in pairs]
    print(f"this / baseline, run by run: {', '.join(f'{r:.3f}' for r in p99)}x p99 latency "
          f"(median {statistics.median(p99):.3f}x)")  # fmt: skip
    if all(t["server_cpu_ms"] and b["server_cpu_ms"] for t, b in pairs):
        cpu = [t["server_cpu_ms"] / b["server_cpu_ms"] for t, b in pairs]
        print(f"this / baseline, run by run: {', '.join(f'{c:.3f}' for c in cpu)}x server CPU a "
              f"request (median {statistics.median(cpu):.3f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
