"""What requests write to the live log, committed in groups: served pages (with their
impressions) and posted events.

A home page is logged (each card with its propensities) before it is answered, and a batch of
events is on disk before its 202. One SQLite transaction per request made every request queue
for the live log's write lock, which both worker processes share; events, each flushed to disk
and waiting on SQLite's busy handler (sleeps of 1, 2, 5, ... 100 ms), had a p99 over a second.
Here one writer thread per worker and kind takes everything that is waiting, writes it in one
transaction, and wakes each waiting request when its part is committed; served pages first try
the event loop's own thread (`ImpressionWriter`). What a group saves is transactions (and, for
events, disk flushes), never a request's durability: nothing is answered before it is committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from deepcuts.store.live import Event, LiveLog, PageRow, TrackMeta

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupWriter(Generic[Item, Result]):
    """Commits what requests submit from a thread of its own (started on first use), every
    waiting item in one call of ``write_group`` (items -> their results, in order). If a
    group fails, each of its items is written alone, so one bad item fails alone."""

    def __init__(self, write_group: Callable[[list[Item]], list[Result]], name: str):
        self._write_group = write_group
        self._name = name
        self._waiting: queue.SimpleQueue[tuple[Item, asyncio.AbstractEventLoop, asyncio.Future]]
        self._waiting = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    async def submit(self, item: Item) -> Result:
        """Return ``item``'s result once it is committed (with whatever else was waiting)."""
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        self._start()
        self._waiting.put((item, loop, committed))
        return await committed

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._starting:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
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

    def _commit(self, group: list[tuple[Item, asyncio.AbstractEventLoop, asyncio.Future]]) -> None:
        outcomes = self._write([item for item, _, _ in group])
        if isinstance(outcomes, BaseException):
            if len(group) > 1:  # one bad item must not fail the items that came with it
                log.warning("%s: a group of %d failed (%s); writing each alone",
                            self._name, len(group), outcomes)  # fmt: skip
            outcomes = [_only(self._write([item])) if len(group) > 1 else outcomes
                        for item, _, _ in group]  # fmt: skip
        for (_, loop, committed), outcome in zip(group, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, committed, outcome)

    def _write(self, items: list[Item]) -> list[Result] | BaseException:
        """The group's results, or the exception that stopped it (nothing was committed)."""
        try:
            return self._write_group(items)
        except Exception as exc:
            return exc


class ImpressionWriter:
    """Logs served pages to ``live`` (`LiveLog.append_pages`), in groups.

    The pages a turn of the event loop served are committed at its end, on the loop's own
    thread: a page's commit skips the disk flush (`LiveLog._conn`, NORMAL) and costs about a
    tenth of a millisecond. Handing every page to the writer thread cost about 0.4 ms more CPU
    a home request (1.55 against 1.11 ms through the app in process; 2.0 against 1.6 ms a
    request for the server under `benchmarks/bench_serve.py`). Only when another process is
    writing (the loop must not wait) or a group fails do the pages go to the writer thread,
    which waits its turn and writes a failed group's pages one by one."""

    def __init__(self, live: LiveLog):
        self.live = live
        self._group: GroupWriter[PageRow, int] = GroupWriter(self._append, "impression-writer")
        # the pages of each event loop's present turn (one loop under uvicorn; a test client
        # may run several, each in a thread of its own, and each settles only its own)
        self._turns: dict[asyncio.AbstractEventLoop, list[tuple[PageRow, asyncio.Future[bool]]]]
        self._turns = {}

    async def log(self, page: PageRow) -> int:
        """Return once ``page`` is committed: how many impressions it holds."""
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        turn = self._turns.get(loop)
        if turn is None:  # the turn's first page: commit them all at its end
            turn = self._turns[loop] = []
            loop.call_soon(self._commit_turn, loop)
        turn.append((page, committed))
        if await committed:
            return page[3]
        return await self._group.submit(page)

    def _commit_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting = self._turns.pop(loop)
        try:
            self.live.append_pages([page for page, _ in waiting], patience=0)
            done = True
        except Exception:  # another process holds the write lock, or a page is bad
            done = False
        for _, committed in waiting:
            if not committed.done():  # the request went away (client disconnected)
                committed.set_result(done)

    def _append(self, pages: list[PageRow]) -> list[int]:
        self.live.append_pages(pages)
        return [page[3] for page in pages]


class EventWriter:
    """Writes batches of events durably to ``live`` (`LiveLog.append_event_batches`), batches
    in groups: one transaction and one disk flush for every batch that was waiting."""

    def __init__(self, live: LiveLog):
        self.live = live
        self._group: GroupWriter[tuple[Sequence[Event], Sequence[TrackMeta]], tuple[int, int]]
        self._group = GroupWriter(self._append, "event-writer")

    async def append(
        self, events: Sequence[Event], tracks: Sequence[TrackMeta] = ()
    ) -> tuple[int, int]:
        """Return once the batch is on disk: (new, duplicates), as `LiveLog.append_events`."""
        return await self._group.submit((events, tracks))

    def _append(self, batches: list[Any]) -> list[tuple[int, int]]:
        return self.live.append_event_batches(batches, poll=True)


def _only(outcome: list[Result] | BaseException) -> Result | BaseException:
    return outcome if isinstance(outcome, BaseException) else outcome[0]


def _settle(committed: asyncio.Future, outcome: object) -> None:
    if committed.done():  # the request went away (client disconnected)
        return
    if isinstance(outcome, BaseException):
        committed.set_exception(outcome)
    else:
        committed.set_result(outcome)
