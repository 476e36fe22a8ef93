"""A listener's recent history as the home screen reads it: their latest plays, what they
streamed lately, their stored Discover Weekly, their usual device and their home country.

One object answers for one moment (``now``). By default each question is one query for one
listener, which suits a single page. `prefetch` answers them for every listener at once, in a
few set-wise queries, which is what publishing every listener's shelves needs (a query per
listener per question cost about 30 ms a listener). Both ways give the same answers
(`tests/test_serving.py` compares them).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from deepcuts.store import Store

LATEST = 5  # latest plays kept per listener when prefetched (sessions and "keep the vibe")
STREAMED = 50  # streamed items kept per listener when prefetched ("jump back in")
STREAM_MS = 30_000


class ListenerHistory:
    """Per-listener look-ups at ``now`` (see the module docstring)."""

    def __init__(self, store: Store, now: datetime):
        self.store = store
        self.now = now
        self._latest: dict[str, list[tuple[str, datetime]]] | None = None
        self._streamed: dict[int, dict[str, list[str]]] = {}
        self._weekly: dict[str, tuple[str, list[str]]] | None = None
        self._device: dict[str, str] | None = None
        self._country: dict[str, str] | None = None

    # -- one listener at a time, or from what was prefetched ------------------------------
    def latest_plays(self, user_id: str, n: int) -> list[tuple[str, datetime]]:
        """(item id, played at) of the listener's ``n`` latest timed plays up to now, latest first."""
        if self._latest is not None and n <= LATEST:
            return self._latest.get(user_id, [])[:n]
        return [
            (r[0], r[1])
            for r in self.store.conn.execute(
                "SELECT item_id, played_at FROM listens WHERE user_id = ? AND played_at IS NOT NULL "
                "AND played_at <= ? ORDER BY played_at DESC, item_id LIMIT ?",
                [user_id, self.now, n],
            ).fetchall()
        ]

    def streamed_lately(self, user_id: str, days: int, n: int) -> list[str]:
        """Items the listener streamed (30 s or more; untimed counts as streamed) in the ``days``
        days up to now, the latest stream first."""
        if days in self._streamed and n <= STREAMED:
            return self._streamed[days].get(user_id, [])[:n]
        return [
            r[0]
            for r in self.store.conn.execute(
                "SELECT item_id, max(played_at) AS last FROM listens WHERE user_id = ? AND played_at <= ? "
                "AND played_at > ?::TIMESTAMP - INTERVAL (?) DAY AND coalesce(ms_played, ?) >= ? "
                "GROUP BY item_id ORDER BY last DESC, item_id LIMIT ?",
                [user_id, self.now, self.now, days, STREAM_MS, STREAM_MS, n],
            ).fetchall()
        ]

    def weekly_list(self, user_id: str) -> tuple[str, list[str]] | None:
        """(week, item ids in order) of the listener's latest stored Discover Weekly."""
        if self._weekly is not None:
            return self._weekly.get(user_id)
        rows = self.store.conn.execute(
            "SELECT item_id, week FROM weekly_lists WHERE user_id = ? AND week = "
            "(SELECT max(week) FROM weekly_lists WHERE user_id = ?) ORDER BY position",
            [user_id, user_id],
        ).fetchall()
        return (rows[0][1], [r[0] for r in rows]) if rows else None

    def usual_device(self, user_id: str) -> str | None:
        """The platform the listener plays on most (ties: the first by name)."""
        if self._device is not None:
            return self._device.get(user_id)
        row = self.store.conn.execute(
            "SELECT platform FROM listens WHERE user_id = ? AND platform IS NOT NULL AND platform <> '' "
            "GROUP BY platform ORDER BY count(*) DESC, platform LIMIT 1",
            [user_id],
        ).fetchall()
        return row[0][0] if row else None

    def home_country(self, user_id: str) -> str | None:
        """The listener's home country, else the country they play in most."""
        if self._country is not None:
            return self._country.get(user_id)
        conn = self.store.conn
        row = (
            conn.execute(
                "SELECT country FROM users WHERE user_id = ? AND country IS NOT NULL AND country <> ''",
                [user_id],
            ).fetchall()
            or conn.execute(
                "SELECT country FROM listens WHERE user_id = ? AND country IS NOT NULL AND country <> '' "
                "GROUP BY country ORDER BY count(*) DESC, country LIMIT 1",
                [user_id],
            ).fetchall()
        )
        return row[0][0] if row else None

    # -- everyone at once -------------------------------------------------------------------
    def prefetch(self, streamed_days: tuple[int, ...] = (14,)) -> ListenerHistory:
        """Answer every question for every listener now, set-wise; returns self."""
        conn = self.store.conn
        latest: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        for user_id, item_id, played_at in conn.execute(
            "SELECT user_id, item_id, played_at FROM (SELECT user_id, item_id, played_at, row_number() "
            "OVER (PARTITION BY user_id ORDER BY played_at DESC, item_id) AS k FROM listens "
            "WHERE played_at IS NOT NULL AND played_at <= ?) WHERE k <= ? ORDER BY user_id, k",
            [self.now, LATEST],
        ).fetchall():
            latest[user_id].append((item_id, played_at))
        self._latest = dict(latest)
        for days in streamed_days:
            streamed: dict[str, list[str]] = defaultdict(list)
            for user_id, item_id in conn.execute(
                "SELECT user_id, item_id FROM (SELECT user_id, item_id, row_number() OVER "
                "(PARTITION BY user_id ORDER BY last DESC, item_id) AS k FROM (SELECT user_id, item_id, "
                "max(played_at) AS last FROM listens WHERE played_at <= ? AND played_at > "
                "?::TIMESTAMP - INTERVAL (?) DAY AND coalesce(ms_played, ?) >= ? GROUP BY 1, 2)) "
                "WHERE k <= ? ORDER BY user_id, k",
                [self.now, self.now, days, STREAM_MS, STREAM_MS, STREAMED],
            ).fetchall():
                streamed[user_id].append(item_id)
            self._streamed[days] = dict(streamed)
        weekly: dict[str, tuple[str, list[str]]] = {}
        for user_id, week, item_id in conn.execute(
            "SELECT w.user_id, w.week, w.item_id FROM weekly_lists w JOIN (SELECT user_id, max(week) "
            "AS week FROM weekly_lists GROUP BY 1) m USING (user_id, week) ORDER BY w.user_id, w.position"
        ).fetchall():
            weekly.setdefault(user_id, (week, []))[1].append(item_id)
        self._weekly = weekly
        self._device = dict(
            conn.execute(
                "SELECT user_id, arg_min(platform, (-n, platform)) FROM (SELECT user_id, platform, count(*) "
                "AS n FROM listens WHERE platform IS NOT NULL AND platform <> '' GROUP BY 1, 2) GROUP BY 1"
            ).fetchall()
        )
        played_in = dict(
            conn.execute(
                "SELECT user_id, arg_min(country, (-n, country)) FROM (SELECT user_id, country, count(*) "
                "AS n FROM listens WHERE country IS NOT NULL AND country <> '' GROUP BY 1, 2) GROUP BY 1"
            ).fetchall()
        )
        home = dict(
            conn.execute(
                "SELECT user_id, any_value(country) FROM users WHERE country IS NOT NULL AND country <> '' "
                "GROUP BY 1"
            ).fetchall()
        )
        self._country = {**played_in, **home}
        return self
