"""The peer of `bench_serve.py`: a bare FastAPI route returning a stored JSON page of the same
size as deepcuts' home page, under the same uvicorn settings.

A coroutine, as deepcuts' routes are: a plain ``def`` route runs in FastAPI's thread pool, and
that hop alone cost it 40% of its throughput (3,210-3,782 against 5,142-6,144 requests/s,
three alternating runs of 30 s here), which would flatter every ratio to it."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response


def create_app() -> FastAPI:
    page = Path(os.environ["BARE_PAGE"]).read_bytes()
    app = FastAPI()

    @app.get("/v1/users/{user}/home")
    async def home(user: str) -> Response:
        return Response(page, media_type="application/json")

    return app
