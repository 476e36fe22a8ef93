"""What the API answers."""

from __future__ import annotations

import json

from fastapi import Response
from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, naming the field or id.")


class CardOut(BaseModel):
    position: int
    impression_id: str = Field(description="Send it back with the events that answer this card.")
    item_id: str
    kind: str
    name: str
    artist_id: str | None
    artist: str | None
    propensity: float = Field(
        description="P(this card of this shelf in this slot) under the policy."
    )
    card_propensity: float


class ShelfOut(BaseModel):
    position: int
    shelf_id: str
    shelf_type: str
    title: str = Field(description="The explanation: why these cards are here.")
    shelf_propensity: float
    cards: list[CardOut]


class ContextOut(BaseModel):
    hour: int
    weekday: int
    device: str
    country: str
    has_user_vector: bool
    session_genre: str | None = Field(
        None, description="What the listener's current session plays most."
    )
    session_plays: int | None = None


class PolicyOut(BaseModel):
    policy_id: str
    version: str
    epsilon: float | None = None


class HomeOut(BaseModel):
    page_id: str
    user_id: str
    served_at: str | None
    policy: PolicyOut
    snapshot_version: int
    context: ContextOut
    candidate_shelves: int
    shelves: list[ShelfOut]


class TrackOut(BaseModel):
    position: int
    item_id: str
    name: str | None
    artist: str | None
    album: str | None
    duration_ms: int | None
    reason: str | None
    score: float | None


class WeeklyOut(BaseModel):
    user_id: str
    week: str
    title: str
    annotation: str
    tracks: list[TrackOut]


class ItemOut(BaseModel):
    item_id: str
    kind: str
    name: str
    artist_id: str | None
    artist: str | None
    score: float


class ItemsOut(BaseModel):
    title: str
    items: list[ItemOut]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events written durably now.")
    duplicates: int = Field(description="Events whose id was already logged (counted once).")


class EventOut(BaseModel):
    event_id: str
    user_id: str
    type: str
    item_id: str
    at: str
    ms_played: int | None
    impression_id: str | None
    received_at: str | None
    absorbed: bool = Field(description="Already moved into the store by the learn job.")


class EventsOut(BaseModel):
    user_id: str
    events: list[EventOut]


class HealthOut(BaseModel):
    status: str
    snapshot_version: int | None
    events_waiting: int


class SuggestionOut(BaseModel):
    position: int
    item_id: str
    name: str
    artist: str | None
    score: float
    reason: str = Field(description='Why it fits ("often follows X in playlists", ...).')
    source: str


class ContinuationOut(BaseModel):
    title: str
    suggestions: list[SuggestionOut]


def json_response(content: object, media_type: str = "application/json") -> Response:
    """A JSON body serialised once, as FastAPI's own JSONResponse writes it, for routes that
    build exactly their ``response_model``'s fields (so FastAPI need not validate and convert
    a large answer a second time; tests check the body against the model)."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), media_type=media_type)
