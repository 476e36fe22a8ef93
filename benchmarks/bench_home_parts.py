"""Where a home request's time goes, in one process, without sockets or a load tool.

On `bench_serve.py`'s published world (built under --dir if it is not there yet), it times
requests through the service's own ASGI app, 16 at a time as concurrent clients would send
them (so served pages are committed in groups, as under load): an ``async def`` route on the
same app returning a stored page of a home page's size (what the framework costs), the same
with the API-key check and the snapshot in hand, the same with home's own parameters and
dependencies resolved by FastAPI (what the route's signature costs), then with the page made and encoded
(`home_page`, `page_json`) but not logged, and ``GET /v1/users/{user}/home``. Then the parts of
a home page one by one. CPU microseconds a request or a page, median of --passes
passes over the same 2,000 listeners that `bench_serve.py` visits, with the garbage collector
set as in a serving worker (`GC_THRESHOLDS`): under Python's defaults, code that makes more
short-lived objects pays for full collections over the snapshot that the server never runs.

    python benchmarks/bench_home_parts.py [--dir DIR] [--passes 5]

`bench_serve.py` measures the served throughput; this says which part of a page to work on.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import bench_serve as bench
import pandas as pd
from fastapi import APIRouter, Request, Response

from deepcuts.bandit.impressions import served_page_row
from deepcuts.bandit.types import PageLayout
from deepcuts.serving.config import ServeConfig
from deepcuts.serving.deps import get_caller, get_published
from deepcuts.serving.main import GC_THRESHOLDS, create_app
from deepcuts.serving.pages import home_context, home_page, page_json, user_index
from deepcuts.serving.routers.home import get_home
from deepcuts.store.live import LiveLog

CONCURRENT = 16


def cpu_us(run: Callable[[], object], n: int, passes: int) -> float:
    """Median over passes of the CPU time of ``run()`` (which does ``n`` things) per thing."""
    times = []
    for _ in range(passes):
        start = time.process_time()
        run()
        times.append((time.process_time() - start) / n * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "deepcuts-bench-serve",
                        help="Where bench_serve.py's world is (or is built) [default: %(default)s].")  # fmt: skip
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tracks", type=int, default=5_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    gc.set_threshold(*GC_THRESHOLDS)  # as `served_app` sets it in each worker

    root = args.dir / f"u{args.users}-t{args.tracks}"
    store = bench.build(root, args.users, args.tracks)
    bench.empty_live_log(store)
    snapshot = root / "deepcuts.snapshots"
    version = (snapshot / "CURRENT").read_text().strip()
    users = bench.sample_listeners(
        pd.read_parquet(snapshot / version / "weekly.parquet")["user_id"]
    )
    config = ServeConfig(store=store)
    app = create_app(config)
    key, _ = LiveLog.for_store(store).create_key(admin=True)
    published = app.state.snapshots.current()
    layout = PageLayout(config.shelves, config.cards)
    at = datetime.now(UTC)
    stored = bytes(len(page_json(published, home_page(published, users[0], layout=layout, at=at))))

    probes = APIRouter()

    @probes.get("/probe/bare/{user}")
    async def bare(user: str) -> Response:
        return Response(stored, media_type="application/json")

    @probes.get("/probe/auth/{user}")
    async def auth(user: str, request: Request) -> Response:
        (await get_caller(request)).require(user)
        await get_published(request)
        return Response(stored, media_type="application/json")

    async def signature(user: str, caller, **_resolved) -> Response:
        caller.require(user)
        return Response(stored, media_type="application/json")

    # home's parameters and dependencies, for FastAPI to validate and resolve as it does home's
    signature.__signature__ = inspect.signature(get_home, eval_str=True)  # type: ignore[attr-defined]
    probes.add_api_route("/probe/signature/{user}", signature, methods=["GET"])

    @probes.get("/probe/page/{user}")
    async def page(user: str, request: Request) -> Response:
        (await get_caller(request)).require(user)
        published = await get_published(request)
        served = home_page(published, user, layout=layout, at=datetime.now(UTC))
        return Response(page_json(published, served), media_type="application/json")

    app.include_router(probes)

    async def get(path: str) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "root_path": "", "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}  # fmt: skip
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"{path}: {sent[0]['status']} {sent[1:]}")

    async def requests(route: str) -> None:
        for i in range(0, len(users), CONCURRENT):
            await asyncio.gather(*(get(route.format(u)) for u in users[i : i + CONCURRENT]))

    routes = {
        "async def route, same app": "/probe/bare/{}",
        "  + key check and snapshot": "/probe/auth/{}",
        "  the same through home's signature": "/probe/signature/{}",
        "  + home_page and page_json": "/probe/page/{}",
        "GET /v1/users/{user}/home": "/v1/users/{}/home",
    }
    n = len(users)
    print(f"{n:,} listeners of bench_serve's world, {args.passes} passes; CPU us a request\n")
    loop = asyncio.new_event_loop()
    for route in routes.values():  # every listener's first page, and warm caches
        loop.run_until_complete(requests(route))
    for name, route in routes.items():
        us = cpu_us(lambda r=route: loop.run_until_complete(requests(r)), n, args.passes)
        print(f"{name:<38}{us:>8.0f}")

    policy = published.bandit.policy(config.policy, config.epsilon)
    index = [user_index(published, u) for u in users]
    contexts = [home_context(published, u, at=at) for u in index]
    shelves = [published.shelves(u) for u in index]
    scores = [policy.card_scores(c, s) for c, s in zip(contexts, shelves, strict=True)]
    pages = [home_page(published, u, layout=layout, at=at) for u in users]
    live = app.state.live
    rows = [p.log_row for p in pages]

    passes = itertools.count()

    def commit() -> None:
        tag = next(passes)  # new page ids each pass: none is ignored as logged already
        for i in range(0, n, CONCURRENT):
            live.append_pages([(f"{r[0]}-{tag}", *r[1:]) for r in rows[i : i + CONCURRENT]])

    parts: dict[str, Callable[[], object]] = {
        "the visit's context": lambda: [home_context(published, u, at=at) for u in index],
        "card scores (reward model)": lambda: [policy.card_scores(c, s) for c, s in zip(contexts, shelves, strict=True)],
        "its rankings (draw_page)": lambda: [policy.draw_page(s, layout) for s in scores],
        "serve_page (scores, ranks, ids)": lambda: [
            policy.serve_page(c, s, layout, served_at=at) for c, s in zip(contexts, shelves, strict=True)
        ],
        "home_page (+ context, log row)": lambda: [home_page(published, u, layout=layout, at=at) for u in users],
        "  its log row (served_page_row)": lambda: [served_page_row(p.served) for p in pages],
        "the page's JSON (page_json)": lambda: [page_json(published, p) for p in pages],
        f"commit its log row, {CONCURRENT} a group": commit,
    }  # fmt: skip
    print(f"\nparts of a page ({config.shelves} shelves of {config.cards} cards); CPU us a page\n")
    for name, run in parts.items():
        print(f"{name:<34}{cpu_us(run, n, args.passes):>8.0f}")
    print(f"\n(a log row: {statistics.median(len(r[4]) for r in rows):,.0f} bytes)")


if __name__ == "__main__":
    main()
