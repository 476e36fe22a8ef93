"""Prometheus metrics: requests and latency per route, the published version, events waiting.

With several worker processes, `deepcuts serve` sets ``PROMETHEUS_MULTIPROC_DIR`` and each
scrape aggregates every worker's files (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter("deepcuts_http_requests", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "deepcuts_http_request_seconds", "Time to answer a request", ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)  # fmt: skip
SNAPSHOT = Gauge("deepcuts_snapshot_version", "The published snapshot version being served",
                 multiprocess_mode="max")  # fmt: skip


class _Waiting:
    """Events and impressions waiting to be learned, read from the live log at scrape time."""

    def __init__(self, live):
        self.live = live

    def collect(self):
        counts = self.live.count_waiting()
        family = GaugeMetricFamily(
            "deepcuts_waiting", "Waiting to be absorbed by the learn job", labels=["kind"]
        )
        for kind, n in counts.items():
            family.add_metric([kind], n)
        yield family


def render(live) -> bytes:
    """The request metrics (every worker's, from the multiprocess files where there are
    several; else this process's), then the live log's waiting counts, read now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        requests = CollectorRegistry()
        MultiProcessCollector(requests)
    else:
        requests = REGISTRY
    waiting = CollectorRegistry()
    waiting.register(_Waiting(live))
    return generate_latest(requests) + generate_latest(waiting)


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP request by route template and status.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the rest of the app
    in a task of its own and streams the answer back through a queue, a cost every request
    paid. The route is known only once the router has matched it: FastAPI's own routes set
    ``scope["route"]``; Starlette's plain ones (the OpenAPI document, the docs pages) only
    ``scope["endpoint"]``, which `_plain_paths` maps back to its path. Anything else is
    "unmatched" (404s: never the request's own path, which would make a label per URL).
    """

    def __init__(self, app) -> None:
        self.app = app
        self._plain: dict[object, str] | None = None

    def _plain_paths(self, scope) -> dict[object, str]:
        if self._plain is None:
            routes = getattr(scope.get("app"), "routes", ())
            self._plain = {r.endpoint: r.path for r in routes if hasattr(r, "endpoint")}
        return self._plain

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers if the app raises before it starts a response

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or self._plain_paths(scope).get(
                scope.get("endpoint"), "unmatched"
            )
            LATENCY.labels(route, scope["method"]).observe(time.perf_counter() - start)
            REQUESTS.labels(route, scope["method"], str(status)).inc()
