"""`POST /v1/events` and `GET /v1/users/{user}/events`: listening events in, durably."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from deepcuts.serving.deps import ERRORS, CallerDep, EventsDep, LiveDep, SnapshotDep
from deepcuts.serving.schemas.requests import MAX_EVENTS, EventBatch
from deepcuts.serving.schemas.responses import ErrorOut, EventsAccepted, EventsOut
from deepcuts.store.live import Event

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    responses={
        **ERRORS,
        413: {"description": f"More than {MAX_EVENTS} events in one batch", "model": ErrorOut},
    },
)
async def post_events(
    batch: EventBatch, published: SnapshotDep, writer: EventsDep, caller: CallerDep
) -> dict[str, int]:
    """Plays (with ms played), skips, saves, bans and card clicks. Answers 202 once the whole
    batch is written to disk; an event whose (user, event_id) was already accepted is counted
    as a duplicate, not stored twice."""
    if len(batch.events) > MAX_EVENTS:
        raise HTTPException(
            413, f"events: {len(batch.events)} in one batch; send at most {MAX_EVENTS}"
        )
    now = datetime.now(UTC)
    events = []
    for n, e in enumerate(batch.events):
        caller.require(e.user_id)
        if e.item_id not in published.item_index:
            raise HTTPException(
                404, f"events[{n}].item_id: no track {e.item_id!r} in the published catalogue"
            )
        at = now if e.at is None else (e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC))
        events.append(Event(e.user_id, e.event_id, e.type, e.item_id, at, e.ms_played if e.type in ("play", "skip") else None,
                            e.impression_id))  # fmt: skip
    new, duplicates = await writer.append(events)
    return {"accepted": new, "duplicates": duplicates}


@router.get("/users/{user}/events", response_model=EventsOut, responses=ERRORS)
def get_events(
    user: Annotated[str, Path(min_length=1, max_length=256)],
    live: LiveDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        datetime | None, Query(description="Only events before this time (ISO 8601).")
    ] = None,
) -> dict[str, object]:
    """The listener's accepted events, newest first, whether or not the store has absorbed them."""
    caller.require(user)
    events = live.user_events(user, limit, before)
    return {"user_id": user, "events": [e.to_dict() for e in events]}
