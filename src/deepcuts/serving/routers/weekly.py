"""`GET /v1/users/{user}/weekly`: the listener's Discover Weekly, as JSON or a playlist file."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Response

from deepcuts.io.playlists import export
from deepcuts.serving.deps import ERRORS, CallerDep, SnapshotDep
from deepcuts.serving.pages import NotFound, weekly_playlist
from deepcuts.serving.schemas.responses import WeeklyOut, json_response
from deepcuts.surfaces.weekly import WeekError, parse_week, week_name

router = APIRouter(prefix="/v1", tags=["weekly"])

MEDIA_TYPES = {
    "jspf": "application/jspf+json",
    "xspf": "application/xspf+xml",
    "m3u8": "audio/x-mpegurl",
}
ACCEPTED = {
    "application/jspf+json": "jspf",
    "application/xspf+xml": "xspf",
    "audio/x-mpegurl": "m3u8",
    "audio/mpegurl": "m3u8",
    "application/vnd.apple.mpegurl": "m3u8",
    "application/x-mpegurl": "m3u8",
}


def _format(fmt: str | None, accept: str | None) -> str:
    if fmt is not None:
        return fmt
    for part in (accept or "").split(","):
        found = ACCEPTED.get(part.split(";")[0].strip().lower())
        if found:
            return found
    return "json"


@router.get(
    "/users/{user}/weekly",
    response_model=WeeklyOut,
    responses={
        **ERRORS,
        200: {"content": {t: {"schema": {"type": "string"}} for t in MEDIA_TYPES.values()},
              "description": "The list as JSON, or as JSPF, XSPF or M3U8 with `format=` or `Accept`"},
    },
)  # fmt: skip
async def get_weekly(
    user: Annotated[str, Path(min_length=1, max_length=256)],
    published: SnapshotDep,
    caller: CallerDep,
    week: Annotated[
        str | None,
        Query(
            pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$",
            description="ISO week, YYYY-Www [default: the latest list].",
        ),
    ] = None,
    format: Annotated[
        Literal["json", "jspf", "xspf", "m3u8"] | None,
        Query(description="Playlist format [default: from Accept, else json]."),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
):
    """The 30 tracks, each with the reason it is there."""
    # On the event loop, not a thread: a list is rendered once per version (a fraction of a
    # millisecond) and answered from memory after that, and the hop to the thread pool and
    # back cost more than either (in process, 32 clients: 400-447 us a request in the pool,
    # 159-178 on the loop).
    caller.require(user)
    if week is not None:
        try:
            week = week_name(parse_week(week))
        except WeekError as exc:
            raise NotFound("week", week, str(exc)) from exc  # e.g. W53 of a year without one
    fmt = _format(format, accept)

    def render() -> tuple[bytes, str]:
        playlist = weekly_playlist(published, user, week)
        if fmt != "json":
            return export(playlist, fmt).encode("utf-8"), MEDIA_TYPES[fmt]
        name = playlist.title.removeprefix("Discover Weekly ")
        body = {
            "user_id": user,
            "week": name,
            "title": playlist.title,
            "annotation": playlist.annotation,
            "tracks": [
                {"position": n, "item_id": t.item_id, "name": t.title, "artist": t.artist,
                 "album": t.album, "duration_ms": t.duration_ms, "reason": t.reason, "score": t.score}
                for n, t in enumerate(playlist.tracks)
            ],
        }  # fmt: skip
        response = json_response(body)  # exactly WeeklyOut's fields
        return response.body, response.media_type  # type: ignore[return-value]

    # A list is fixed for a published version: render it once per (listener, week, format).
    body, media_type = published.memo(("weekly", user, week, fmt), render)
    return Response(body, media_type=media_type)
