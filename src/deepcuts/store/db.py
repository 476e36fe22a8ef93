"""The embedded store: one DuckDB file holding everything deepcuts knows."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import duckdb

from deepcuts.store.migrations import LATEST_VERSION, MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be opened or is in a state deepcuts cannot use."""


def _session(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A connection's settings, on each connection: timestamps are stored in UTC (strings with
    an offset are converted to it), and no progress bar of DuckDB's own, which it would draw on
    stdout for queries over 2 s, corrupting a command's JSON or M3U8 output on a large store
    (the CLI's progress is on stderr)."""
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET enable_progress_bar = false")
    return conn


def _connect(path: str, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting up to ``wait`` seconds while another process holds it."""
    deadline = time.monotonic() + wait
    delay, told = 0.05, False
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            locked = "lock" in str(exc).lower()
            if not locked or time.monotonic() + delay > deadline:
                why = "locked by another process" if locked else "unreadable"
                raise StoreError(f"cannot open store {path} ({why}): {exc}") from exc
            if not told:
                log.info("store %s is busy (another job is writing it); waiting up to %.0f s",
                         path, wait)  # fmt: skip
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc


class Store:
    """A DuckDB file with the deepcuts schema, migrated to the latest version on open.

    Parameters
    ----------
    path:
        The DuckDB file. ``":memory:"`` gives a throwaway store (tests, evaluation).
    create:
        Create the file if it does not exist; otherwise a missing file is an error.
    read_only:
        Open without write access (several readers may share the file).
    wait:
        Seconds to wait for the file while another process holds it (DuckDB allows one
        writing process at a time): a job started while another runs queues behind it
        instead of failing. 0 fails at once.

    Example
    -------
    >>> with Store(":memory:", create=True) as store:
    ...     store.stats()["listens"]
    0
    """

    def __init__(
        self, path: str | Path, *, create: bool = False, read_only: bool = False, wait: float = 0.0
    ):
        self.path = str(path)
        in_memory = self.path == ":memory:"
        if not in_memory and not Path(self.path).exists():
            if not create:
                raise StoreError(
                    f"no store at {self.path}: create one with `deepcuts init --store {self.path}`"
                )
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = _session(_connect(self.path, read_only and not in_memory, wait))
        if not read_only:
            self.migrate()
        elif self.schema_version() != LATEST_VERSION:
            raise StoreError(
                f"store {self.path} is at schema version {self.schema_version()}, "
                f"this deepcuts needs {LATEST_VERSION}: migrate it with `deepcuts init --store {self.path}`"
            )

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self.conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchall()[0][0]
        if not exists:
            return 0
        return self.conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        ).fetchall()[0][0]

    def migrate(self) -> list[int]:
        """Apply the migrations this store has not had yet; return their versions."""
        current = self.schema_version()
        if current > LATEST_VERSION:
            raise StoreError(
                f"store {self.path} is at schema version {current}, newer than this deepcuts "
                f"({LATEST_VERSION}): upgrade deepcuts"
            )
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            self.conn.execute("BEGIN TRANSACTION")
            try:
                if migration.version == 1:
                    self.conn.execute(
                        "CREATE TABLE schema_migrations (version INTEGER NOT NULL, "
                        "description VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
                    )
                migration.apply(self.conn)
                self.conn.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                    [migration.version, migration.description],
                )
                self.conn.execute("COMMIT")
            except Exception:
                self.conn.execute("ROLLBACK")
                raise
            # A throwaway in-memory store migrating is routine; a file migrating is news.
            log.log(
                logging.DEBUG if self.path == ":memory:" else logging.INFO,
                "store %s migrated to schema version %d",
                self.path,
                migration.version,
            )
            applied.append(migration.version)
        return applied

    # -- reading ------------------------------------------------------------------------
    def table_names(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    def stats(self) -> dict[str, int]:
        """Row count of every table, by table name."""
        return {
            name: self.conn.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
            for name in self.table_names()
        }

    # -- lifecycle ----------------------------------------------------------------------
    def cursor(self) -> Store:
        """This store on a connection of its own (a DuckDB cursor of this one), to read from
        another thread at the same time; close it when done. A view registered on one
        connection is not seen from the other."""
        other = copy.copy(self)
        other.conn = _session(self.conn.cursor())
        return other

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
