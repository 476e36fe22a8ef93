import subprocess
import sys

import duckdb
import pytest

from deepcuts.store import TABLES, Store, StoreError
from deepcuts.store.migrations import LATEST_VERSION


def test_fresh_store_has_exactly_the_declared_columns(store):
    for table in TABLES.values():
        described = store.conn.execute(f"DESCRIBE {table.name}").fetchall()
        assert [(r[0], r[1]) for r in described] == [(c.name, c.type) for c in table.columns]


def test_schema_version_is_recorded(store):
    assert store.schema_version() == LATEST_VERSION
    assert store.migrate() == []  # nothing left to apply


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="deepcuts init"):
        Store(tmp_path / "nope.duckdb")


def test_store_from_a_newer_deepcuts_is_refused(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path, create=True).close()
    conn = duckdb.connect(str(path))
    conn.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    conn.close()
    with pytest.raises(StoreError, match="newer than this deepcuts"):
        Store(path)


def test_reopening_keeps_data(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path, create=True) as s:
        s.conn.execute("INSERT INTO users (user_id) VALUES ('u1')")
    with Store(path, read_only=True) as s:
        assert s.stats()["users"] == 1


def test_a_store_written_at_schema_version_1_still_opens_and_migrates(tmp_path):
    # Made by deepcuts 0.1.0 (DuckDB 2.0.1) at schema version 1; kept to prove old stores load.
    import gzip
    import shutil

    from tests.conftest import FIXTURES

    path = tmp_path / "v1.duckdb"
    with gzip.open(FIXTURES / "stores" / "schema-v1.duckdb.gz") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with Store(path) as s:
        assert s.schema_version() == LATEST_VERSION
        assert s.conn.execute("SELECT user_id, country FROM users").fetchall() == [("u1", "SE")]
        assert s.conn.execute("SELECT ms_played FROM listens").fetchall() == [(200000,)]


def test_duckdb_draws_no_progress_bar(tmp_path):
    """DuckDB's progress bar goes to stdout once a query runs 2 s, even into a pipe: it is off
    on every store connection and its cursors, so --json and M3U8 output stay clean. Checked
    in a process of its own: under pytest's capture DuckDB starts with the bar off anyway."""
    path = tmp_path / "s.duckdb"
    Store(path, create=True).close()
    script = (
        "import sys\n"
        "from deepcuts.store import Store\n"
        "for read_only in (False, True):\n"
        "    store = Store(sys.argv[1], read_only=read_only)\n"
        "    for conn in (store.conn, store.conn.cursor()):\n"
        "        print(conn.execute(\"SELECT current_setting('enable_progress_bar')\").fetchall()[0][0])\n"
        "    store.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False"] * 4


def test_a_cursor_reads_the_same_store_in_utc_and_closes_alone(tmp_path):
    """Side information is read on cursors from several threads at once: each sees the store's
    rows with the store's settings, and closing one leaves the store open."""
    with Store(tmp_path / "s.duckdb", create=True) as store:
        store.conn.execute("INSERT INTO users (user_id, country) VALUES ('u1', 'SE'), ('u2', 'NO')")
        view = store.cursor()
        assert view is not store and view.path == store.path
        assert view.conn.execute("SELECT count(*) FROM users").fetchall() == [(2,)]
        assert view.conn.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
        view.conn.register("_only_here", duckdb.sql("SELECT 1 AS x").arrow())
        with pytest.raises(duckdb.CatalogException):
            store.conn.execute("SELECT * FROM _only_here")
        view.close()
        assert store.conn.execute("SELECT count(*) FROM users").fetchall() == [(2,)]
