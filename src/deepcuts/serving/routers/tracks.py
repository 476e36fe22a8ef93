"""Items: `/v1/tracks/{track}/similar`, `/v1/radio` and `/v1/search`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from deepcuts.serving.deps import ERRORS, CallerDep, SnapshotDep, invalid
from deepcuts.serving.pages import items_json, radio, similar_items
from deepcuts.serving.schemas.responses import ItemsOut

router = APIRouter(prefix="/v1", tags=["tracks"])

N = Annotated[int, Query(ge=1, le=500, description="How many items.")]


def _answer(body: bytes) -> Response:
    return Response(body, media_type="application/json")  # exactly ItemsOut (`items_json`)


# Similar and radio run on the event loop, not a thread: their search is a fraction of a
# millisecond (exact up to 50,000 items, the published index above), less than the hop.
@router.get("/tracks/{track}/similar", response_model=ItemsOut, responses=ERRORS)
async def get_similar(
    track: Annotated[str, Path(min_length=1, max_length=256)],
    published: SnapshotDep,
    caller: CallerDep,
    n: N = 10,
) -> Response:
    """The items nearest the track in the published vector space."""
    found = similar_items(published, track, n)
    title = f"Similar to {published.describe_item(published.item_index[track])['name']}"
    return _answer(items_json(published, title, found))


@router.get("/radio", response_model=ItemsOut, responses=ERRORS)
async def get_radio(
    published: SnapshotDep,
    caller: CallerDep,
    track: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    artist: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    n: N = 25,
) -> Response:
    """ "Keep the vibe going": tracks like a seed track or artist, at most 2 per artist."""
    if (track is None) == (artist is None):
        raise invalid(("query", "track"), "give exactly one of `track` or `artist`")
    title, found = radio(published, track=track, artist=artist, n=n)
    return _answer(items_json(published, title, found))


@router.get("/search", response_model=ItemsOut, responses=ERRORS)
def get_search(
    published: SnapshotDep,
    caller: CallerDep,
    q: Annotated[
        str, Query(min_length=1, max_length=500, description='Free text: "rainy sunday acoustic".')
    ],
    kind: Annotated[Literal["track", "artist"] | None, Query()] = None,
    n: N = 10,
) -> Response:
    """Tracks and artists whose tags, descriptions and playlist names match the query."""
    return _answer(items_json(published, f"Results for {q!r}", published.search(q, n, kind)))
