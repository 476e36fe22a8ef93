"""Shared fixtures: the real data beside the checkout, fresh stores, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepcuts.store import Store

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = Path(os.environ.get("DEEPCUTS_SHARED_DATA", REPO.parent / "shared" / "data"))
HETREC = SHARED_DATA / "hetrec-lastfm-2k"
AUDIO_EXCERPTS = SHARED_DATA / "audio-excerpts"


@pytest.fixture
def store() -> Store:
    with Store(":memory:", create=True) as s:
        yield s


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """Run `deepcuts ARGS...` against a store in tmp_path; returns click's Result."""
    from deepcuts.cli import main

    monkeypatch.setenv("DEEPCUTS_STORE", str(tmp_path / "store.duckdb"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, expect: int | None = 0):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, result.output
        return result

    return run
