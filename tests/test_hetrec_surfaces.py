"""Discover Weekly and the home screen on a real store: the HetRec Last.fm 2K folder, ingested
as a listener would (artists as items, play counts without times), trained, then served."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from deepcuts.cli import main
from deepcuts.store import Store
from tests.conftest import HETREC


def _cli(store, *args):
    result = CliRunner().invoke(
        main, ["--store", str(store), *[str(a) for a in args]], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("hetrec") / "store.duckdb"
    _cli(path, "ingest", "lastfm-hetrec", HETREC)
    _cli(path, "train")
    return path


def test_every_listener_gets_30_artists_they_never_played_each_with_a_reason(store):
    """Undated play counts are history before any week: they train the lists and filter them."""
    out = _cli(store, "weekly", "--week", "2026-W48").output
    assert "1892 lists" in out
    with Store(store, read_only=True) as s:
        sizes = s.conn.execute(
            "SELECT count(*), count(DISTINCT item_id), count(reason) FROM weekly_lists "
            "WHERE week = '2026-W48' GROUP BY user_id"
        ).fetchall()
        replayed = s.conn.execute(
            "SELECT count(*) FROM weekly_lists w JOIN listens l "
            "ON l.user_id = w.user_id AND l.item_id = w.item_id"
        ).fetchall()[0][0]
        sources = {
            r[0] for r in s.conn.execute("SELECT DISTINCT source FROM weekly_lists").fetchall()
        }
    assert len(sizes) == 1892 and set(sizes) == {(30, 30, 30)}
    assert replayed == 0
    assert "taste_clusters" in sources, sources


def test_home_page_for_a_hetrec_listener(store):
    _cli(store, "publish")  # every listener's shelves, from the real store
    page = json.loads(_cli(store, "home", "--user", "lastfm:user:10", "--json").stdout)
    assert len(page["shelves"]) == 4
    items = [c["item_id"] for s in page["shelves"] for c in s["cards"]]
    assert len(items) == len(set(items)) == page["logged"]
    assert all(s["title"] for s in page["shelves"])
