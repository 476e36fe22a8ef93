"""`GET /healthz` and `GET /metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from deepcuts.serving import metrics
from deepcuts.serving.schemas.responses import HealthOut
from deepcuts.snapshots.versions import SnapshotError

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=HealthOut)
def healthz(request: Request) -> dict[str, object]:
    """Up, which snapshot it serves (null before the first publish), events waiting."""
    try:
        version = request.app.state.snapshots.current().version
    except SnapshotError:
        version = None
    waiting = request.app.state.live.count_waiting()["events"]
    return {"status": "ok" if version is not None else "no snapshot", "snapshot_version": version,
            "events_waiting": waiting}  # fmt: skip


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def get_metrics(request: Request) -> Response:
    """Prometheus text: requests and latency per route, the snapshot version, events waiting."""
    return Response(metrics.render(request.app.state.live), media_type="text/plain; version=0.0.4")
