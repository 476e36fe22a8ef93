"""What clients send."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_EVENTS = 1000  # events per batch; a larger batch is refused with 413


class EventIn(BaseModel):
    """One thing a listener did. A play's ``ms_played`` says how long it lasted (a stream of 30 s
    or more is a success for the card it answers); a skip is a play the listener ended early."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128, description="The client's id for this event; a repeated id is counted once.")
    user_id: str = Field(min_length=1, max_length=256)
    type: Literal["play", "skip", "save", "ban", "click"]
    item_id: str = Field(min_length=1, max_length=256, description="The track (or artist) acted on.")
    at: datetime | None = Field(None, description="When it happened (ISO 8601; UTC if no offset) [default: when received].")
    ms_played: int | None = Field(None, ge=0, le=86_400_000, description="Milliseconds played (plays and skips).")
    impression_id: str | None = Field(None, min_length=1, max_length=64, description="The home card this answers, if any.")

    @model_validator(mode="after")
    def _play_has_duration(self) -> EventIn:
        if self.type == "play" and self.ms_played is None:
            raise ValueError("a play needs ms_played (how long it played)")
        return self


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(description=f"At most {MAX_EVENTS} events.")
