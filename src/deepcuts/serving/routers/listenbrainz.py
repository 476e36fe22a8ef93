"""ListenBrainz's API under `/1/`: scrobbles in, listens, love and hate, recommendations and the
"created for you" playlists out, for the clients and tools that speak it (Navidrome's
``ListenBrainz.BaseURL``, liblistenbrainz, Explo, naviList).

Paths, payloads and errors (``{"code": 400, "error": "..."}``) are ListenBrainz's; the token is
a deepcuts API key (``Authorization: Token <key>``), and ListenBrainz's user name is the deepcuts
listener id: a listener's key acts as that listener and reaches only their data. The logic is in
`deepcuts.serving.listenbrainz`. These routes follow ListenBrainz's documentation rather than
deepcuts' OpenAPI (their bodies are read as ListenBrainz reads them), so they are left out of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from deepcuts.serving import listenbrainz as lb
from deepcuts.serving.deps import (
    Caller,
    CallerDep,
    EventsDep,
    LiveDep,
    SnapshotDep,
    get_caller,
    get_published,
)
from deepcuts.serving.pages import NotFound
from deepcuts.serving.schemas.listenbrainz import (
    FeedbackOut,
    ListensOut,
    PlaylistOut,
    PlaylistsOut,
    RecommendationsOut,
    StatusOut,
    TokenOut,
)
from deepcuts.snapshots.published import Published
from deepcuts.snapshots.versions import SnapshotError
from deepcuts.store.live import Event

log = logging.getLogger(__name__)

DEFAULT_COUNT = 25  # ListenBrainz's default page size
MAX_COUNT = 1000


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "error": message}, status_code=status, headers=headers)


class LBRoute(APIRoute):
    """A route whose every error answers in ListenBrainz's shape."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except lb.LBError as exc:
                return _error(exc.status, exc.message)
            except HTTPException as exc:
                return _error(exc.status_code, str(exc.detail), exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
                return _error(400, f"Invalid {where} argument: {first.get('msg')}")
            except NotFound as exc:
                return _error(404, str(exc))
            except SnapshotError as exc:
                return _error(503, str(exc))

        return answer


router = APIRouter(prefix="/1", tags=["listenbrainz"], route_class=LBRoute, include_in_schema=False)

UserPath = Annotated[str, Path(min_length=1, max_length=256)]
Count = Annotated[int, Query(ge=0, le=MAX_COUNT)]
Offset = Annotated[int, Query(ge=0)]


async def json_body(request: Request) -> tuple[Any, int]:
    """The request's JSON document (whatever its content type says, as ListenBrainz reads it)
    and its size in bytes."""
    raw = await request.body()
    if len(raw) > lb.MAX_LISTENS * lb.MAX_LISTEN_BYTES:
        raise lb.LBError(400, f"Payload too large. Payload cannot exceed {lb.MAX_LISTENS * lb.MAX_LISTEN_BYTES} bytes")  # fmt: skip
    try:
        return json.loads(raw.decode("utf-8")), len(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise lb.LBError(400, f"Cannot parse JSON document: {exc}") from None


BodyDep = Annotated[tuple[Any, int], Depends(json_body)]


async def maybe_published(request: Request) -> Published | None:
    """The published snapshot, or None before the first `deepcuts publish` (scrobbles are
    taken all the same)."""
    try:
        return await get_published(request)
    except SnapshotError:
        return None


MaybePublished = Annotated[Published | None, Depends(maybe_published)]


def listener(caller: Caller) -> str:
    """Whose listens a key submits: the listener the key is for."""
    if caller.key is None or caller.key.user_id is None:
        raise lb.LBError(
            400,
            "this key is not a listener's: submit with the key of the listener whose listens "
            "these are (make one with `deepcuts keys create --user LISTENER`)",
        )
    return caller.key.user_id


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise lb.LBError(400, "Invalid JSON document submitted. Top level of JSON document should be a json object.")  # fmt: skip
    return data


# -- scrobbles in -------------------------------------------------------------------------
@router.post("/submit-listens", response_model=StatusOut)
async def submit_listens(
    body: BodyDep,
    published: MaybePublished,
    live: LiveDep,
    writer: EventsDep,
    caller: CallerDep,
) -> dict[str, str]:
    """Listens (``single`` or ``import``) become plays through the same durable path as
    ``POST /v1/events`` (its writer: on disk, in a group with other batches, before the
    answer); ``playing_now`` is kept as the listener's current track (not a listen)."""
    user_id = listener(caller)
    listen_type, listens = lb.check_submission(*body)
    if listen_type == "playing_now":
        now = datetime.now(UTC)
        listen = {"track_metadata": listens[0]["track_metadata"], "user_name": user_id,
                  "playing_now": True}  # fmt: skip
        until = lb.playing_now_until(listens[0], now)
        # a thread: the write may wait for another process's lock, the event loop must not
        await run_in_threadpool(live.set_playing_now, user_id, listen, until)
        return {"status": "ok"}
    events, tracks = lb.listen_events(published, user_id, listens)
    new, duplicates = await writer.append(events, tracks)
    log.info("listens from %s: %d new, %d already had", user_id, new, duplicates)
    return {"status": "ok"}


@router.get("/validate-token", response_model=TokenOut, response_model_exclude_none=True)
def validate_token(request: Request, live: LiveDep, token: str | None = None) -> dict[str, Any]:
    """Whether a key is valid, and whose it is (ListenBrainz's answer: 200 either way)."""
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    key = value.strip() if scheme.lower() in ("token", "bearer") else (token or "")
    if not key:
        raise lb.LBError(400, "You need to provide an Authorization token.")
    found = live.check_key(key)
    if found is None:
        return {"code": 200, "message": "Token invalid.", "valid": False}
    return {"code": 200, "message": "Token valid.", "valid": True,
            "user_name": found.user_id or "admin"}  # fmt: skip


@router.post("/delete-listen", response_model=StatusOut)
def delete_listen(body: BodyDep, live: LiveDep, caller: CallerDep) -> dict[str, str]:
    """Forget one listen, named by its ``listened_at`` and ``recording_msid`` (as the listens
    read back give them); one the store absorbed already leaves it at the next learn job."""
    user_id = listener(caller)
    data = _object(body[0])
    if "listened_at" not in data:
        raise lb.LBError(400, "Listen timestamp missing.")
    try:
        listened_at = int(data["listened_at"])
        datetime.fromtimestamp(listened_at, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise lb.LBError(400, f"{data['listened_at']}: Listen timestamp invalid.") from None
    if "recording_msid" not in data:
        raise lb.LBError(400, "Recording MSID missing.")
    if not lb.is_uuid(data["recording_msid"]):
        raise lb.LBError(400, f"{data['recording_msid']}: Recording MSID format invalid.")
    found = live.delete_event(user_id, f"lb:{listened_at}:{data['recording_msid']}")
    log.info("delete-listen %s %s: %s", user_id, listened_at, "deleted" if found else "not found")
    return {"status": "ok"}


# -- listens out --------------------------------------------------------------------------
@router.get("/user/{user}/listens", response_model=ListensOut, response_model_exclude_none=True)
def get_listens(
    user: UserPath,
    published: MaybePublished,
    live: LiveDep,
    caller: CallerDep,
    count: Count = DEFAULT_COUNT,
    max_ts: Offset | None = None,
    min_ts: Offset | None = None,
) -> dict[str, Any]:
    """The listener's listens that the service took (ListenBrainz's or ``/v1/events`` plays),
    newest first; ``max_ts`` / ``min_ts`` page by time (exclusive), as ListenBrainz does."""
    caller.require(user)
    if max_ts is not None and min_ts is not None:
        raise lb.LBError(400, "You may only specify max_ts or min_ts, not both.")
    at = lambda ts: None if ts is None else datetime.fromtimestamp(ts, UTC)  # noqa: E731
    events = live.user_events(user, count, at(max_ts), after=at(min_ts), types=lb.LISTEN_EVENTS,
                              oldest_first=min_ts is not None)  # fmt: skip
    if min_ts is not None:
        events.reverse()
    span = live.event_range(user, lb.LISTEN_EVENTS)
    payload: dict[str, Any] = {
        "count": len(events),
        "user_id": user,
        "listens": lb.render_listens(published, live, user, events),
        "latest_listen_ts": None if span is None else int(span[1].timestamp()),
        "oldest_listen_ts": None if span is None else int(span[0].timestamp()),
    }
    return {"payload": payload}


@router.get("/user/{user}/playing-now", response_model=ListensOut, response_model_exclude_none=True)  # fmt: skip
def get_playing_now(user: UserPath, live: LiveDep, caller: CallerDep) -> dict[str, Any]:
    """What the listener's player said it is playing, while that track lasts."""
    caller.require(user)
    listen = live.playing_now(user)
    listens = [] if listen is None else [listen]
    return {"payload": {"count": len(listens), "user_id": user, "playing_now": True,
                        "listens": listens}}  # fmt: skip


# -- love and hate ------------------------------------------------------------------------
@router.post("/feedback/recording-feedback", response_model=StatusOut)
def recording_feedback(
    body: BodyDep, published: SnapshotDep, live: LiveDep, caller: CallerDep
) -> dict[str, str]:
    """Love (``score`` 1: a save), hate (-1: a ban) or neither (0: the love is undone, and a
    hate the store has not absorbed yet is withdrawn) of a recording, by ``recording_mbid``
    (an MBID, or a deepcuts id as the recommendations give it) or ``recording_msid``."""
    user_id = listener(caller)
    data = _object(body[0])
    if ("recording_msid" not in data and "recording_mbid" not in data) or "score" not in data:
        raise lb.LBError(400, "JSON document must contain either recording_msid or recording_mbid, and score top level keys")  # fmt: skip
    if set(data) - {"recording_msid", "recording_mbid", "score"}:
        raise lb.LBError(400, "JSON document may only contain recording_msid, recording_mbid and score top level keys")  # fmt: skip
    score = data["score"]
    if isinstance(score, bool) or score not in (-1, 0, 1):
        raise lb.LBError(400, "Invalid JSON document submitted: score: Score can have a value of 1, 0 or -1.")  # fmt: skip
    item = lb.feedback_item(published, live, data)
    now = datetime.now(UTC)
    kind = {1: "save", -1: "ban", 0: "unsave"}[score]
    if score == 0:
        for e in live.user_events(user_id, None, types=("ban",)):
            if e.item_id == item and not e.absorbed:
                live.delete_event(user_id, e.event_id)
    event_id = f"lbfb:{lb.msid(item)}:{time.time_ns()}"
    live.append_events([Event(user_id, event_id, kind, item, now)])
    return {"status": "ok"}


@router.get("/feedback/user/{user}/get-feedback", response_model=FeedbackOut)
def get_feedback(
    user: UserPath,
    published: SnapshotDep,
    live: LiveDep,
    caller: CallerDep,
    score: int | None = None,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
    metadata: bool = False,
) -> dict[str, Any]:
    """The listener's loves and hates now, newest first (``score`` 1 or -1 for one kind)."""
    caller.require(user)
    if score and score not in (-1, 1):
        raise lb.LBError(400, "Score can have a value of 1 or -1.")
    state = [s for s in lb.feedback_state(live, user) if not score or s[1] == score]
    page = state[offset : offset + count]
    kept = live.tracks(i for i, _, _ in page) if metadata else {}
    feedback = [
        {"created": int(at.timestamp()), "recording_mbid": lb.recording_key(item),
         "recording_msid": lb.msid(item), "score": s, "user_id": user,
         "track_metadata": lb.track_metadata(published, item, kept.get(item)) if metadata else None}
        for item, s, at in page
    ]  # fmt: skip
    return {"feedback": feedback, "count": len(feedback), "total_count": len(state),
            "offset": offset}  # fmt: skip


# -- recommendations and playlists out ----------------------------------------------------
@router.get("/cf/recommendation/user/{user}/recording", response_model=RecommendationsOut)
def get_recommendations(
    user: UserPath,
    published: SnapshotDep,
    live: LiveDep,
    caller: CallerDep,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
    artist_type: str = "raw",
):
    """deepcuts' recommendations in ListenBrainz's shape: ``payload.mbids[]`` with
    ``recording_mbid`` (the deepcuts id of a track without one) and ``score``; 204 where the
    listener has no taste vector yet."""
    caller.require(user)
    found = lb.recommendations(published, live, user)
    if not found:
        return Response(status_code=204)
    page = found[offset : offset + count]
    return {
        "payload": {
            "mbids": [
                {"recording_mbid": lb.recording_key(i), "score": round(s, 6)} for i, s in page
            ],
            "entity": "recording",
            "user_name": user,
            "model_id": f"deepcuts-snapshot-{published.version}",
            "model_url": None,
            "last_updated": int(published.manifest.created_at.timestamp()),
            "count": len(page),
            "total_mbid_count": len(found),
            "offset": offset,
        }
    }


async def public_caller(request: Request) -> Caller:
    """Who reads a created-for playlist: anyone without an Authorization header, as on
    ListenBrainz, where these playlists are public and the tools that mirror them (Explo,
    naviList, Navidrome's plugins) send no token; a key that is sent is checked as anywhere."""
    if request.headers.get("authorization") is None:
        return Caller(None, open_access=True)
    return await get_caller(request)


PublicCallerDep = Annotated[Caller, Depends(public_caller)]


@router.get("/user/{user}/playlists/createdfor", response_model=PlaylistsOut)
def get_created_for(
    user: UserPath,
    published: SnapshotDep,
    caller: PublicCallerDep,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The playlists made for the listener, newest first, without their tracks: each week's
    Discover Weekly (``source_patch`` ``weekly-exploration``, as ListenBrainz's own)."""
    caller.require(user)
    weeks = lb.weekly_weeks(published, user)
    playlists = [lb.weekly_jspf(published, user, w, with_tracks=False)
                 for w in weeks[offset : offset + count]]  # fmt: skip
    return {"playlists": playlists, "playlist_count": len(weeks), "count": count,
            "offset": offset}  # fmt: skip


@router.get("/playlist/{playlist_mbid}", response_model=PlaylistOut)
def get_playlist(
    playlist_mbid: str, published: SnapshotDep, caller: PublicCallerDep
) -> dict[str, Any]:
    """A whole playlist as JSPF: its tracks with ``identifier`` (recording URLs), ``title``,
    ``creator``, ``album``, ``duration``. Another listener's is not found, as ListenBrainz
    answers for a private playlist."""
    if not lb.is_uuid(playlist_mbid):
        raise lb.LBError(400, "Provided playlist ID is invalid.")
    found = lb.find_weekly(published, playlist_mbid)
    if found is None or not caller.may_access(found[0]):
        raise lb.LBError(404, f"Cannot find playlist: {playlist_mbid}")
    return lb.weekly_jspf(published, found[0], found[1], with_tracks=True)
