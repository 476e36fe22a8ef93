"""Finding a listener or an item the way people type it.

Ids in the store are namespaced by where they came from (``spotify:user:me``,
``lastfm:user:2``, ``lastfm:artist:89``, ``spotify:track:4uLU6hMC...``; a simulated world's
``u00042`` and ``t000123`` have no namespace). People type the part they know: ``me``,
``2``, ``t000123``. `resolve_user` and `resolve_item` turn what was typed into the one stored
id it names, or raise `IdNotFound` (nothing matches; the message says how to list ids) or
`AmbiguousId` (several match; the message lists them). Every command and service that takes a
listener or an item id goes through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deepcuts.store.db import Store

MAX_CANDIDATES = 10  # how many candidates an ambiguity error lists


class IdLookupError(LookupError):
    """An id typed by a person names no stored id, or several."""

    def __init__(self, kind: str, typed: str, candidates: Sequence[str] = ()):
        super().__init__(kind, typed, tuple(candidates))
        self.kind = kind
        self.typed = typed
        self.candidates = tuple(candidates)


class IdNotFound(IdLookupError):
    """No stored id matches; the message names the command that lists them."""

    def __str__(self) -> str:
        lister = (
            "`deepcuts users`" if self.kind == "listener" else "`deepcuts tracks --search TEXT`"
        )
        return f"no {self.kind} {self.typed!r} in the store (list them with {lister})"


class AmbiguousId(IdLookupError):
    """Several stored ids match; the message lists them (`MAX_CANDIDATES` at most)."""

    def __str__(self) -> str:
        shown = ", ".join(self.candidates[:MAX_CANDIDATES])
        more = len(self.candidates) - MAX_CANDIDATES
        return (
            f"{self.kind} {self.typed!r} is ambiguous: it could be {shown}"
            + (f" and {more} more" if more > 0 else "")
            + "; give the full id"
        )


@dataclass(frozen=True)
class _Source:
    """A column of stored ids: `table`.`column`."""

    table: str
    column: str


_USERS = (_Source("users", "user_id"), _Source("listens", "user_id"))
_ITEMS = (
    _Source("tracks", "track_id"),
    _Source("artists", "artist_id"),
    _Source("listens", "item_id"),
)


def _matches(store: Store, sources: Sequence[_Source], typed: str) -> list[str]:
    """Stored ids equal to `typed`, else those whose last ``:``-separated part is `typed`.

    The sources are tried in order and the first that has a match answers (the small
    `users` table before the large `listens` one).
    """
    for source in sources:
        exact = store.conn.execute(
            f"SELECT 1 FROM {source.table} WHERE {source.column} = ? LIMIT 1", [typed]
        ).fetchall()
        if exact:
            return [typed]
    if ":" in typed:  # a namespaced id that is not stored: no shorter form to try
        return []
    found: set[str] = set()
    for source in sources:
        rows = store.conn.execute(
            f"SELECT DISTINCT {source.column} FROM {source.table} "
            f"WHERE ends_with({source.column}, ':' || ?) LIMIT {MAX_CANDIDATES * 10}",
            [typed],
        ).fetchall()
        found.update(r[0] for r in rows)
        if found:
            break
    return sorted(found)


def resolve_user(store: Store, typed: str) -> str:
    """The stored listener id that `typed` names.

    `typed` is a full id (``spotify:user:me``, ``u00042``) or the part after the last colon of
    exactly one stored id (``me`` for ``spotify:user:me``, ``2`` for ``lastfm:user:2``).
    Listeners are looked up in ``users``, then in ``listens``.

    Raises
    ------
    IdNotFound : no listener matches.
    AmbiguousId : several do (``me`` both as ``spotify:user:me`` and ``listenbrainz:user:me``);
        ``.candidates`` lists them.

    Example
    -------
    >>> with Store(":memory:", create=True) as s:
    ...     _ = s.conn.execute("INSERT INTO users (user_id) VALUES ('spotify:user:me')")
    ...     resolve_user(s, "me")
    'spotify:user:me'
    """
    return _resolve(store, _USERS, "listener", typed)


def resolve_item(store: Store, typed: str) -> str:
    """The stored item id (a track or an artist) that `typed` names.

    `typed` is a full id (``lastfm:artist:89``, ``t000123``), the part after the last colon
    of exactly one stored id (``89``, a Spotify track's base-62 id), or else the exact name of
    one track or artist (case-insensitive). Raises `IdNotFound` or `AmbiguousId` as
    `resolve_user` does.
    """
    typed = typed.strip()
    found = _matches(store, _ITEMS, typed)
    if not found:
        found = sorted(
            r[0]
            for r in store.conn.execute(
                "SELECT track_id FROM tracks WHERE lower(name) = lower(?) "
                "UNION SELECT artist_id FROM artists WHERE lower(name) = lower(?) LIMIT 100",
                [typed, typed],
            ).fetchall()
        )
    return _one(found, "item", typed)


def _resolve(store: Store, sources: Sequence[_Source], kind: str, typed: str) -> str:
    typed = typed.strip()
    return _one(_matches(store, sources, typed), kind, typed)


def _one(found: list[str], kind: str, typed: str) -> str:
    if not found:
        raise IdNotFound(kind, typed)
    if len(found) > 1:
        raise AmbiguousId(kind, typed, found)
    return found[0]


def find_users(store: Store, search: str | None = None, limit: int = 50) -> list[tuple[str, int]]:
    """Listener ids with their number of listens rows, most active first; with `search`,
    only ids containing it (case-insensitive)."""
    like = f"%{_escape(search)}%" if search else "%"
    return [
        (r[0], int(r[1]))
        for r in store.conn.execute(
            """
            WITH u AS (SELECT user_id FROM users UNION SELECT DISTINCT user_id FROM listens)
            SELECT u.user_id, count(l.user_id) AS n FROM u LEFT JOIN listens l USING (user_id)
            WHERE u.user_id ILIKE ? ESCAPE '\\'
            GROUP BY u.user_id ORDER BY n DESC, u.user_id LIMIT ?
            """,
            [like, limit],
        ).fetchall()
    ]


def find_items(
    store: Store, search: str | None = None, limit: int = 50
) -> list[tuple[str, str, str, str]]:
    """Items as ``(id, kind, name, artist name)``, kind ``track`` or ``artist`` (the items of
    artist-level data such as HetRec); with `search`, those whose id, name or artist's name
    contains it (case-insensitive), tracks first."""
    like = f"%{_escape(search)}%" if search else "%"
    return [
        (r[0], r[1], r[2] or "", r[3] or "")
        for r in store.conn.execute(
            """
            SELECT id, kind, name, artist FROM (
                SELECT t.track_id AS id, 'track' AS kind, t.name, a.name AS artist FROM tracks t
                LEFT JOIN artists a ON a.artist_id = t.artist_id
                WHERE t.track_id ILIKE ? ESCAPE '\\' OR t.name ILIKE ? ESCAPE '\\'
                   OR a.name ILIKE ? ESCAPE '\\'
                UNION ALL
                SELECT artist_id, 'artist', name, name FROM artists
                WHERE artist_id ILIKE ? ESCAPE '\\' OR name ILIKE ? ESCAPE '\\'
            ) ORDER BY kind DESC, id LIMIT ?
            """,
            [like, like, like, like, like, limit],
        ).fetchall()
    ]


def _escape(text: str) -> str:
    """`text` for an ILIKE pattern: its own % and _ matched literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
