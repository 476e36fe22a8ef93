"""The service: `create_app` wires the routers, the snapshot reader and the live log;
`served_app` is what `deepcuts serve` runs in each worker.

A request reads the published snapshot (loaded once per version), runs the policy and appends
to the live log; it never trains, saves a model or opens the DuckDB store, so batch jobs keep
the store while the service runs.
"""

from __future__ import annotations

import gc
import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from deepcuts import __version__
from deepcuts.bandit.types import BanditInputError
from deepcuts.serving import metrics
from deepcuts.serving.config import ServeConfig
from deepcuts.serving.pages import NotFound
from deepcuts.serving.routers import (
    events,
    health,
    home,
    listenbrainz,
    playlists,
    tracks,
    web,
    weekly,
)
from deepcuts.serving.writers import EventWriter, ImpressionWriter
from deepcuts.snapshots.published import SnapshotReader
from deepcuts.snapshots.versions import SnapshotError, snapshot_root
from deepcuts.store.live import LiveLog

log = logging.getLogger(__name__)

# A serving worker's garbage collector thresholds (CPython's default: 700, 10, 10). A loaded
# snapshot of 10,000 listeners and the shelves made from it hold 100,000-370,000 objects the
# collector tracks. With a young generation of 700, the objects of requests in flight outlived
# young collections, piled up as old ones and set off full collections over all of it: in one
# `bench_serve.py` run (home, weekly, similar, events; 40 s each, 32 clients) the two workers
# ran 18 and 27 full collections of 30-320 ms (gc.callbacks): 20 of them while home pages were
# asked for, 23 while events were posted.
# A request's objects die with it; with a young generation of 50,000 no full collection ran in
# 80 s of home and events.
GC_THRESHOLDS = (50_000, 10, 10)


def served_app() -> FastAPI:
    """`create_app` in a process tuned to serve (`GC_THRESHOLDS`): uvicorn's factory."""
    gc.set_threshold(*GC_THRESHOLDS)
    return create_app()


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app (``config`` defaults to what `deepcuts serve` put in the environment)."""
    config = config or ServeConfig.from_env()
    app = FastAPI(
        title="deepcuts",
        version=__version__,
        description="Personalised music recommendation: home shelves ordered by a contextual "
        "bandit, Discover Weekly, similar tracks, radio and search, and listening events in.",
    )
    app.state.config = config
    app.state.live = LiveLog.for_store(config.store)
    app.state.impressions = ImpressionWriter(app.state.live)
    app.state.events = EventWriter(app.state.live)
    app.state.snapshots = SnapshotReader(snapshot_root(config.store))
    for module in (home, weekly, tracks, playlists, events, listenbrainz):
        app.include_router(module.router)
    app.include_router(health.router)
    app.include_router(web.router)

    app.add_middleware(metrics.RequestMetrics)

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(SnapshotError)
    async def unpublished(_request: Request, exc: SnapshotError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(BanditInputError)
    async def bad_input(_request: Request, exc: BanditInputError) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"type": "value_error", "loc": [], "msg": str(exc)}]}, status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    try:
        version = app.state.snapshots.current().version
        metrics.SNAPSHOT.set(version)
    except SnapshotError as exc:
        log.warning("%s", exc)
    return app
