"""A small published world for the service's tests, and a real `deepcuts serve` process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from deepcuts.cli import main


def cli(store: Path, *args: object, expect: int = 0):
    result = CliRunner().invoke(
        main, ["--store", str(store), *[str(a) for a in args]], catch_exceptions=False
    )
    assert result.exit_code == expect, result.output
    return result


def build_world(root: Path, users: int = 120, tracks: int = 600, seed: int = 5) -> Path:
    """Simulate, ingest, train, build a week's lists and publish: the real pipeline."""
    store = root / "store.duckdb"
    cli(
        store,
        "simulate",
        "--users",
        users,
        "--tracks",
        tracks,
        "--weeks",
        4,
        "--seed",
        seed,
        "--out",
        root / "world",
    )
    cli(store, "ingest", "native", root / "world")
    cli(store, "train")
    cli(store, "weekly", "--week", "2026-W44")
    cli(store, "publish")
    return store


def copy_world(built: Path, into: Path) -> Path:
    """A private copy of a built store with its models, snapshots and live log."""
    for p in built.iterdir():
        if p.name == "world":
            continue
        target = into / p.name
        if p.is_dir():
            shutil.copytree(p, target, symlinks=False)
        else:
            shutil.copy2(p, target)
    return into / "store.duckdb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`deepcuts serve` in its own process on 127.0.0.1, as a user starts it."""

    def __init__(self, store: Path, *args: str, workers: int = 1):
        self.store = store
        self.port = free_port()
        self.args = args
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deepcuts", "--store", str(self.store), "serve", "--port", str(self.port),
             "--workers", str(self.workers), *self.args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("serve did not answer /healthz in time")

    def kill(self) -> None:
        """kill -9 the whole process group (uvicorn's workers too)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
