"""Served pages' impressions and posted events are committed in groups: everything reaches the
live log before its request goes on, and one bad page or batch fails alone."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime

import pytest

from deepcuts.serving.writers import EventWriter, ImpressionWriter
from deepcuts.store.live import Event, LiveLog


def page(n: int, cards: int = 5) -> tuple[str, str, str, int, str]:
    """A page as `page_log_rows` makes it: (page id, listener, served at, impressions, JSON)."""
    impressions = [{"impression_id": f"p{n}-c{c}", "card_position": c, "propensity": 0.9}
                   for c in range(cards)]  # fmt: skip
    return (f"p{n}", f"u{n % 7}", "2026-12-05T08:00:00", cards,
            json.dumps({"page_id": f"p{n}", "impressions": impressions}))  # fmt: skip


class CountingLog(LiveLog):
    def __init__(self, path):
        super().__init__(path)
        self.transactions = 0

    def append_pages(self, pages, **kw):
        self.transactions += 1
        return super().append_pages(pages, **kw)

    def append_event_batches(self, batches, **kw):
        self.transactions += 1
        return super().append_event_batches(batches, **kw)


async def while_locked(path, pages):
    """Run ``pages`` while another connection holds the live log's write lock for a moment,
    as the other worker process may: the pages queue up behind it and commit as groups."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    running = asyncio.gather(*pages, return_exceptions=True)
    await asyncio.sleep(0.3)
    blocker.execute("COMMIT")
    blocker.close()
    return await running


def test_every_page_is_committed_before_its_request_goes_on(tmp_path):
    live = CountingLog(tmp_path / "live.sqlite")
    writer = ImpressionWriter(live)

    async def serve(n: int) -> set[str]:
        await writer.log(page(n))
        # committed: a reader (another connection) sees this page's rows now
        reader = LiveLog(tmp_path / "live.sqlite")
        return {str(row["impression_id"]) for _, row in reader.waiting_impressions()}

    seen = asyncio.run(while_locked(live.path, [serve(n) for n in range(60)]))
    for n, ids in enumerate(seen):
        assert {f"p{n}-c{c}" for c in range(5)} <= ids
    logged = [row for _, row in live.waiting_impressions()]
    assert len(logged) == 300 and len({row["impression_id"] for row in logged}) == 300
    assert live.transactions < 10  # 60 pages, in a few groups


def test_the_pages_of_one_turn_of_the_loop_commit_together_on_its_thread(tmp_path):
    """With no other writer, the pages served in one turn of the event loop are committed in
    one transaction at its end, without a hop to the writer thread."""
    import threading

    live = CountingLog(tmp_path / "live.sqlite")
    writer = ImpressionWriter(live)
    before = set(threading.enumerate())  # earlier tests' writer threads live on (daemons)

    async def serve() -> list[int]:
        return await asyncio.gather(*(writer.log(page(n)) for n in range(20)))

    assert asyncio.run(serve()) == [5] * 20
    assert live.transactions == 1
    assert len(live.waiting_impressions()) == 100
    assert not [t for t in set(threading.enumerate()) - before if t.name == "impression-writer"]


def test_each_event_loop_commits_its_own_pages(tmp_path):
    """A test client runs an event loop per thread. While one loop's turn has a page waiting,
    a page served by another loop, in another thread, is committed by that loop: left to the
    first, it would wait for ever (a loop is woken only by its own thread's callbacks)."""
    import threading

    live = LiveLog(tmp_path / "live.sqlite")
    writer = ImpressionWriter(live)
    first = asyncio.new_event_loop()
    waiting = first.create_task(writer.log(page(1)))
    first.call_soon(first.stop)
    first.run_forever()  # one turn: the page is waiting for the turn's commit, not yet made
    assert not waiting.done()

    other: list[int] = []
    thread = threading.Thread(
        target=lambda: other.append(asyncio.run(writer.log(page(2)))), daemon=True
    )
    thread.start()
    thread.join(timeout=20)
    assert other == [5], "the other loop's page was never committed"
    assert first.run_until_complete(waiting) == 5
    first.close()
    assert len(live.waiting_impressions()) == 10


def test_one_bad_page_fails_alone(tmp_path):
    live = CountingLog(tmp_path / "live.sqlite")
    writer = ImpressionWriter(live)
    bad = ("p9", "u1", "2026-12-05T08:00:00", 1)  # a malformed row: no JSON

    pages = [writer.log(row) for row in (page(1), bad, page(2), page(3))]
    outcomes = asyncio.run(while_locked(live.path, pages))
    assert outcomes[0] == 5 and outcomes[2] == 5 and outcomes[3] == 5
    assert isinstance(outcomes[1], sqlite3.ProgrammingError)
    ids = {row["impression_id"] for _, row in live.waiting_impressions()}
    assert ids == {f"p{n}-c{c}" for n in (1, 2, 3) for c in range(5)}
    assert live.transactions > 4  # the group that failed was retried page by page


def test_a_bad_page_alone_fails_its_request(tmp_path):
    writer = ImpressionWriter(LiveLog(tmp_path / "live.sqlite"))
    with pytest.raises(sqlite3.ProgrammingError):
        asyncio.run(writer.log(("p1", "u", "2026-12-05T08:00:00", 1)))


def test_impression_ids_are_unique_and_sort_in_the_order_they_were_made():
    """The live log's unique index on page ids grows at its right edge only if ids made later
    sort later (random ids put every page on a random page of the index)."""
    from deepcuts.bandit.types import new_id

    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def plays(n: int, size: int = 4) -> list[Event]:
    at = datetime(2026, 12, 5, 8, tzinfo=UTC)
    return [Event(f"u{n % 7}", f"b{n}-e{k}", "play", f"t{k}", at, 40_000) for k in range(size)]


def test_every_event_batch_is_on_disk_before_its_request_goes_on(tmp_path):
    live = CountingLog(tmp_path / "live.sqlite")
    writer = EventWriter(live)

    async def post(n: int) -> tuple[tuple[int, int], set[str]]:
        counts = await writer.append(plays(n))
        reader = LiveLog(tmp_path / "live.sqlite")  # another connection sees the batch now
        return counts, {e.event_id for e in reader.user_events(f"u{n % 7}", 1000)}

    answers = asyncio.run(while_locked(live.path, [post(n) for n in range(60)]))
    for n, (counts, seen) in enumerate(answers):
        assert counts == (4, 0)
        assert {f"b{n}-e{k}" for k in range(4)} <= seen
    assert live.count_waiting()["events"] == 240
    assert live.transactions < 10  # 60 batches, in a few groups


def test_a_repeated_event_counts_once_even_within_one_group(tmp_path):
    live = CountingLog(tmp_path / "live.sqlite")
    writer = EventWriter(live)
    batches = [plays(1), plays(1), plays(2)[:2] + plays(1)[:1]]
    answers = asyncio.run(while_locked(live.path, [writer.append(b) for b in batches]))
    assert answers == [(4, 0), (0, 4), (2, 1)]
    assert live.count_waiting()["events"] == 6
    assert live.transactions == 1


def test_one_bad_event_batch_fails_alone(tmp_path):
    live = CountingLog(tmp_path / "live.sqlite")
    writer = EventWriter(live)
    bad = [Event("u1", "x", "play", "t1", "yesterday")]  # type: ignore[arg-type]  # no time
    answers = asyncio.run(
        while_locked(live.path, [writer.append(b) for b in (plays(1), bad, plays(2))])
    )
    assert answers[0] == (4, 0) and answers[2] == (4, 0)
    assert isinstance(answers[1], AttributeError)
    assert live.count_waiting()["events"] == 8
    assert live.transactions > 3  # the group that failed was retried batch by batch


def _open_live_log(path, barrier, answers):
    barrier.wait()
    try:
        LiveLog(path)
        answers.put("")
    except Exception as exc:  # reported to the test, which names it
        answers.put(repr(exc))


def test_processes_opening_a_new_live_log_at_once_all_open_it(tmp_path):
    """`serve --workers 2` opens the log in each worker at once. SQLite answers "database is
    locked" at once (its busy timeout does not apply) when two connections would wait on each
    other creating the tables; before this was retried, 4 in 40 rounds of 6 processes failed."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(15):
        barrier, answers = ctx.Barrier(6), ctx.Queue()
        path = tmp_path / f"round-{round_}" / "live.sqlite"
        processes = [
            ctx.Process(target=_open_live_log, args=(path, barrier, answers)) for _ in range(6)
        ]
        for process in processes:
            process.start()
        failures += [answer for answer in (answers.get(timeout=60) for _ in processes) if answer]
        for process in processes:
            process.join(timeout=60)
    assert failures == []


def test_a_live_log_with_a_row_per_card_has_its_rows_moved_into_pages(tmp_path):
    """A live log written by an earlier version kept a row per card; opening it moves them
    into pages, losing none, and a page is waiting unless every card of it was absorbed."""
    path = tmp_path / "live.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute(
        "CREATE TABLE impressions (seq INTEGER PRIMARY KEY AUTOINCREMENT, impression_id TEXT "
        "NOT NULL UNIQUE, user_id TEXT NOT NULL, served_at TEXT NOT NULL, row TEXT NOT NULL, "
        "absorbed INTEGER NOT NULL DEFAULT 0)"
    )
    cards = [(p, c, int(p == "a" or (p == "b" and c == 0))) for p in "abc" for c in range(3)]
    old.executemany(
        "INSERT INTO impressions (impression_id, user_id, served_at, row, absorbed) "
        "VALUES (?, ?, ?, ?, ?)",
        [(f"{p}{c}", f"u-{p}", "2026-12-05T08:00:00",
          json.dumps({"impression_id": f"{p}{c}", "page_id": p, "card_position": c}), absorbed)
         for p, c, absorbed in cards],
    )  # fmt: skip
    old.close()

    # two processes (here threads, each with its own connections) open it at once: one moves
    # the rows, the other waits for it and finds them moved
    import threading

    opened: list[LiveLog] = []
    threads = [threading.Thread(target=lambda: opened.append(LiveLog(path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(opened) == 2
    live = opened[0]
    waiting = live.waiting_impressions()
    assert [row["impression_id"] for _, row in waiting] == ["b0", "b1", "b2", "c0", "c1", "c2"]
    assert all(row["page_id"] == row["impression_id"][0] for _, row in waiting)
    assert live.count_waiting()["impressions"] == 6
    tables = {name for (name,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "impressions" not in tables
    assert {
        row["impression_id"] for row in live.impressions_since(datetime(2026, 12, 5, tzinfo=UTC))
    } == {f"{p}{c}" for p, c, _ in cards}
    assert LiveLog(path).count_waiting()["impressions"] == 6  # opened again: nothing moves twice
