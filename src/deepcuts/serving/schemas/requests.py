"""What clients send."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_EVENTS = 1000  # events per batch; a larger batch is refused with 413


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1,
        max_length=128,
        description="The client's id for this event; a repeated id is counted once.",
    )
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(
        min_length=1, max_length=256, description="The track (or artist) acted on."
    )
    at: datetime | None = Field(
        None, description="When it happened (ISO 8601; UTC if no offset) [default: when received]."
    )
    impression_id: str | None = Field(
        None, min_length=1, max_length=64, description="The home card this answers, if any."
    )
    ms_played: int | None = Field(None, ge=0, le=86_400_000, description="Milliseconds played.")


class PlayIn(_Event):
    """A play; ``ms_played`` says how long it lasted (30 s or more is a success for its card)."""

    type: Literal["play"]
    ms_played: int = Field(ge=0, le=86_400_000, description="Milliseconds played.")


class SkipIn(_Event):
    """A play the listener ended early."""

    type: Literal["skip"]


class ActionIn(_Event):
    """A save, a ban, or a click on a card (``ms_played`` is not used)."""

    type: Literal["save", "ban", "click"]


EventIn = Annotated[PlayIn | SkipIn | ActionIn, Field(discriminator="type")]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(description=f"At most {MAX_EVENTS} events.")


class PlaylistDraft(BaseModel):
    """A playlist being edited, not stored: its name and its tracks in order."""

    # A title, some tracks, or both: said in the schema so that clients (and schemathesis) see it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": ["title"]}, {"required": ["tracks"]}]},
    )

    # Absent, never null: the schema says "a title, some tracks, or both" by `required`.
    title: str = Field(
        None,
        max_length=500,
        pattern=r"^\s*\S",
        description='The playlist\'s name ("rainy sunday").',
    )  # type: ignore[assignment]
    tracks: list[str] = Field(
        None, min_length=1, max_length=1000, description="Its track ids, in order."
    )  # type: ignore[assignment]
    n: int = Field(500, ge=1, le=500, description="How many suggestions.")

    @model_validator(mode="after")
    def _title_or_tracks(self) -> PlaylistDraft:
        if self.title is None and not self.tracks:
            raise ValueError("give a title, some tracks, or both")
        return self
