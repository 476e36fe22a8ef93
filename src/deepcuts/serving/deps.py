"""Typed dependencies of the routes: the config, the published snapshot, the live log, the
caller's API key, and the access rule (a listener's key reaches only that listener's data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from deepcuts.serving import metrics
from deepcuts.serving.config import ServeConfig
from deepcuts.serving.schemas.responses import ErrorOut
from deepcuts.serving.writers import EventWriter, ImpressionWriter
from deepcuts.snapshots.published import Published, SnapshotReader
from deepcuts.store.live import ApiKey, LiveLog

SCHEMES = ("bearer", "token")  # "Token" is ListenBrainz's spelling


class Caller:
    """Who is asking: an API key's owner, or anyone when the service runs with --no-auth."""

    def __init__(self, key: ApiKey | None, open_access: bool = False):
        self.key = key
        self.open_access = open_access

    @property
    def is_admin(self) -> bool:
        return self.open_access or (self.key is not None and self.key.is_admin)

    def may_access(self, user_id: str) -> bool:
        return self.is_admin or (self.key is not None and self.key.user_id == user_id)

    def require(self, user_id: str) -> None:
        if not self.may_access(user_id):
            raise HTTPException(403, f"this key may not read or write listener {user_id!r}'s data")


def invalid(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape (``detail: [{loc, msg, type}]``), naming where it was."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


# The look-ups are coroutines, so FastAPI runs them on the event loop instead of handing each
# to a worker thread and back. Each is quick: app state, the snapshot in hand (loading a new
# version goes to a thread), and the key check (one indexed read of the live log, which in WAL
# mode never waits for a writer).
async def get_config(request: Request) -> ServeConfig:
    return request.app.state.config


async def get_live(request: Request) -> LiveLog:
    return request.app.state.live


async def get_impressions(request: Request) -> ImpressionWriter:
    return request.app.state.impressions


async def get_events(request: Request) -> EventWriter:
    return request.app.state.events


async def get_published(request: Request) -> Published:
    reader: SnapshotReader = request.app.state.snapshots
    published = reader.recent()
    if published is None:
        published = await run_in_threadpool(reader.current)
        metrics.SNAPSHOT.set(published.version)
    return published


async def get_caller(request: Request) -> Caller:
    config: ServeConfig = request.app.state.config
    if config.no_auth:
        return Caller(None, open_access=True)
    header = request.headers.get("authorization")
    if not header:
        raise HTTPException(
            401,
            "no API key: send `Authorization: Bearer <key>` (make one with `deepcuts keys create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in SCHEMES or not key.strip():
        raise HTTPException(401, "Authorization must be `Bearer <key>` or `Token <key>`",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    live: LiveLog = request.app.state.live
    found = live.check_key(key.strip())
    if found is None:
        raise HTTPException(
            401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return Caller(found)


ConfigDep = Annotated[ServeConfig, Depends(get_config)]
LiveDep = Annotated[LiveLog, Depends(get_live)]
ImpressionsDep = Annotated[ImpressionWriter, Depends(get_impressions)]
EventsDep = Annotated[EventWriter, Depends(get_events)]
SnapshotDep = Annotated[Published, Depends(get_published)]
CallerDep = Annotated[Caller, Depends(get_caller)]

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "No API key, or an unknown or revoked one", "model": ErrorOut},
    403: {"description": "The key may not reach this listener's data", "model": ErrorOut},
    404: {"description": "Unknown listener, track, artist or week", "model": ErrorOut},
    503: {"description": "Nothing published yet", "model": ErrorOut},
}
