"""`GET /v1/users/{user}/home`: the listener's home screen, shelves ordered by the bandit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from deepcuts.bandit.types import PageLayout
from deepcuts.serving.deps import ERRORS, CallerDep, ConfigDep, ImpressionsDep, SnapshotDep
from deepcuts.serving.pages import home_page, page_json
from deepcuts.serving.schemas.responses import HomeOut

router = APIRouter(prefix="/v1", tags=["home"])


@router.get("/users/{user}/home", response_model=HomeOut, responses=ERRORS)
async def get_home(
    user: Annotated[str, Path(min_length=1, max_length=256)],
    published: SnapshotDep,
    impressions: ImpressionsDep,
    caller: CallerDep,
    config: ConfigDep,
    hour: Annotated[
        int | None, Query(ge=0, le=23, description="Local hour 0-23 [default: now, UTC].")
    ] = None,
    weekday: Annotated[
        int | None, Query(ge=0, le=6, description="0 = Monday [default: today].")
    ] = None,
    device: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.-]{1,32}$",
            description="android, ios, desktop, web, ... [default: the listener's usual one].",
        ),
    ] = None,
    country: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z]{2}$",
            description="ISO 3166-1 alpha-2 [default: the listener's home country].",
        ),
    ] = None,
) -> Response:
    """Shelves in order, each titled with its explanation; every card carries the impression id
    to send back with the events that answer it, and the propensity it was shown with. The
    page is logged (with its propensities) before it is returned."""
    # On the event loop, not a thread: a page is about half a millisecond of Python, which
    # threads would only take turns at (the GIL) while paying for the hops and the switching.
    caller.require(user)
    served = home_page(
        published, user, policy=config.policy, epsilon=config.epsilon,
        layout=PageLayout(config.shelves, config.cards), at=datetime.now(UTC),
        hour=hour, weekday=weekday, device=device, country=country,
    )  # fmt: skip
    await impressions.log(served.log_row)
    return Response(page_json(published, served), media_type="application/json")
