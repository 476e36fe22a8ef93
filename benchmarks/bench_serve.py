"""The live service under load, against a bare FastAPI route, in the same run.

Builds (or reuses, under --dir) a published demo world (default 10,000 listeners), empties its
live log (earlier runs' pages and events), starts `deepcuts serve --workers 2` on it with an
admin key, and drives it from this machine with locust (headless, 32 concurrent users, no
wait) for --seconds per route: home, weekly, similar and events (batches of --batch plays).
Then it drives a bare FastAPI route under the same uvicorn settings (2 workers) that returns
a stored JSON page of the same size as a home page. Prints p50/p99 latency, requests/s and
errors per route, each one's throughput as a ratio of the bare route's, and events/s accepted
durably; and, on Linux, the server's CPU time per request (its processes' user and system time
over the run, from /proc, divided by the requests answered): what a request costs the server
itself, apart from how the load tool shares the cores (it still varies from run to run on a
busy machine: compare medians of alternating runs).

    python benchmarks/bench_serve.py [--users 10000] [--tracks 5000] [--seconds 60] [--clients 32]

Goals (issue 17): zero errors; home p99 <= 25 ms; home throughput >= 0.5x the bare route's;
events >= 2,000 events/s accepted durably. The load tool shares the machine's cores with the
server: quote the ratios, which both sides pay alike.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from deepcuts.serving.protocol import HTTP_PROTOCOL
from deepcuts.store.live import live_log_path

if TYPE_CHECKING:
    import pandas as pd

HERE = Path(__file__).resolve().parent
ROUTES = ("Home", "Weekly", "Similar", "Events")


def run(cmd: list[str], **kw) -> str:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    return out.stdout


def build(root: Path, users: int, tracks: int) -> Path:
    store = root / "deepcuts.duckdb"
    dc = [sys.executable, "-m", "deepcuts", "--store", str(store)]
    if (root / "deepcuts.snapshots" / "CURRENT").exists():
        print(f"reusing the published world in {root}", flush=True)
        return store
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for step in (["simulate", "--users", str(users), "--tracks", str(tracks), "--weeks", "4", "--seed", "7",
                  "--out", str(root / "world")],
                 ["ingest", "native", str(root / "world")], ["train"], ["weekly", "--week", "2026-W45"]):  # fmt: skip
        print("deepcuts", *step[:1], "...", flush=True)
        run([*dc, *step])
    t_publish = time.perf_counter()
    print(run([*dc, "publish"]).strip(), flush=True)
    print(
        f"built in {time.perf_counter() - t:.0f} s (publish {time.perf_counter() - t_publish:.0f} s)",
        flush=True,
    )
    return store


def live_log_files(store: Path) -> list[Path]:
    """The live log of the store: the SQLite file, its write-ahead log and shared memory."""
    log = live_log_path(store)
    return [log, log.with_name(log.name + "-wal"), log.with_name(log.name + "-shm")]


def empty_live_log(store: Path) -> None:
    """Every run starts from an empty live log: a reused world's log holds the pages and events
    of earlier runs, and a larger log makes its commits slower, so runs would not compare."""
    for path in live_log_files(store):
        path.unlink(missing_ok=True)


def admin_key(store: Path, env: dict[str, str]) -> str:
    dc = [sys.executable, "-m", "deepcuts", "--store", str(store)]
    return run([*dc, "keys", "create", "--admin"], env=env).strip().splitlines()[-1]


def sample_listeners(weekly_user_ids: Iterable[str], n: int = 2000) -> list[str]:
    """The listeners the load visits: ``n`` of those with a Discover Weekly, the same each run."""
    with_lists = sorted(set(weekly_user_ids))
    return random.Random(0).sample(with_lists, min(n, len(with_lists)))


def sample_tracks(item_ids: pd.Series, weekly_items: Iterable[int], n: int = 2000) -> list[str]:
    """The tracks `similar` visits: the first ``n`` that are on someone's Discover Weekly."""
    return item_ids.iloc[sorted(set(weekly_items))].tolist()[:n]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    for _ in range(600):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{cmd[:6]} did not start")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    proc.wait(30)


def group_cpu_seconds(pgid: int) -> float | None:
    """CPU seconds (user + system) used so far by the live processes of a process group (the
    server and its workers), from /proc; None where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        seen = True
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total if seen else None


def drive(
    user_class: str, host: str, seconds: int, clients: int, env: dict[str, str], out: Path,
    server: subprocess.Popen,
) -> dict:  # fmt: skip
    """Drive one route with locust; its figures, and the server's CPU time per request."""
    prefix = out / user_class
    cpu_before = group_cpu_seconds(server.pid)
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(HERE / "serve" / "locustfile.py"), user_class, "--headless",
         "-u", str(clients), "-r", str(clients), "-t", f"{seconds}s", "--host", host, "--csv", str(prefix),
         "--only-summary", "--loglevel", "ERROR"],
        env=env, check=False, capture_output=True,
    )  # fmt: skip
    cpu_after = group_cpu_seconds(server.pid)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] not in ("Aggregated", ""))
    requests = int(row["Request Count"])
    return {
        "server_cpu_ms": None
        if cpu_before is None or cpu_after is None or not requests
        else 1000 * (cpu_after - cpu_before) / requests,
        "requests": requests,
        "errors": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tracks", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch", type=int, default=50, help="Events per POST /v1/events.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "deepcuts-bench-serve"
    )
    parser.add_argument(
        "--routes",
        default=",".join(r.lower() for r in ROUTES),
        help="Which routes to drive, comma-separated (the bare route always runs) [default: all].",
    )
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    args = parser.parse_args()
    routes = [r for r in ROUTES if r.lower() in args.routes.lower().split(",")]
    if not routes:
        sys.exit(f"--routes: name one or more of {', '.join(r.lower() for r in ROUTES)}")
    if importlib.util.find_spec("locust") is None:  # before minutes of building a world
        sys.exit(
            "bench_serve.py drives the server with locust: "
            "pip install -c constraints.txt -e '.[bench]'"
        )

    root = args.dir / f"u{args.users}-t{args.tracks}"
    store = build(root, args.users, args.tracks)
    empty_live_log(store)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    dc = [sys.executable, "-m", "deepcuts", "--store", str(store)]
    key = admin_key(store, env)
    import pandas as pd

    snapshot = root / "deepcuts.snapshots"
    version = (snapshot / "CURRENT").read_text().strip()
    weekly = pd.read_parquet(snapshot / version / "weekly.parquet")
    items = pd.read_parquet(snapshot / version / "items.parquet")["item_id"]
    sample_users = sample_listeners(weekly["user_id"])
    tracks = sample_tracks(items, weekly["item"])
    load_env = {**env, "BENCH_USERS": json.dumps(sample_users), "BENCH_TRACKS": json.dumps(tracks),
                "BENCH_KEY": key, "BENCH_BATCH": str(args.batch)}  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    results: dict[str, dict] = {}

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    server = start(
        [*dc, "serve", "--port", str(port), "--workers", str(args.workers)], host + "/healthz", env
    )
    try:
        page = httpx.get(
            f"{host}/v1/users/{sample_users[0]}/home", headers={"Authorization": f"Bearer {key}"}
        ).content
        for route in routes:
            print(
                f"driving {route.lower()} for {args.seconds} s with {args.clients} clients",
                flush=True,
            )
            results[route.lower()] = drive(
                route, host, args.seconds, args.clients, load_env, out, server
            )
    finally:
        stop(server)
    (out / "page.json").write_bytes(page)
    port = free_port()
    bare_host = f"http://127.0.0.1:{port}"
    bare = start([sys.executable, "-m", "uvicorn", "serve.bare_app:create_app", "--factory", "--port", str(port),
                  "--workers", str(args.workers), "--http", HTTP_PROTOCOL, "--log-level", "warning"],
                 bare_host + "/v1/users/x/home", {**env, "BARE_PAGE": str(out / "page.json"), "PYTHONPATH": str(HERE)})  # fmt: skip
    try:
        print(f"driving the bare route for {args.seconds} s", flush=True)
        results["bare"] = drive("Bare", bare_host, args.seconds, args.clients, load_env, out, bare)
    finally:
        stop(bare)

    print(f"\n{args.users:,} listeners, {args.workers} workers, {args.clients} clients, {args.seconds} s per "
          f"route; home page {len(page):,} bytes; {os.cpu_count()} cores shared with the load tool\n")  # fmt: skip
    print(
        f"{'route':<9}{'requests':>10}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'x bare':>8}"
        f"{'server CPU ms/req':>19}"
    )
    for name, r in results.items():
        ratio = r["rps"] / results["bare"]["rps"] if results["bare"]["rps"] else float("nan")
        r["ratio_to_bare"] = ratio
        print(
            f"{name:<9}{r['requests']:>10,}{r['errors']:>8}{r['rps']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{ratio:>8.2f}"
            + ("" if r["server_cpu_ms"] is None else f"{r['server_cpu_ms']:>19.2f}")
        )
    goals = [
        f"zero errors {'met' if sum(r['errors'] for r in results.values()) == 0 else 'NOT met'}"
    ]
    if "home" in results:
        home = results["home"]
        goals += [f"home p99 {home['p99_ms']:.0f} ms (<= 25: {'met' if home['p99_ms'] <= 25 else 'NOT met'})",
                  f"home {home['ratio_to_bare']:.2f}x bare (>= 0.5: {'met' if home['ratio_to_bare'] >= 0.5 else 'NOT met'})"]  # fmt: skip
    events_per_s = results["events"]["rps"] * args.batch if "events" in results else None
    if events_per_s is not None:
        print(f"\nevents accepted durably: {events_per_s:,.0f}/s ({args.batch} per batch)")
        goals.append(f"events {events_per_s:,.0f}/s (>= 2,000: {'met' if events_per_s >= 2000 else 'NOT met'})")  # fmt: skip
    print("goals: " + "; ".join(goals))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "events_per_s": events_per_s, "args": vars(args)},
                                        default=str, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
