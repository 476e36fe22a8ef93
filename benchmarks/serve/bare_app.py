"""The peer of `bench_serve.py`: a bare FastAPI route returning a stored JSON page of the same
size as deepcuts' home page, under the same uvicorn settings."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response


def create_app() -> FastAPI:
    page = Path(os.environ["BARE_PAGE"]).read_bytes()
    app = FastAPI()

    @app.get("/v1/users/{user}/home")
    def home(user: str) -> Response:
        return Response(page, media_type="application/json")

    return app
