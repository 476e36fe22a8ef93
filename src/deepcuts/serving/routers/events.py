"""`POST /v1/events` and `GET /v1/users/{user}/events`: listening events in, durably."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import ValidationError

from deepcuts.serving.deps import ERRORS, CallerDep, LiveDep, SnapshotDep
from deepcuts.serving.schemas.requests import MAX_EVENTS, EventBatch
from deepcuts.serving.schemas.responses import ErrorOut, EventsAccepted, EventsOut
from deepcuts.store.live import Event

router = APIRouter(prefix="/v1", tags=["events"])

MAX_BODY = 1 << 20  # bytes of one batch


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses={**ERRORS, 413: {"description": f"More than {MAX_EVENTS} events, or over 1 MiB", "model": ErrorOut}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")}}}},
)  # fmt: skip
async def post_events(request: Request, published: SnapshotDep, live: LiveDep, caller: CallerDep):
    """Plays (with ms played), skips, saves, bans and card clicks. Answers 202 once the whole
    batch is written to disk; an event whose (user, event_id) was already accepted is counted
    as a duplicate, not stored twice."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"the batch is {len(body)} bytes; send at most {MAX_BODY} per request")
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise HTTPException(422, f"body: not valid JSON ({exc})") from exc
    if isinstance(raw, dict) and isinstance(raw.get("events"), list) and len(raw["events"]) > MAX_EVENTS:
        raise HTTPException(413, f"events: {len(raw['events'])} in one batch; send at most {MAX_EVENTS}")
    try:
        batch = EventBatch.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}" + (f" ({exc.error_count()} problems)" if exc.error_count() > 1 else "")) from exc
    now = datetime.now(UTC)
    events = []
    for n, e in enumerate(batch.events):
        caller.require(e.user_id)
        if e.item_id not in published.item_index:
            raise HTTPException(404, f"events[{n}].item_id: no track {e.item_id!r} in the published catalogue")
        at = now if e.at is None else (e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC))
        events.append(Event(e.user_id, e.event_id, e.type, e.item_id, at, e.ms_played, e.impression_id))
    new, duplicates = await _append(request, live, events)
    return {"accepted": new, "duplicates": duplicates}


async def _append(request: Request, live, events):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(live.append_events, events)


@router.get("/users/{user}/events", response_model=EventsOut, responses=ERRORS)
def get_events(
    user: Annotated[str, Path(min_length=1, max_length=256)],
    live: LiveDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[datetime | None, Query(description="Only events before this time (ISO 8601).")] = None,
) -> dict[str, object]:
    """The listener's accepted events, newest first, whether or not the store has absorbed them."""
    caller.require(user)
    events = live.user_events(user, limit, before)
    return {"user_id": user, "events": [e.to_dict() for e in events]}
