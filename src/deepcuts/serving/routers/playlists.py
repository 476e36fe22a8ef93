"""Playlist continuation: `GET /v1/playlists/{playlist}/continuation`, `POST /v1/continuation`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from deepcuts.serving.deps import ERRORS, CallerDep, SnapshotDep, invalid
from deepcuts.serving.pages import NotFound
from deepcuts.serving.schemas.requests import PlaylistDraft
from deepcuts.serving.schemas.responses import ContinuationOut

router = APIRouter(prefix="/v1", tags=["playlists"])


def _continue(published, title: str | None, tracks: list[str], n: int) -> dict[str, object]:
    from deepcuts.surfaces.continuation import continue_playlist

    continuer = published.continuer
    unknown = [t for t in tracks if continuer.data.items.get(t) < 0]
    if unknown:
        raise NotFound(
            "track", unknown[0], f"not in the published catalogue ({len(unknown)} unknown)"
        )
    if not tracks and not (title or "").strip():
        raise invalid(("body", "title"), "give a title, some tracks, or both")
    found = continue_playlist(continuer, title=title, tracks=tracks, n=n)
    return {
        "title": f"Recommended for {title or 'your playlist'}",
        "suggestions": [
            {"position": k, "item_id": s.item_id, "name": s.title, "artist": s.artist or None,
             "score": round(s.score, 6), "reason": s.reason, "source": s.source}
            for k, s in enumerate(found)
        ],
    }  # fmt: skip


@router.get("/playlists/{playlist}/continuation", response_model=ContinuationOut, responses=ERRORS)
def get_continuation(
    playlist: Annotated[str, Path(min_length=1, max_length=256)],
    published: SnapshotDep,
    caller: CallerDep,
    n: Annotated[int, Query(ge=1, le=500, description="How many suggestions.")] = 500,
) -> dict[str, object]:
    """Songs to add to a stored playlist, from its tracks and its title, each with a reason."""
    data = published.continuer.data
    p = data.playlists.get(playlist)
    if p < 0:
        raise NotFound("playlist", playlist, "not in the published snapshot")
    tracks = [str(data.items.ids[i]) for i in data.sequences[p]]
    return _continue(published, data.titles[p], tracks, n)


@router.post("/continuation", response_model=ContinuationOut, responses=ERRORS)
def post_continuation(
    draft: PlaylistDraft, published: SnapshotDep, caller: CallerDep
) -> dict[str, object]:
    """Songs for a playlist being edited (not stored): from its title alone, its tracks, or both."""
    return _continue(published, draft.title, draft.tracks or [], draft.n)
