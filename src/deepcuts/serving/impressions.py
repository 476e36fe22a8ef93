"""Served pages' impressions, committed in groups.

A home page is logged (each card with its propensities) before it is answered. One SQLite
transaction per page made every page view queue for the live log's write lock, which both
worker processes share. Here one writer thread per worker takes every page that is waiting,
writes them in one transaction, and wakes each waiting request when its page is committed. A
page is still on disk before its answer leaves; what the group saves is a transaction per page.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence

from deepcuts.store.live import LiveLog

log = logging.getLogger(__name__)

Rows = Sequence[dict[str, object]]


class ImpressionWriter:
    """Logs pages' impressions to ``live`` from a thread of its own (started on first use)."""

    def __init__(self, live: LiveLog):
        self.live = live
        self._waiting: queue.SimpleQueue[tuple[Rows, asyncio.AbstractEventLoop, asyncio.Future]]
        self._waiting = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    async def log(self, rows: Rows) -> int:
        """Return once ``rows`` are committed (with whatever other pages were waiting)."""
        if not rows:
            return 0
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        self._start()
        self._waiting.put((rows, loop, committed))
        return await committed

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._starting:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="impression-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            group = [self._waiting.get()]
            while True:
                try:
                    group.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            self._commit(group)

    def _commit(self, group: list[tuple[Rows, asyncio.AbstractEventLoop, asyncio.Future]]) -> None:
        error = self._append([row for rows, _, _ in group for row in rows])
        outcomes = [error] * len(group)
        if error is not None and len(group) > 1:
            # one bad page must not fail the pages that came with it: each on its own
            log.warning("a group of %d pages failed to log (%s); logging each alone",
                        len(group), error)  # fmt: skip
            outcomes = [self._append(rows) for rows, _, _ in group]
        for (rows, loop, committed), outcome in zip(group, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, committed, len(rows), outcome)

    def _append(self, rows: Rows) -> BaseException | None:
        """Commit ``rows``; the exception that stopped them, or None."""
        try:
            self.live.append_impressions(rows)
        except Exception as exc:
            return exc
        return None


def _settle(committed: asyncio.Future, n: int, error: BaseException | None) -> None:
    if committed.done():  # the request went away (client disconnected)
        return
    if error is None:
        committed.set_result(n)
    else:
        committed.set_exception(error)
