"""The live log: what the service accepts while batch jobs hold the store.

DuckDB lets one process write a file at a time, and a job (ingest, train, weekly, learn) may
hold the store for minutes. The service must still take events, log the pages it serves and
check API keys in the meantime, from several worker processes at once. So those go to a small
SQLite file beside the store (``<store stem>.live.sqlite``), in WAL mode, which any number of
processes may read and append to:

- ``events``: plays, skips, saves, bans and card clicks posted to ``POST /v1/events``; a batch is
  committed with ``synchronous=FULL`` before the service answers 202, and a repeated
  (user, event id) is kept once. ``deepcuts learn`` absorbs them into the store's ``listens``
  and ``actions`` tables and marks them absorbed; they stay listed for the listener.
- ``pages``: every served page, a row each, with every card it showed and its propensities
  (the store's ``impressions`` rows as one JSON object: what the page's cards share once, then
  each card's own part; `page_impressions` reads them back). A page is one row because it is
  written while its request waits: twenty rows, each with its own index entries, cost 0.19 ms
  a page to commit against 0.05 for one. ``deepcuts learn`` absorbs them into the store's
  ``impressions`` table and deletes them once absorbed and ``IMPRESSIONS_KEPT_DAYS`` old (the
  operator page reads them back). A live log of an earlier version, with a row per card, has
  those rows moved into ``pages`` when it is first opened.
- ``api_keys``: only the SHA-256 of each key, with whom it is for. A process remembers the keys
  it has checked (`check_key`); a revocation rewrites a stamp file beside the log
  (``<log>.revoked``) after its commit, and every process forgets what it remembered when the
  stamp changes, so a revoked key is refused from the next request on, in every process.
- ``listen_tracks``: what a client said about a track it sent a listen of (its ListenBrainz
  ``track_metadata`` as JSON, by the item id the listen was given); ``deepcuts learn`` makes the
  tracks the catalogue does not know into catalogue entries from it.
- ``deleted_listens``: listens deleted after the store absorbed them, removed from the store's
  ``listens`` by the next ``deepcuts learn``.
- ``playing_now``: each listener's latest "playing now" notice (not a listen).

Absorbing is idempotent: the store's loads deduplicate by key, so a learn job killed between
the store's commit and the log's mark loses nothing and doubles nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Absorbed impressions stay this long for the operator page's figures (its longest window);
# the store keeps them all.
IMPRESSIONS_KEPT_DAYS = 90
EVENT_TYPES = ("play", "skip", "save", "unsave", "ban", "click")
KEY_PREFIX = "dc_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    item_id TEXT NOT NULL,
    at TEXT NOT NULL,
    ms_played INTEGER,
    impression_id TEXT,
    received_at TEXT NOT NULL,
    absorbed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, at);
CREATE INDEX IF NOT EXISTS events_waiting ON events (absorbed, seq);
CREATE TABLE IF NOT EXISTS pages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    served_at TEXT NOT NULL,
    impressions INTEGER NOT NULL,
    row TEXT NOT NULL,
    absorbed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pages_waiting ON pages (absorbed, seq);
CREATE TABLE IF NOT EXISTS listen_tracks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    msid TEXT NOT NULL,
    meta TEXT NOT NULL,
    absorbed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS listen_tracks_by_msid ON listen_tracks (msid);
CREATE TABLE IF NOT EXISTS deleted_listens (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    at TEXT NOT NULL,
    absorbed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS playing_now (
    user_id TEXT PRIMARY KEY,
    listen TEXT NOT NULL,
    until TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    user_id TEXT,
    is_admin INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""


class LiveLogError(Exception):
    """The live log cannot be used (unreadable file, bad request to it)."""


def live_log_path(store_path: str | Path) -> Path:
    """The live log of a store file: ``<dir>/<stem>.live.sqlite`` beside it."""
    path = Path(store_path)
    return path.with_name(f"{path.stem}.live.sqlite")


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """An ISO timestamp as an aware UTC datetime (naive text is taken as UTC)."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# A served page as the live log keeps it: (page id, listener, served at, how many impressions,
# the page as JSON: what its impressions share, and theirs under "impressions").
PageRow = tuple[str, str, str, int, str]


def page_impressions(page: dict[str, Any]) -> list[dict[str, Any]]:
    """A logged page's impressions, each a row of the store's ``impressions`` table: the
    members the page's impressions share, with each impression's own over them."""
    shared = {k: v for k, v in page.items() if k != "impressions"}
    return [{**shared, **own} for own in page["impressions"]]


@dataclass(frozen=True)
class Event:
    """One listener action as the service accepted it."""

    user_id: str
    event_id: str
    type: str
    item_id: str
    at: datetime
    ms_played: int | None = None
    impression_id: str | None = None
    received_at: datetime | None = None
    absorbed: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "type": self.type,
            "item_id": self.item_id,
            "at": _iso(self.at),
            "ms_played": self.ms_played,
            "impression_id": self.impression_id,
            "received_at": None if self.received_at is None else _iso(self.received_at),
            "absorbed": self.absorbed,
        }


@dataclass(frozen=True)
class TrackMeta:
    """What a client said about a track it played: its ListenBrainz ``track_metadata``
    (artist_name, track_name, release_name, additional_info with MBIDs and duration), kept
    under the item id the listen was given and that item's ListenBrainz-style msid."""

    item_id: str
    msid: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    user_id: str | None
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None


class LiveLog:
    """The live log file; safe to share between threads (a connection per thread) and
    processes (SQLite's own locking).

    Parameters
    ----------
    path : the SQLite file (created with its tables if missing).
    """

    # How long a checked key is remembered at most: the stamp says when one was revoked, and
    # this bounds how long a revocation whose stamp was never written (its process killed
    # between the commit and the stamp) could go unnoticed.
    KEY_MEMORY_SECONDS = 60.0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.revocation_stamp_path = self.path.with_name(self.path.name + ".revoked")
        self._checked_keys: dict[str, tuple[ApiKey, float]] = {}
        self._keys_stamp: tuple[int, int] | None = None
        try:
            # Where SQLite would have to wait on a connection that may be waiting on it (two
            # processes opening a new log, or an earlier version's, at once: `serve --workers
            # 2`), it answers "database is locked" at once, whatever its busy timeout.
            conn = self._conn()
            _when_free(lambda: conn.executescript(_SCHEMA))
            self._move_card_rows()
        except sqlite3.DatabaseError as exc:
            raise LiveLogError(f"{self.path}: not a deepcuts live log ({exc})") from exc

    @classmethod
    def for_store(cls, store_path: str | Path) -> LiveLog:
        return cls(live_log_path(store_path))

    def _move_card_rows(self) -> None:
        """Move an earlier version's ``impressions`` table (a row per card, each the whole
        store row) into ``pages``, a page per page id, and drop it: a page is absorbed only
        if all its cards were (absorbing again changes nothing in the store). One process
        moves them; another opening the log meanwhile (a second worker) waits for it, for as
        long as a large log takes."""
        conn = self._conn()
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'impressions'"
        if conn.execute(exists).fetchone() is None:
            return
        _begin(conn, patience=3600)
        try:
            if conn.execute(exists).fetchone() is not None:  # another process may have moved it
                pages: dict[str, list] = {}
                for user_id, served_at, row, absorbed in conn.execute(
                    "SELECT user_id, served_at, row, absorbed FROM impressions ORDER BY seq"
                ):
                    record = json.loads(row)
                    page = pages.setdefault(str(record["page_id"]), [user_id, served_at, [], 1])
                    page[2].append(record)
                    page[3] = min(page[3], absorbed)
                conn.executemany(
                    "INSERT OR IGNORE INTO pages (page_id, user_id, served_at, impressions, row, "
                    "absorbed) VALUES (?, ?, ?, ?, ?, ?)",
                    [(page_id, user_id, served_at, len(cards),
                      json.dumps({"impressions": cards}, ensure_ascii=False), absorbed)
                     for page_id, (user_id, served_at, cards, absorbed) in pages.items()],
                )  # fmt: skip
                conn.execute("DROP TABLE impressions")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self, synchronous: str = "FULL", wait: bool = True) -> sqlite3.Connection:
        """This thread's connection. FULL: a commit is on disk before it returns, so a 202
        means the events survive a crash of the process or of the machine. NORMAL (served
        pages only): a commit survives the process being killed, and skips the disk flush
        that would otherwise cost every page view milliseconds. ``wait=False``: a connection
        whose writes take the lock with `_begin` rather than SQLite's busy handler."""
        name = f"conn_{synchronous}" + ("" if wait else "_polling")
        conn = getattr(self._local, name, None)
        if conn is None:
            # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE), so a
            # writer takes the lock up front and waits for it (busy_timeout, or `_begin`'s
            # polling) instead of failing.
            conn = sqlite3.connect(self.path, timeout=30 if wait else 0, isolation_level=None)
            _when_free(lambda: conn.execute("PRAGMA journal_mode=WAL"))  # see `__init__`
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA busy_timeout={30000 if wait else 0}")
            setattr(self._local, name, conn)
        return conn

    def close(self) -> None:
        for name in ("conn_FULL", "conn_FULL_polling", "conn_NORMAL", "conn_NORMAL_polling"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)

    # -- events ---------------------------------------------------------------------------
    def append_events(
        self, events: Sequence[Event], tracks: Sequence[TrackMeta] = ()
    ) -> tuple[int, int]:
        """Write a batch durably, in one transaction; returns (new, duplicates). An event whose
        (user, event id) is already logged is a duplicate and is not written again. ``tracks``:
        what the client said about the tracks played, kept once per item (the first word)."""
        return self.append_event_batches([(events, tracks)])[0]

    def append_event_batches(
        self, batches: Sequence[tuple[Sequence[Event], Sequence[TrackMeta]]], *, poll: bool = False
    ) -> list[tuple[int, int]]:
        """`append_events` for several batches in one transaction (one disk flush for all):
        each batch's (new, duplicates), counted in order, so a later batch repeating an
        earlier one's event counts it as a duplicate. ``poll``: take the write lock as
        `_begin` does (for the service's writer threads, one per worker process) rather than
        with SQLite's busy handler, whose growing sleeps left some batches waiting a second."""
        now = _iso(datetime.now(UTC))
        if poll:
            conn = self._conn("FULL", wait=False)
            _begin(conn)
        else:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        counts = []
        try:
            for events, tracks in batches:
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO events (user_id, event_id, type, item_id, at, "
                    "ms_played, impression_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e.user_id, e.event_id, e.type, e.item_id, _iso(e.at), e.ms_played,
                      e.impression_id, now) for e in events],
                )  # fmt: skip
                new = conn.total_changes - before
                counts.append((new, len(events) - new))
                conn.executemany(
                    "INSERT OR IGNORE INTO listen_tracks (item_id, msid, meta) VALUES (?, ?, ?)",
                    [(t.item_id, t.msid, json.dumps(t.meta, ensure_ascii=False)) for t in tracks],
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return counts

    def user_events(
        self,
        user_id: str,
        limit: int | None = 50,
        before: datetime | None = None,
        *,
        after: datetime | None = None,
        types: Sequence[str] | None = None,
        oldest_first: bool = False,
    ) -> list[Event]:
        """A listener's accepted events, newest first (by event time, then arrival), or the
        oldest first; only those strictly between ``after`` and ``before`` and of ``types``
        where given."""
        sql = "SELECT * FROM events WHERE user_id = ?"
        params: list[object] = [user_id]
        if before is not None:
            sql += " AND at < ?"
            params.append(_iso(before))
        if after is not None:
            sql += " AND at > ?"
            params.append(_iso(after))
        if types is not None:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            params.extend(types)
        order = "ASC" if oldest_first else "DESC"
        sql += f" ORDER BY at {order}, seq {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_event(r) for r in self._query(sql, params)]

    def event_range(self, user_id: str, types: Sequence[str]) -> tuple[datetime, datetime] | None:
        """The first and the last time of a listener's events of ``types``, or None."""
        row = (
            self._conn()
            .execute(
                f"SELECT min(at), max(at) FROM events WHERE user_id = ? "
                f"AND type IN ({','.join('?' * len(types))})",
                [user_id, *types],
            )
            .fetchone()
        )
        return None if row[0] is None else (parse_iso(row[0]), parse_iso(row[1]))

    def waiting_events(self, limit: int | None = None) -> list[tuple[int, Event]]:
        """Events not yet absorbed into the store, oldest first, with their sequence numbers."""
        sql = "SELECT * FROM events WHERE absorbed = 0 ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [(r["seq"], _event(r)) for r in self._query(sql, [])]

    def count_waiting(self) -> dict[str, int]:
        """How many events and impressions wait to be absorbed into the store."""
        conn = self._conn()
        events = conn.execute("SELECT count(*) FROM events WHERE absorbed = 0").fetchone()[0]
        impressions = conn.execute(
            "SELECT coalesce(sum(impressions), 0) FROM pages WHERE absorbed = 0"
        ).fetchone()[0]
        return {"events": int(events), "impressions": int(impressions)}

    def mark_absorbed(self, table: str, seqs: Iterable[int]) -> None:
        if table not in ("events", "pages", "listen_tracks", "deleted_listens"):
            raise LiveLogError(f"no table {table!r} in the live log")
        seqs = list(seqs)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                conn.execute(
                    f"UPDATE {table} SET absorbed = 1 WHERE seq IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def delete_event(self, user_id: str, event_id: str) -> bool:
        """Forget an event. One the store has absorbed already is also listed in
        ``deleted_listens``, for the next learn job to remove from the store."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT item_id, at, absorbed FROM events WHERE user_id = ? AND event_id = ?",
                [user_id, event_id],
            ).fetchone()
            if row is not None:
                conn.execute(
                    "DELETE FROM events WHERE user_id = ? AND event_id = ?", [user_id, event_id]
                )
                if row[2]:
                    conn.execute(
                        "INSERT INTO deleted_listens (user_id, item_id, at) VALUES (?, ?, ?)",
                        [user_id, row[0], row[1]],
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return row is not None

    # -- what clients said about tracks, deletions, playing now ---------------------------
    def waiting_tracks(self) -> list[tuple[int, TrackMeta]]:
        """Track metadata not yet absorbed into the store, oldest first."""
        rows = self._query(
            "SELECT seq, item_id, msid, meta FROM listen_tracks WHERE absorbed = 0 ORDER BY seq", []
        )
        return [(r["seq"], TrackMeta(r["item_id"], r["msid"], json.loads(r["meta"]))) for r in rows]

    def tracks(self, item_ids: Iterable[str] = (), msid: str | None = None) -> dict[str, TrackMeta]:
        """The kept metadata of the given items, or of the item with that ``msid``, by item id."""
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, TrackMeta] = {}
        if msid is not None:
            rows = self._query(
                "SELECT item_id, msid, meta FROM listen_tracks WHERE msid = ?", [msid]
            )
        else:
            rows = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows += self._query(
                    "SELECT item_id, msid, meta FROM listen_tracks "
                    f"WHERE item_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
        for r in rows:
            found[r["item_id"]] = TrackMeta(r["item_id"], r["msid"], json.loads(r["meta"]))
        return found

    def waiting_deletions(self) -> list[tuple[int, str, str, datetime]]:
        """Absorbed listens deleted since: (seq, user, item, time)."""
        rows = self._query("SELECT * FROM deleted_listens WHERE absorbed = 0 ORDER BY seq", [])
        return [(r["seq"], r["user_id"], r["item_id"], parse_iso(r["at"])) for r in rows]

    def set_playing_now(self, user_id: str, listen: dict[str, object], until: datetime) -> None:
        """Keep a listener's "playing now" notice until ``until`` (the next one replaces it)."""
        self._conn("NORMAL").execute(
            "INSERT OR REPLACE INTO playing_now (user_id, listen, until) VALUES (?, ?, ?)",
            [user_id, json.dumps(listen, ensure_ascii=False), _iso(until)],
        )

    def playing_now(self, user_id: str, now: datetime | None = None) -> dict[str, object] | None:
        """A listener's "playing now" notice while it lasts, else None."""
        rows = self._query(
            "SELECT listen FROM playing_now WHERE user_id = ? AND until > ?",
            [user_id, _iso(now or datetime.now(UTC))],
        )
        return json.loads(rows[0]["listen"]) if rows else None

    # -- served pages -------------------------------------------------------------------
    def append_pages(self, pages: Sequence[PageRow], patience: float = 30.0) -> int:
        """Log served pages (`PageRow`, as `deepcuts.bandit.impressions.page_log_rows` makes
        them); returns how many impressions they hold. ``patience``: seconds to wait for
        another process's write (0: raise `sqlite3.OperationalError` at once if one is under
        way). A page id already logged is not logged again."""
        if not pages:
            return 0
        conn = self._conn("NORMAL", wait=False)
        _begin(conn, patience)
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO pages (page_id, user_id, served_at, impressions, row) "
                "VALUES (?, ?, ?, ?, ?)",
                pages,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return sum(page[3] for page in pages)

    def prune_pages(self, before: datetime, chunk: int = 5_000) -> int:
        """Delete pages the store has absorbed that were served before ``before``; returns
        how many. Oldest first, a chunk per transaction, so the serving workers wait for the
        write lock no longer than a chunk takes (ids and times grow together, so the oldest
        absorbed rows are the first by ``seq``). Times compare as times: a stored time may
        have fractions of a second or not."""
        cutoff = _iso(before)
        conn = self._conn()
        deleted = 0
        while True:
            _begin(conn)
            try:
                n = conn.execute(
                    "DELETE FROM pages WHERE seq IN (SELECT seq FROM pages "
                    "WHERE absorbed = 1 ORDER BY seq LIMIT ?) AND julianday(served_at) < julianday(?)",
                    [chunk, cutoff],
                ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            deleted += n
            if n < chunk:
                return deleted

    def waiting_impressions(self) -> list[tuple[int, dict[str, Any]]]:
        """The impressions of pages not yet absorbed into the store, oldest first, each with
        its page's sequence number (`mark_absorbed` ``"pages"``)."""
        rows = self._query("SELECT seq, row FROM pages WHERE absorbed = 0 ORDER BY seq", [])
        return [(r["seq"], row) for r in rows for row in page_impressions(json.loads(r["row"]))]

    def impressions_since(self, since: datetime) -> list[dict[str, Any]]:
        """Every impression of the pages served at or after ``since`` (absorbed or not),
        oldest first."""
        rows = self._query(
            "SELECT row FROM pages WHERE served_at >= ? ORDER BY seq",
            [_iso(since).replace("Z", "")],
        )
        return [row for r in rows for row in page_impressions(json.loads(r["row"]))]

    def events_since(self, since: datetime, types: Sequence[str] = EVENT_TYPES) -> list[Event]:
        """Every event (absorbed or not) at or after ``since`` of the given types, oldest first."""
        marks = ",".join("?" * len(types))
        rows = self._query(
            f"SELECT * FROM events WHERE at >= ? AND type IN ({marks}) ORDER BY at, seq",
            [_iso(since), *types],
        )
        return [_event(r) for r in rows]

    # -- API keys -------------------------------------------------------------------------
    def create_key(self, user_id: str | None = None, *, admin: bool = False) -> tuple[str, ApiKey]:
        """A new key for a listener (or an admin key); returns the key, shown only now, and its
        record. Only the key's SHA-256 is stored."""
        if admin == (user_id is not None):
            raise LiveLogError("a key is for one listener (user_id) or is an admin key, not both")
        key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        created = datetime.now(UTC)
        self._conn().execute(
            "INSERT INTO api_keys (key_id, key_hash, user_id, is_admin, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [key_id, _hash(key), user_id, int(admin), _iso(created)],
        )
        return key, ApiKey(key_id, user_id, admin, created, None)

    def keys(self) -> list[ApiKey]:
        return [_key(r) for r in self._query("SELECT * FROM api_keys ORDER BY created_at", [])]

    def revoke_key(self, key_id: str) -> bool:
        revoked_at = _iso(datetime.now(UTC))
        cur = self._conn().execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            [revoked_at, key_id],
        )
        if cur.rowcount > 0:  # after the commit: a process that reads the stamp sees the row
            stamp = self.revocation_stamp_path
            temporary = stamp.with_name(f"{stamp.name}.{secrets.token_hex(4)}")
            temporary.write_text(f"{key_id} {revoked_at}\n")
            temporary.replace(stamp)  # a new file (inode) each time, whatever the clock says
        return cur.rowcount > 0

    def check_key(self, key: str) -> ApiKey | None:
        """The live (not revoked) key record for a presented key, or None.

        A key found is remembered (a served request checks its key; reading SQLite each time
        cost 5% of a home page's CPU) until a revocation's stamp changes, for at most
        ``KEY_MEMORY_SECONDS``; an unknown key is read again each time, so a key made by
        another process works at once."""
        try:
            info = os.stat(self.revocation_stamp_path)
            stamp: tuple[int, int] | None = (info.st_ino, info.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        now = time.monotonic()
        if stamp != self._keys_stamp:
            self._checked_keys = {}
            self._keys_stamp = stamp
        known = self._checked_keys.get(key)
        if known is not None and now - known[1] < self.KEY_MEMORY_SECONDS:
            return known[0]
        rows = self._query(
            "SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", [_hash(key)]
        )
        if not rows:
            self._checked_keys.pop(key, None)
            return None
        found = _key(rows[0])
        if len(self._checked_keys) >= 4096:  # keys are few; bound it all the same
            self._checked_keys.clear()
        self._checked_keys[key] = (found, now)
        return found

    def _query(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        conn = self._conn()
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, list(params)).fetchall()
        finally:
            conn.row_factory = None


def _begin(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """BEGIN IMMEDIATE, trying again every 0.2 ms while another process writes (for up to
    ``patience`` seconds; 0: not at all). SQLite's own busy handler sleeps 1, 2, 5, 10, ... ms between tries:
    for many short writes from several worker processes, those sleeps cost more than the
    writes (served pages waited on them for their impressions)."""
    _when_free(lambda: conn.execute("BEGIN IMMEDIATE"), patience)


def _when_free(run: Callable[[], object], patience: float = 30.0) -> None:
    """``run()``, again every 0.2 ms while SQLite says another connection holds a lock it
    needs (for up to ``patience`` seconds; 0: not at all)."""
    deadline = None
    while True:
        try:
            run()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            now = time.monotonic()
            deadline = deadline or now + patience
            if now >= deadline:
                raise
            time.sleep(0.0002)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _event(r: sqlite3.Row) -> Event:
    return Event(
        user_id=r["user_id"],
        event_id=r["event_id"],
        type=r["type"],
        item_id=r["item_id"],
        at=parse_iso(r["at"]),
        ms_played=r["ms_played"],
        impression_id=r["impression_id"],
        received_at=parse_iso(r["received_at"]),
        absorbed=bool(r["absorbed"]),
    )


def _key(r: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=r["key_id"],
        user_id=r["user_id"],
        is_admin=bool(r["is_admin"]),
        created_at=parse_iso(r["created_at"]),
        revoked_at=None if r["revoked_at"] is None else parse_iso(r["revoked_at"]),
    )
