"""The web pages: the listener's page at `/`, the operator's at `/admin`, and `GET /v1/me`.

The pages are Jinja2 templates with a little plain JavaScript (``serving/web/``); the listener
page calls the `/v1` API with the key the listener signs in with (kept in the browser's
sessionStorage, or localStorage when asked to remember it). The operator page's figures are
rendered on the server (`deepcuts.serving.admin`) and fetched with an admin key. Nothing comes
from a CDN.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from deepcuts import __version__
from deepcuts.bandit.types import PageLayout
from deepcuts.serving.deps import ERRORS, CallerDep, ConfigDep, LiveDep, SnapshotDep
from deepcuts.snapshots.versions import SnapshotError, snapshot_root
from deepcuts.store.live import IMPRESSIONS_KEPT_DAYS

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = {p.name: p for p in (WEB / "static").iterdir() if p.is_file()}
MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
LISTENERS_SHOWN = 200  # listeners offered to pick from with --no-auth

templates = Jinja2Templates(directory=str(WEB / "templates"))
router = APIRouter()


class MeOut(BaseModel):
    user_id: str | None
    is_admin: bool
    open_access: bool


@router.get("/v1/me", response_model=MeOut, responses=ERRORS, tags=["service"])
def get_me(caller: CallerDep) -> dict[str, object]:
    """Whom the presented key is for (a listener, or admin); with --no-auth, open access."""
    return {
        "user_id": None if caller.key is None else caller.key.user_id,
        "is_admin": caller.is_admin,
        "open_access": caller.open_access,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def listener_page(request: Request, config: ConfigDep) -> HTMLResponse:
    """Home shelves, Discover Weekly, similar and search for the signed-in listener."""
    listeners: list[str] = []
    if config.no_auth:  # an open demo on this machine: offer listeners to pick from
        try:
            published = request.app.state.snapshots.current()
            listeners = sorted(published.weekly["user_id"].unique().tolist())[:LISTENERS_SHOWN]
            if not listeners:
                listeners = list(published.user_index)[:LISTENERS_SHOWN]
        except SnapshotError:
            listeners = []
    return templates.TemplateResponse(
        request,
        "listener.html",
        {"no_auth": config.no_auth, "listeners": listeners, "version": __version__},
    )


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(request: Request, config: ConfigDep) -> HTMLResponse:
    """The operator page's frame; its figures come from `/admin/report` with an admin key."""
    return templates.TemplateResponse(
        request, "admin.html", {"no_auth": config.no_auth, "version": __version__}
    )


@router.get("/admin/report", response_class=HTMLResponse, include_in_schema=False)
def admin_report(
    request: Request,
    caller: CallerDep,
    config: ConfigDep,
    live: LiveDep,
    published: SnapshotDep,
    days: Annotated[int, Query(ge=1, le=IMPRESSIONS_KEPT_DAYS)] = 7,
    at: Annotated[
        datetime | None,
        Query(
            description="As of this time (ISO 8601), like `deepcuts learn --at TIME` [default: now]."
        ),
    ] = None,
) -> HTMLResponse:
    """The operator's figures as an HTML fragment (plots as inline SVG): admin keys only."""
    from deepcuts.serving.admin import build_report

    if not caller.is_admin:
        raise HTTPException(
            403, "the operator page needs an admin key (`deepcuts keys create --admin`)"
        )
    report = build_report(
        live, published, snapshot_root(config.store), days=days, epsilon=config.epsilon,
        layout=PageLayout(config.shelves, config.cards),
        now=None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC)),
    )  # fmt: skip
    return templates.TemplateResponse(
        request,
        "admin_report.html",
        {"r": report, "serving": published.version, "policy": config.policy,
         "epsilon": config.epsilon},
    )  # fmt: skip


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    path = STATIC.get(name)
    if path is None:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"))
