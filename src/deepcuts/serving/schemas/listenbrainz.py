"""What the ListenBrainz-compatible `/1/` routes answer, in ListenBrainz's shapes.

Requests are read as ListenBrainz reads them (a JSON body with or without a content type,
checked field by field with its messages: `deepcuts.serving.listenbrainz.check_submission`),
so only the answers are models here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LBErrorOut(BaseModel):
    code: int = Field(description="The HTTP status again.")
    error: str = Field(description="What was wrong.")


class StatusOut(BaseModel):
    status: str = "ok"


class TokenOut(BaseModel):
    code: int = 200
    message: str
    valid: bool
    user_name: str | None = Field(None, description="The listener the key is for.")


class TrackMetadataOut(BaseModel):
    model_config = {"extra": "allow"}

    track_name: str
    artist_name: str
    release_name: str | None = None
    additional_info: dict[str, Any] = Field(default_factory=dict)


class ListenOut(BaseModel):
    listened_at: int | None = None
    inserted_at: int | None = None
    recording_msid: str | None = None
    user_name: str
    playing_now: bool | None = None
    track_metadata: TrackMetadataOut


class ListensPayload(BaseModel):
    count: int
    user_id: str
    listens: list[ListenOut]
    latest_listen_ts: int | None = None
    oldest_listen_ts: int | None = None
    playing_now: bool | None = None


class ListensOut(BaseModel):
    payload: ListensPayload


class FeedbackItemOut(BaseModel):
    created: int
    recording_mbid: str | None
    recording_msid: str
    score: int
    track_metadata: TrackMetadataOut | None = None
    user_id: str


class FeedbackOut(BaseModel):
    feedback: list[FeedbackItemOut]
    count: int
    total_count: int
    offset: int


class RecommendedOut(BaseModel):
    recording_mbid: str = Field(description="The MBID, or the deepcuts id of a track without one.")
    score: float


class RecommendationsPayload(BaseModel):
    mbids: list[RecommendedOut]
    entity: str = "recording"
    user_name: str
    model_id: str
    model_url: str | None = None
    last_updated: int
    count: int
    total_mbid_count: int
    offset: int


class RecommendationsOut(BaseModel):
    payload: RecommendationsPayload


class PlaylistOut(BaseModel):
    playlist: dict[str, Any] = Field(description="A JSPF playlist with ListenBrainz's extension.")


class PlaylistsOut(BaseModel):
    playlists: list[PlaylistOut]
    playlist_count: int
    count: int
    offset: int
