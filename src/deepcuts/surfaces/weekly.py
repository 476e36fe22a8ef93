"""Discover Weekly: every Monday, 30 tracks each listener has never played, varied, explained.

The recipe, stage by stage (each testable alone):

1. sources propose candidates (`deepcuts.candidates.sources`): the model's own top items,
   taste clusters, playlist co-occurrence, audio and text neighbours of favourites, friends,
   what is rising in the listener's region, new releases;
2. filters: the model's scores of everything the listener ever played (a skip included),
   banned or hid (or whose artist they banned), or got in their previous 4 weekly lists, are
   set to -inf before any source looks, so no source can propose them;
3. ranking: features per (user, candidate), scored by the learned ranker (trained on what
   listeners went on to stream) or the hand-weighted blend;
4. shape: at most 2 tracks per artist and 1 per album, maximal marginal relevance, a share of
   fresh tracks; exactly 30 unless the catalogue cannot supply them, in which case the list
   says why;
5. explanation: each track carries the reason of the source that ranked it highest.

A list is keyed by user and ISO week: the same inputs give the same list (the small random
jitter that varies lists between weeks is a hash of user, week and item).
"""

from __future__ import annotations

import gc
import logging
import re
import threading
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.special import ndtri

from deepcuts.candidates.base import NONE, Candidates, Source, UserBatch, World
from deepcuts.candidates.sources import (
    CFSource,
    ContentSource,
    CooccurrenceSource,
    FriendsSource,
    NewReleaseSource,
    RegionSource,
    TasteClusterSource,
)
from deepcuts.index import EXACT_MAX_ITEMS, VoyagerIndex
from deepcuts.models.base import Recommender
from deepcuts.ranking.features import Pool, merge
from deepcuts.ranking.ranker import BLEND_WEIGHTS, BlendRanker, LearnedRanker
from deepcuts.ranking.shape import Shape, shape_lists
from deepcuts.signals.catalogue import load_catalogue
from deepcuts.signals.confidence import Interactions
from deepcuts.signals.ids import IdMap
from deepcuts.signals.side import build_side_info
from deepcuts.store import Store

log = logging.getLogger(__name__)

PREVIOUS_WEEKS = 4
WEEK_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$")


class WeekError(ValueError):
    """A week is not written as an ISO week (2026-W48)."""


def parse_week(text: str) -> date:
    """The Monday of an ISO week written ``YYYY-Www``."""
    match = WEEK_PATTERN.match(text.strip())
    if not match:
        raise WeekError(f"week must be an ISO week like 2026-W48, not {text!r}")
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise WeekError(f"{text!r} is not a week of that year") from exc


def week_name(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def default_sources() -> list[Source]:
    return [
        CFSource(),
        TasteClusterSource(),
        CooccurrenceSource(),
        ContentSource(),
        FriendsSource(),
        RegionSource(),
        NewReleaseSource(),
    ]


@dataclass
class WeeklyTrack:
    item: int
    score: float
    source: str
    reason: str


@dataclass
class WeeklyList:
    user: int
    week: str
    tracks: list[WeeklyTrack]
    note: str = ""  # why the list is shorter than asked, if it is


@dataclass
class WeeklyConfig:
    shape: Shape = field(default_factory=Shape)
    batch_size: int = 256
    jitter: float = 0.05  # weekly variety, in standard deviations of the user's scores
    # Discovery over safe bets: how far to prefer less played items, in standard deviations
    # of the ranker's scores per standard deviation of novelty within the user's candidates.
    novelty_weight: float = 0.0
    seed: int = 0
    n_clusters: int | None = None  # taste clusters over items; None: from the catalogue size
    exact_max_items: int = EXACT_MAX_ITEMS  # above this, the model's top items come from HNSW
    workers: int = 2  # batches built at once, in threads


class DiscoverWeekly:
    """Builds the weekly lists of a week from a fitted model and the store.

    Parameters
    ----------
    store : the store (read for the catalogue, bans, friends, regions, earlier lists).
    model : a fitted recommender over `interactions`' index space.
    interactions : the signals the model was fit on (built until the week starts).
    week_start : the Monday of the week.
    content_vectors : (n_items, d) audio/text vectors, or None.
    ranker : a fitted `LearnedRanker`, or None for the hand-weighted blend.
    played : users x items, everything each listener played (None: read from the store, up
        to `until`); evaluation passes its training pairs.
    until : the end of the data the lists may use [default: midnight starting `week_start`].
    allowed : (n_items,) bool, or None: the only items a list may hold (a music server's
        library). Every source then proposes only these, so a list still has 30 tracks where
        the set holds that many the listener may get, rather than fewer after a filter.
    """

    def __init__(
        self,
        store: Store,
        model: Recommender,
        interactions: Interactions,
        week_start: date,
        *,
        content_vectors: np.ndarray | None = None,
        ranker: LearnedRanker | None = None,
        sources: list[Source] | None = None,
        config: WeeklyConfig | None = None,
        played: sp.csr_matrix | None = None,
        until: datetime | None = None,
        allowed: np.ndarray | None = None,
    ):
        if allowed is not None:
            allowed = np.asarray(allowed, bool)
            if allowed.shape != (len(interactions.items),):
                raise ValueError(
                    f"allowed must be one flag per item ({len(interactions.items)}), not {allowed.shape}"
                )
        self.allowed = allowed
        self.store = store
        self.until = until or datetime.combine(week_start, datetime.min.time())
        self.model = model
        self.interactions = interactions
        self.week_start = week_start
        self.week = week_name(week_start)
        self.ranker = ranker or BlendRanker()
        self.sources = sources or default_sources()
        self.config = config or WeeklyConfig()
        # Every pair ever played is the setup's slowest query: it runs on a cursor of its own
        # (DuckDB answers both at once) while the rest of the world is built.
        with ThreadPoolExecutor(2) as helpers:
            reader = store.cursor() if played is None else None
            try:
                reading = (
                    None
                    if reader is None
                    else helpers.submit(
                        _played, reader.conn, interactions.users, interactions.items, self.until
                    )
                )
                self.world = self._world(content_vectors, helpers)
                if reading is not None:
                    played = reading.result()
            finally:
                if reader is not None:
                    reader.close()
        self.played = played.tocsr()  # favourites (and so reasons) come from these
        self.forbidden = self._forbidden(played)
        self.index = self._index()
        self.long_tail = self.world.catalogue.long_tail()  # the same for every batch
        self.model_ids: dict[str, str] = {}  # the registered versions used, by kind
        self._buffers = threading.local()  # per-thread score buffers (see `_scores`)

    # -- shipping to other processes -------------------------------------------------------
    def __getstate__(self) -> dict:
        """What another process needs to build lists (a Spark executor's Python worker):
        everything but the store connection, the thread-local buffers and the HNSW index,
        which is rebuilt from the item factors on arrival (same seed)."""
        state = dict(self.__dict__)
        for name in ("store", "_buffers", "index"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.store = None
        self._buffers = threading.local()
        self.index = self._index()

    # -- what is the same for every user -------------------------------------------------
    def _world(self, content_vectors: np.ndarray | None, helpers: ThreadPoolExecutor) -> World:
        """What is the same for every list. The taste clusters need no store: they are found
        in a `helpers` thread while the store is read."""
        inter = self.interactions
        positives = inter.positives()
        # Popularity is what the data up to the list knows: listeners per item.
        plays = np.asarray(positives.sum(axis=0)).ravel().astype(np.float64)
        vectors = _unit(self.model.item_vectors())
        clustering = (
            None
            if vectors is None
            else helpers.submit(
                _taste_clusters, vectors, plays, self.config.n_clusters, self.config.seed
            )
        )
        catalogue = load_catalogue(self.store, inter.items, plays)
        side = build_side_info(
            self.store, inter.users, inter.items, until=self.until, tags=False, neighbours=50
        )
        world = World(
            catalogue=catalogue,
            week_start=self.week_start,
            item_vectors=vectors,
            content_vectors=_unit(content_vectors),
            friends=side.friends,
            user_names=inter.users.ids,
            listeners=positives.tocsr(),
            user_region=side.user_region,
            regions=side.regions or [],
            cooccurrence=side.item_cooccurrence,  # each item's 50 strongest: products stay sparse
        )
        if side.user_region is not None:
            world.rising = _rising(
                self.store, inter, side.user_region, len(side.regions), self.until
            )
        if clustering is not None:
            world.clusters = clustering.result()
        return world

    def _forbidden(self, played: sp.csr_matrix) -> sp.csr_matrix:
        """Users x items: everything never to put on this week's lists."""
        inter, until = self.interactions, self.until
        parts = [
            inter.seen(),
            played,
            _banned_artists(self.store, inter, self.world.catalogue, until),
        ]
        parts.append(_previous_lists(self.store, inter.users, inter.items, self.week_start))
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        out = out.tocsr()
        out.data[:] = 1
        return out

    def _factor_model(self) -> bool:
        """Whether the model's score is the dot product of user and item factors (ALS), so that
        its top items can be retrieved from a nearest-neighbour index."""
        from deepcuts.models.cf.als import ALS

        return isinstance(self.model, ALS)

    def _index(self) -> VoyagerIndex | None:
        """For catalogues too large to score exhaustively, and factor models: an HNSW index
        from which the model's own top items are retrieved."""
        if self.allowed is not None:  # a few allowed items: scored exactly, never looked up
            return None
        if not self._factor_model() or len(self.model.item_factors_) <= self.config.exact_max_items:
            return None
        return VoyagerIndex(self.model.item_factors_, seed=self.config.seed)

    # -- per batch -----------------------------------------------------------------------
    def batch(self, users: np.ndarray) -> UserBatch:
        """A batch of users with the model's scores of every item, -inf where forbidden.

        For factor models the scores live in a buffer of the calling thread that its next
        batch reuses: a batch is for building its lists, not for keeping."""
        rows = self.interactions.matrix[users]
        scores = self._scores(users, rows)
        forbidden = self.forbidden[users].astype(np.float32)
        if self.allowed is not None:
            # Everything outside the allowed set is forbidden to every user of the batch, so
            # that the sources reading `forbidden` (playlists, friends, region) skip it too.
            outside = np.flatnonzero(~self.allowed)
            scores[:, outside] = -np.inf
            n = len(users)
            rest = sp.csr_matrix(
                (
                    np.ones(n * len(outside), np.float32),
                    np.tile(outside, n),
                    np.arange(n + 1) * len(outside),
                ),
                shape=forbidden.shape,
            )
            forbidden = (forbidden + rest).tocsr()
            forbidden.data[:] = 1
        forbidden.sort_indices()
        coo = forbidden.tocoo()
        scores[coo.row, coo.col] = -np.inf
        retrieve = None
        if self.index is not None:
            vectors = self.model.user_vectors(users, rows)

            def retrieve(k: int) -> tuple[np.ndarray, np.ndarray]:
                return self.index.search(vectors, k, exclude=forbidden)

        return UserBatch(
            users=users,
            history=rows,
            forbidden=forbidden,
            scores=scores,
            retrieve=retrieve,
            played=self.played[users],
        )

    def _scores(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        if self._factor_model():
            # A fresh (batch x catalogue) array costs more in page faults than the product
            # itself (about 0.4 s against 0.1 s for 1,024 x 50,000 here): reuse one per thread.
            shape = (len(users), len(self.model.item_factors_))
            buffer = getattr(self._buffers, "scores", None)
            if buffer is None or buffer.shape[0] < shape[0] or buffer.shape[1] != shape[1]:
                buffer = self._buffers.scores = np.empty(
                    (max(shape[0], self.config.batch_size), shape[1]), np.float32
                )
            out = buffer[: shape[0]]
            np.matmul(self.model.user_vectors(users, rows), self.model.item_factors_.T, out=out)
            return out
        scores = np.asarray(self.model.score(users, rows), np.float32)
        if not scores.flags.owndata or not scores.flags.writeable:
            scores = scores.copy()  # the model's own array: -inf goes into a copy
        return scores

    def pool(self, batch: UserBatch) -> Pool:
        proposals: list[Candidates] = [s.generate(batch, self.world) for s in self.sources]
        return merge(batch, self.world, proposals)

    def build(
        self, users: np.ndarray | None = None, progress: Callable[[int], None] | None = None
    ) -> Iterator[WeeklyList]:
        """The lists of `users` (row indices; default all), batch by batch."""
        if users is None:
            users = np.arange(self.interactions.shape[0])
        size = self.config.batch_size
        if self.allowed is not None:  # a batch forbids every item outside the set, per user
            size = max(1, min(size, 20_000_000 // max(1, int((~self.allowed).sum()))))
        chunks = [np.asarray(users[start : start + size]) for start in range(0, len(users), size)]
        with _collector_paused():
            for lists in self._batches(chunks):
                yield from lists
                if progress is not None:
                    progress(len(lists))

    def _batches(self, chunks: list[np.ndarray]) -> Iterator[list[WeeklyList]]:
        """The lists of each chunk of users, in order. Batches run in threads, a few in flight:
        the heavy steps (matrix products, selections, sparse products) release the GIL, so
        both cores work."""
        workers = max(1, min(self.config.workers, len(chunks)))
        if workers == 1:
            yield from map(self._batch_lists, chunks)
            return
        with ThreadPoolExecutor(workers) as threads:
            pending: deque = deque()
            for chunk in chunks:
                pending.append(threads.submit(self._batch_lists, chunk))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def tables(
        self, users: np.ndarray, created_at: datetime | None = None
    ) -> tuple[pa.Table, pa.Table]:
        """The `weekly_lists` and `weekly_notes` rows of these users' lists (row indices),
        built batch by batch as `build` does: what an engine writes out."""
        lists = list(self.build(np.asarray(users)))
        return weekly_tables(lists, self.interactions.users, self.interactions.items, created_at)

    def _batch_lists(self, users: np.ndarray) -> list[WeeklyList]:
        batch = self.batch(users)
        return list(self._lists(batch, self.pool(batch)))

    def _lists(self, batch: UserBatch, pool: Pool) -> Iterator[WeeklyList]:
        cat, shape = self.world.catalogue, self.config.shape
        n = len(batch.users)
        relevance = _per_user_z(self.ranker.score(pool), pool.row, n)
        relevance += self.config.novelty_weight * _per_user_z(pool.column("novelty"), pool.row, n)
        relevance += self._jitter(batch.users, pool.row, pool.item)
        # The pool is sorted by user: lay it out as (n, m) with -inf padding.
        counts = np.bincount(pool.row, minlength=n)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        col = np.arange(len(pool.row)) - starts[pool.row]
        m = int(counts.max()) if n else 0
        at = np.full((n, m), -1, np.int64)
        at[pool.row, col] = np.arange(len(pool.row))
        valid = at >= 0
        items = np.where(valid, pool.item[np.clip(at, 0, None)], 0)
        rel = np.where(valid, relevance[np.clip(at, 0, None)], -np.inf)
        long_tail = self.long_tail
        plain = batch.ranked()[0][:, : shape.n]
        plain_tail = (long_tail[np.clip(plain, 0, None)] & (plain != NONE)).sum(axis=1)
        min_tail = plain_tail + int(np.ceil(shape.extra_tail_share * shape.n))
        fresh = np.where(valid, pool.column("fresh")[np.clip(at, 0, None)] > 0, False)
        picked = shape_lists(
            items,
            rel,
            cat.artist[items],
            cat.album[items],
            fresh,
            long_tail[items] & valid,
            min_tail,
            self.world.item_vectors,
            shape,
        )
        favourites = batch.favourites(30)
        chosen = np.where(picked >= 0, np.take_along_axis(at, np.clip(picked, 0, None), axis=1), -1)
        source, because = self._reasons_for(pool, chosen, favourites)
        at_chosen = np.clip(chosen, 0, None)
        names = pool.sources
        chosen_items = pool.item[at_chosen]
        reasons = self._batch_reasons(names, source, chosen_items, because, chosen >= 0)
        # Python lists from here: a list is built track by track, and NumPy scalars are slow.
        rows = zip(
            batch.users.tolist(),
            (chosen >= 0).tolist(),
            chosen_items.tolist(),
            relevance[at_chosen].tolist(),
            source.tolist(),
            reasons.tolist(),
            strict=True,
        )
        for r, (user, *row) in enumerate(rows):
            tracks = [
                WeeklyTrack(item, score, names[s], reason)
                for ok, item, score, s, reason in zip(*row, strict=True)
                if ok
            ]
            if len(tracks) < shape.n:
                tracks += self._fill(batch, r, [t.item for t in tracks], favourites[r])
            note = ""
            if len(tracks) < shape.n:
                where = (
                    "the catalogue has"
                    if self.allowed is None
                    else f"the {int(self.allowed.sum())} tracks allowed have"
                )
                note = (
                    f"only {len(tracks)} tracks: {where} too few tracks this listener has "
                    f"not played (within {shape.max_per_artist} per artist and "
                    f"{shape.max_per_album} per album, none from the last "
                    f"{PREVIOUS_WEEKS} weeks' lists)"
                )
            yield WeeklyList(user, self.week, tracks, note)

    def _fill(
        self, batch: UserBatch, r: int, chosen: list[int], favourites: np.ndarray
    ) -> list[WeeklyTrack]:
        """Where the candidates ran out under the caps, the model's next best allowed items."""
        cat, shape = self.world.catalogue, self.config.shape
        scores = batch.scores[r]
        order = np.argsort(-scores, kind="stable")
        order = order[np.isfinite(scores[order])]
        artists = {int(a): 0 for a in cat.artist[chosen]}
        albums = {int(a): 0 for a in cat.album[chosen]}
        for a in cat.artist[chosen]:
            artists[int(a)] += 1
        for a in cat.album[chosen]:
            albums[int(a)] += 1
        taken, extra = set(chosen), []
        for item in order:
            if len(chosen) + len(extra) >= shape.n:
                break
            a, al = int(cat.artist[item]), int(cat.album[item])
            if (
                item in taken
                or (a >= 0 and artists.get(a, 0) >= shape.max_per_artist)
                or (al >= 0 and albums.get(al, 0) >= shape.max_per_album)
            ):
                continue
            artists[a] = artists.get(a, 0) + 1
            albums[al] = albums.get(al, 0) + 1
            mine = favourites[favourites != NONE]
            vectors = self.world.item_vectors
            because = (
                NONE
                if len(mine) == 0
                else int(mine[np.argmax(vectors[mine] @ vectors[item])])
                if vectors is not None
                else int(mine[0])
            )
            extra.append(
                WeeklyTrack(int(item), float(scores[item]), "cf", self._reason("cf", because))
            )
        return extra

    def _jitter(self, users: np.ndarray, row: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Small noise per candidate, the same for the same user, week and item: standard
        normal, from a hash of the four (no generator per listener, nothing shared between
        batches or threads)."""
        if self.config.jitter <= 0:
            return np.zeros(len(row))
        year, week, _ = self.week_start.isocalendar()
        ids = self.interactions.users
        keys = np.array([zlib.crc32(ids.id(int(u)).encode()) for u in users], np.uint64)
        week_key = _mix(
            np.uint64(self.config.seed) * np.uint64(1_000_003) + np.uint64(year * 100 + week)
        )
        per_user = _mix(keys ^ week_key)
        bits = _mix(per_user[row] ^ _mix(item.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)))
        uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # in (0, 1)
        return self.config.jitter * ndtri(uniform)

    def _reasons_for(
        self, pool: Pool, chosen: np.ndarray, favourites: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each chosen candidate (n, N pool positions, -1 none): the source that ranked it
        highest (its weighted score) and what it is because of; where the source names nothing
        (the model's own top items), the listener's favourite most like it."""
        weights = np.array([BLEND_WEIGHTS.get(name, 0.3) for name in pool.sources])
        best = np.argmax(pool.features[:, : len(pool.sources)] * weights, axis=1)
        safe = np.clip(chosen, 0, None)
        source = best[safe]
        because = pool.because[safe, source]
        items = pool.item[safe]
        vectors = (
            self.world.item_vectors
            if self.world.item_vectors is not None
            else self.world.content_vectors
        )
        if vectors is not None:
            # A stacked matmul (BLAS), six times faster than the same einsum here.
            sims = vectors[items] @ vectors[np.clip(favourites, 0, None)].transpose(0, 2, 1)
            sims[np.broadcast_to((favourites == NONE)[:, None, :], sims.shape)] = -np.inf
            nearest = np.take_along_axis(favourites, sims.argmax(axis=2), axis=1)
        else:
            nearest = np.broadcast_to(favourites[:, :1], items.shape)
        return source, np.where(because == NONE, nearest, because)

    def _batch_reasons(
        self,
        names: list[str],
        source: np.ndarray,
        items: np.ndarray,
        because: np.ndarray,
        chosen: np.ndarray,
    ) -> np.ndarray:
        """(n, N) object array: each chosen track's reason (None elsewhere). Listeners of a
        batch share many reasons ("Because you played X"), so each distinct (source, subject)
        pair is written once."""
        new_release = np.array([name == "new_releases" for name in names])
        subject = np.where(new_release[source], items, because)  # what the reason names
        span = int(max(subject.max(initial=0), 0)) + 2
        keys = source.astype(np.int64) * span + (subject + 1)
        distinct, inverse = np.unique(keys[chosen], return_inverse=True)
        texts = np.array(
            [self._reason(names[k // span], k % span - 1) for k in distinct.tolist()]
            + [None],  # np.array of strings alone would make a fixed-width str array
            dtype=object,
        )[:-1]
        out = np.full(source.shape, None, dtype=object)
        out[chosen] = texts[inverse.ravel()]
        return out

    def _reason(self, source: str, subject: int) -> str:
        """The reason of a track from `source`; `subject` is what it names: the track itself for
        a new release, otherwise what the track is because of (NONE: nothing)."""
        world, cat = self.world, self.world.catalogue
        if source == "friends" and subject != NONE:
            return f"Your friend {world.user_names[subject]} plays this"
        if source == "region" and subject != NONE:
            return f"Rising in {world.regions[subject]}"
        if source == "new_releases":
            return f"New release from {cat.artist_name_of_item[subject]}"
        if source == "content" and subject != NONE:
            return f"Sounds like {cat.display_names[subject]}"
        if source == "playlists" and subject != NONE:
            return f"Listeners of {cat.artist_name_of_item[subject]} love this"
        if subject == NONE:  # a listener with no favourites yet
            return "Popular with listeners like you"
        return f"Because you played {cat.display_names[subject]}"


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused. A batch makes tens of thousands of small
    objects (tracks, reasons), none in a cycle, and every full collection they trigger scans
    every object the process holds (some 300,000 once torch is loaded): 0.13 s of each 1,024
    listeners here, all of it holding the GIL."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014): uint64 in, well-spread uint64 out."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _per_user_z(values: np.ndarray, row: np.ndarray, n: int) -> np.ndarray:
    """Values standardised within each user's candidates."""
    values = values.astype(np.float64)
    count = np.maximum(np.bincount(row, minlength=n), 1)
    mean = np.bincount(row, weights=values, minlength=n) / count
    std = np.sqrt(np.bincount(row, weights=(values - mean[row]) ** 2, minlength=n) / count)
    std[std == 0] = 1
    return (values - mean[row]) / std[row]


def _unit(vectors: np.ndarray | None) -> np.ndarray | None:
    if vectors is None:
        return None
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return vectors / norms


def _taste_clusters(
    vectors: np.ndarray, plays: np.ndarray, n_clusters: int | None, seed: int
) -> np.ndarray:
    """A taste cluster per item: k-means on the item vectors of items with plays.

    In one thread: scikit-learn's OpenMP threads spin against each other and against the
    batch's own threads when the cores are shared (3 to 6 s for 50,000 items on a busy 2-core
    machine, against 0.7 s in one thread, and no slower on a quiet one)."""
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    played = plays > 0
    k = n_clusters or int(np.clip(np.sqrt(played.sum() / 20), 4, 64))
    labels = np.full(len(vectors), -1, np.int32)
    if played.sum() < k:
        return labels
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
    with threadpool_limits(1):
        km.fit(vectors[played])
    labels[played] = km.labels_
    return labels


def _pairs(
    conn: duckdb.DuckDBPyConnection, users: IdMap, items: IdMap, sql: str, params: list
) -> sp.csr_matrix:
    """Users x items binary matrix of the (user_id, item_id) rows `sql` returns (a pair listed
    more than once, once; unknown ids left out). The store maps the ids to indices, so the
    millions of rows of every pair ever played come back as two integer columns."""
    conn.register("_dc_pair_users", users.table("user_id"))
    conn.register("_dc_pair_items", items.table("item_id"))
    try:
        rows = conn.execute(
            f"""
            SELECT u.idx AS u, i.idx AS i FROM ({sql}) p
            JOIN _dc_pair_users u ON u.user_id = p.user_id
            JOIN _dc_pair_items i ON i.item_id = p.item_id
            """,
            params,
        ).fetchnumpy()
    finally:
        conn.unregister("_dc_pair_users")
        conn.unregister("_dc_pair_items")
    out = sp.csr_matrix(
        (np.ones(len(rows["u"]), np.float32), (rows["u"], rows["i"])),
        shape=(len(users), len(items)),
    )
    out.data[:] = 1  # repeats were summed
    return out


def _played(
    conn: duckdb.DuckDBPyConnection, users: IdMap, items: IdMap, until: datetime
) -> sp.csr_matrix:
    """Every (user, item) with any listen before `until`, skips and private sessions included."""
    return _pairs(
        conn,
        users,
        items,
        "SELECT user_id, item_id FROM listens WHERE played_at IS NULL OR played_at < ?",
        [until],
    )


def _banned_artists(store: Store, inter: Interactions, catalogue, until: datetime) -> sp.csr_matrix:
    """Users x items: the tracks of artists the user banned or hid before `until`."""
    rows = store.conn.execute(
        "SELECT DISTINCT user_id, target_id FROM actions WHERE action IN ('ban', 'hide') "
        "AND (acted_at IS NULL OR acted_at < ?)",
        [until],
    ).fetchall()
    artist_index = {a: i for i, a in enumerate(catalogue.artists)}
    pairs = [(inter.users.get(u), artist_index.get(a, -1)) for u, a in rows]
    ban = np.array([p for p in pairs if p[0] >= 0 and p[1] >= 0], np.int64).reshape(-1, 2)
    if not len(ban):
        return sp.csr_matrix(inter.shape, dtype=np.float32)
    # Users x artists times artists x tracks: every banned artist's tracks, in one product.
    n_artists = len(catalogue.artists)
    bans = sp.csr_matrix(
        (np.ones(len(ban), np.float32), (ban[:, 0], ban[:, 1])), shape=(inter.shape[0], n_artists)
    )
    known = np.flatnonzero(catalogue.artist >= 0)
    tracks = sp.csr_matrix(
        (np.ones(len(known), np.float32), (catalogue.artist[known], known)),
        shape=(n_artists, inter.shape[1]),
    )
    out = (bans @ tracks).tocsr()
    out.data[:] = 1
    return out


def _previous_lists(store: Store, users: IdMap, items: IdMap, week_start: date) -> sp.csr_matrix:
    weeks = [week_name(week_start - timedelta(weeks=k)) for k in range(1, PREVIOUS_WEEKS + 1)]
    return _pairs(
        store.conn,
        users,
        items,
        "SELECT user_id, item_id FROM weekly_lists WHERE week IN (SELECT unnest(?))",
        [weeks],
    )


def _rising(
    store: Store, inter: Interactions, user_region: np.ndarray, n_regions: int, start: datetime
) -> np.ndarray | None:
    """Regions x items: share of the region's streams in the week before `start` minus their
    share in the 3 weeks before that."""
    known = np.flatnonzero(user_region >= 0)
    regions = pa.table(
        {"user_id": inter.users.ids[known], "region": user_region[known].astype(np.int32)}
    )
    store.conn.register("_user_regions", regions)
    try:
        rows = store.conn.sql(  # counted per region in the database: a row per (region, item)
            """
            SELECT r.region, l.item_id,
                   count(*) FILTER (WHERE l.played_at >= ?::TIMESTAMP - INTERVAL 7 DAY) AS recent,
                   count(*) FILTER (WHERE l.played_at < ?::TIMESTAMP - INTERVAL 7 DAY) AS before
            FROM listens l JOIN _user_regions r USING (user_id)
            WHERE l.played_at < ? AND l.played_at >= ?::TIMESTAMP - INTERVAL 28 DAY
              AND coalesce(l.ms_played, 30000) >= 30000
            GROUP BY r.region, l.item_id
            """,
            params=[start, start, start, start],
        ).to_arrow_table()
    finally:
        store.conn.unregister("_user_regions")
    if rows.num_rows == 0:
        return None
    i = inter.items.indices(rows.column("item_id"))
    ok = i >= 0
    n_items = len(inter.items)
    cell = rows.column("region").to_numpy()[ok].astype(np.int64) * n_items + i[ok]

    def per_region(column: str) -> np.ndarray:
        counts = rows.column(column).to_numpy()[ok]
        return np.bincount(cell, weights=counts, minlength=n_regions * n_items).reshape(
            n_regions, n_items
        )

    recent, before = per_region("recent"), per_region("before")
    recent_share = recent / np.maximum(recent.sum(axis=1, keepdims=True), 1)
    before_share = before / np.maximum(before.sum(axis=1, keepdims=True), 1)
    return np.clip(recent_share - before_share, 0, None).astype(np.float32)


WEEKLY_LISTS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("week", pa.string()),
        ("position", pa.int32()),
        ("item_id", pa.string()),
        ("score", pa.float64()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
"""The columns of the store's `weekly_lists` table, as Arrow types (what engines write)."""

WEEKLY_NOTES_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("week", pa.string()), ("note", pa.string())]
)
"""The columns of the store's `weekly_notes` table."""


def lists_table(
    lists: list[WeeklyList], users: IdMap, items: IdMap, created_at: datetime | None = None
) -> pa.Table:
    """The rows of `weekly_lists` for these lists (``created_at``: now, unless given)."""
    rows: dict[str, list] = {
        k: [] for k in ("user_id", "week", "position", "item_id", "score", "source", "reason")
    }
    for wl in lists:
        for pos, t in enumerate(wl.tracks):
            rows["user_id"].append(users.id(wl.user))
            rows["week"].append(wl.week)
            rows["position"].append(pos)
            rows["item_id"].append(items.id(t.item))
            rows["score"].append(t.score)
            rows["source"].append(t.source)
            rows["reason"].append(t.reason)
    stamp = (created_at or datetime.now()).replace(microsecond=0)
    rows["created_at"] = [stamp] * len(rows["user_id"])
    return pa.table(rows, schema=WEEKLY_LISTS_SCHEMA)


def weekly_tables(
    lists: list[WeeklyList], users: IdMap, items: IdMap, created_at: datetime | None = None
) -> tuple[pa.Table, pa.Table]:
    """The `weekly_lists` and `weekly_notes` rows of these lists."""
    noted = [wl for wl in lists if wl.note]
    notes = pa.table(
        {
            "user_id": [users.id(wl.user) for wl in noted],
            "week": [wl.week for wl in noted],
            "note": [wl.note for wl in noted],
        },
        schema=WEEKLY_NOTES_SCHEMA,
    )
    return lists_table(lists, users, items, created_at), notes


def save_lists(store: Store, lists: list[WeeklyList], users: IdMap, items: IdMap) -> int:
    """Store a week's lists, replacing what was stored for those users and that week."""
    if not lists:
        return 0
    table, notes = weekly_tables(lists, users, items)
    keys = pa.table(
        {"user_id": [users.id(wl.user) for wl in lists], "week": [wl.week for wl in lists]}
    )
    return store_weekly_tables(store, table, notes, keys)


def store_weekly_tables(store: Store, table: pa.Table, notes: pa.Table, keys: pa.Table) -> int:
    """Replace the stored lists and notes of the (user_id, week) pairs in ``keys`` with these
    rows, in one transaction. Returns the number of list rows stored."""
    conn = store.conn
    conn.register("_weekly_rows", table)
    conn.register("_weekly_notes", notes)
    conn.register("_weekly_keys", keys)
    conn.execute("BEGIN TRANSACTION")
    try:
        for target in ("weekly_lists", "weekly_notes"):
            conn.execute(
                f"DELETE FROM {target} WHERE (user_id, week) IN (SELECT (user_id, week) FROM _weekly_keys)"
            )
        conn.execute(
            "INSERT INTO weekly_lists (user_id, week, position, item_id, score, source, reason, created_at) "
            "SELECT user_id, week, position, item_id, score, source, reason, "
            "coalesce(created_at, current_timestamp) FROM _weekly_rows"
        )
        conn.execute("INSERT INTO weekly_notes SELECT user_id, week, note FROM _weekly_notes")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        for name in ("_weekly_rows", "_weekly_notes", "_weekly_keys"):
            conn.unregister(name)
    return table.num_rows


class WeeklyFilesError(ValueError):
    """A folder of weekly lists is missing, or its files lack the weekly_lists columns."""


def load_weekly_lists(store: Store, path: str | Path) -> int:
    """Load weekly lists written as Parquet by an engine into the store.

    ``path`` is the folder `deepcuts weekly --engine spark --out PATH` wrote: ``weekly_lists/``
    (Parquet files with the columns of the ``weekly_lists`` table) and ``weekly_notes/`` (the
    columns of ``weekly_notes``; may be empty or absent). Each (user_id, week) found replaces
    what the store held for it, in one transaction, as `save_lists` does. Returns the number of
    list rows loaded.
    """
    import pyarrow.dataset as ds

    root = Path(path)
    lists_dir = root / "weekly_lists"
    if not lists_dir.is_dir():
        raise WeeklyFilesError(f"{root}: no weekly_lists/ folder of Parquet files in it")
    files = sorted(str(f) for f in lists_dir.rglob("*.parquet"))
    if not files:
        raise WeeklyFilesError(f"{lists_dir}: no Parquet files")
    table = ds.dataset(files, format="parquet").to_table()
    missing = [c for c in WEEKLY_LISTS_SCHEMA.names if c not in table.column_names]
    if missing:
        raise WeeklyFilesError(f"{lists_dir}: missing column(s) {', '.join(missing)}")
    table = table.select(WEEKLY_LISTS_SCHEMA.names).cast(WEEKLY_LISTS_SCHEMA)
    for column in ("user_id", "week", "position", "item_id", "reason"):
        nulls = table.column(column).null_count
        if nulls:
            raise WeeklyFilesError(f"{lists_dir}: {nulls} row(s) without a {column}")
    notes_dir = root / "weekly_notes"
    note_files = sorted(str(f) for f in notes_dir.rglob("*.parquet")) if notes_dir.is_dir() else []
    notes = (
        ds.dataset(note_files, format="parquet").to_table()
        if note_files
        else WEEKLY_NOTES_SCHEMA.empty_table()
    )
    missing = [c for c in WEEKLY_NOTES_SCHEMA.names if c not in notes.column_names]
    if missing:
        raise WeeklyFilesError(f"{notes_dir}: missing column(s) {', '.join(missing)}")
    notes = notes.select(WEEKLY_NOTES_SCHEMA.names).cast(WEEKLY_NOTES_SCHEMA)
    keys = pa.concat_tables([table.select(["user_id", "week"]), notes.select(["user_id", "week"])])
    keys = keys.group_by(["user_id", "week"]).aggregate([])
    loaded = store_weekly_tables(store, table, notes, keys)
    log.info("loaded %d weekly list rows (%d lists) from %s", loaded, keys.num_rows, root)
    return loaded


def streamed_pairs(
    store: Store, users: IdMap, items: IdMap, start: datetime, end: datetime
) -> sp.csr_matrix:
    """Users x items: streams of 30 s or more in [start, end)."""
    return _pairs(
        store.conn,
        users,
        items,
        "SELECT DISTINCT user_id, item_id FROM listens WHERE played_at >= ? AND played_at < ? "
        "AND coalesce(ms_played, 30000) >= 30000",
        [start, end],
    )


def learn_ranker(
    store: Store,
    fit_model: Callable[[Interactions, datetime], Recommender],
    build_interactions_until: Callable[[datetime], Interactions],
    week_start: date,
    *,
    sample_users: int = 2000,
    seed: int = 0,
    content_vectors: np.ndarray | None = None,
) -> LearnedRanker | None:
    """A ranker learnt on what listeners streamed in the week before `week_start`.

    The lists of that earlier week are built as they would have been (a model fit on the data
    before it), and the ranker learns which candidates were then streamed. Returns None where
    that week has no streams to learn from (count-only data such as HetRec).
    """
    label_start = week_start - timedelta(weeks=1)
    start = datetime.combine(label_start, datetime.min.time())
    end = datetime.combine(week_start, datetime.min.time())
    inter = build_interactions_until(start)
    labels = streamed_pairs(store, inter.users, inter.items, start, end)
    active = np.flatnonzero(np.asarray(labels.sum(axis=1)).ravel() > 0)
    if len(active) < 10 or inter.matrix.nnz == 0:
        log.info(
            "no streams in the week before %s to learn a ranker from: using the blend", week_start
        )
        return None
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(active, size=min(sample_users, len(active)), replace=False))
    earlier = DiscoverWeekly(
        store, fit_model(inter, start), inter, label_start, content_vectors=content_vectors
    )
    pools, ys = [], []
    for begin in range(0, len(users), earlier.config.batch_size):
        batch = earlier.batch(users[begin : begin + earlier.config.batch_size])
        pool = earlier.pool(batch)
        pools.append(pool)
        ys.append(np.asarray(labels[batch.users[pool.row], pool.item]).ravel() > 0)
    merged = Pool(
        row=np.concatenate([p.row for p in pools]),
        item=np.concatenate([p.item for p in pools]),
        features=np.vstack([p.features for p in pools]),
        because=np.vstack([p.because for p in pools]),
        sources=pools[0].sources,
        names=pools[0].names,
    )
    y = np.concatenate(ys)
    if y.sum() == 0:
        log.info("no candidate of the week before %s was streamed: using the blend", week_start)
        return None
    ranker = LearnedRanker().fit(merged, y)
    ranker.fit_figures["listeners"] = len(users)
    log.info(
        "ranker learnt on %d candidates of %d listeners (%.1f%% streamed)",
        len(y),
        len(users),
        100 * y.mean(),
    )
    return ranker


RANKERS = ("auto", "learned", "blend")


def next_monday(moment: datetime) -> date:
    """The Monday after the week holding ``moment`` (the first week the data says nothing of)."""
    day = moment.date()
    return day + timedelta(days=7 - day.weekday())


def train_ranker(
    store: Store,
    trained,
    week_start: date,
    *,
    content_vectors: np.ndarray | None = None,
    sample_users: int = 2000,
    seed: int = 0,
    make_default: bool = True,
):
    """Learn the weekly ranker for lists of ``week_start`` (labels: the streams of the week
    before it, candidates from a model fit on the data before that), save it and register it
    (kind ``weekly-ranker``, watermark ``week_start``: no label at or after it).

    Returns (ranker, record), or None where that week has no streams to learn from."""
    from deepcuts.models.cf import make_model
    from deepcuts.models.cf.training import model_dir
    from deepcuts.models.registry import next_version, register_model
    from deepcuts.signals import build_interactions

    params = (
        trained.record.params.get("model", {}) if trained.record else trained.model.get_params()
    )
    name = trained.record.name if trained.record else trained.model.name

    def fit_model(earlier: Interactions, earlier_until: datetime) -> Recommender:
        side = build_side_info(store, earlier.users, earlier.items, until=earlier_until)
        return make_model(name, params).fit(earlier.matrix, side)

    began = datetime.now()
    ranker = learn_ranker(
        store,
        fit_model,
        lambda t: build_interactions(store, trained.confidence, until=t),
        week_start,
        sample_users=sample_users,
        seed=seed,
        content_vectors=content_vectors,
    )
    if ranker is None:
        return None
    out = model_dir(store) / f"weekly-ranker-v{next_version(store, 'weekly-ranker')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    ranker.save(out)
    label_start = datetime.combine(week_start - timedelta(weeks=1), datetime.min.time())
    record = register_model(
        store, "weekly-ranker", out,
        params={"C": ranker.C, "features": ranker.names, "sample_users": sample_users, "seed": seed,
                "cf_model": name, "cf_params": params, "for_week": week_name(week_start)},
        metrics={"labels_from": label_start.isoformat(), "seconds": (datetime.now() - began).total_seconds(),
                 **ranker.fit_figures},
        kind="weekly-ranker", data_until=datetime.combine(week_start, datetime.min.time()),
        make_default=make_default,
    )  # fmt: skip
    log.info("registered %s (%s)", record.model_id, out)
    return ranker, record


def usable_ranker(store: Store, week_start: date, model_id: str | None = None):
    """(ranker, record): the registered weekly ranker for lists of ``week_start``: ``model_id``,
    else the default if its labels all come from before the week, else the newest such
    version; None where there is none. A version whose labels reach into the week (it was
    learnt later) is never used: that would be leakage."""
    from deepcuts.models.registry import default_model, get_model_of_kind, list_models
    from deepcuts.ranking.ranker import LearnedRanker

    start = datetime.combine(week_start, datetime.min.time())
    if model_id:
        record = get_model_of_kind(store, model_id, "weekly-ranker")
        if record.data_until is None or record.data_until > start:
            raise ValueError(
                f"{model_id} learnt from streams up to {record.data_until}, after {week_name(week_start)} "
                "began: it cannot rank that week's lists"
            )
        return LearnedRanker.load(record.path), record
    record = default_model(store, "weekly-ranker")
    if record is None or record.data_until is None or record.data_until > start:
        older = [
            r
            for r in list_models(store, "weekly-ranker")
            if r.data_until is not None and r.data_until <= start
        ]
        record = max(older, key=lambda r: (r.data_until, r.version)) if older else None
    return None if record is None else (LearnedRanker.load(record.path), record)


def prepare_weekly(
    store: Store,
    week_start: date,
    *,
    model_id: str | None = None,
    ranker: str = "auto",
    ranker_id: str | None = None,
    content_id: str | None = None,
    content_vectors: np.ndarray | None = None,
    config: WeeklyConfig | None = None,
    allowed_items: Collection[str] | None = None,
    fit_missing: bool = True,
) -> DiscoverWeekly:
    """Discover Weekly for a week, from the store's registered models (the defaults).

    The CF model, the content model and the weekly ranker are read from the registry; their ids
    are in the result's ``model_ids``. Where no content model or no usable ranker is registered
    (none learnt on streams from before the week), ``fit_missing`` learns and registers one,
    once: the next batch of the week reads it. ``ranker``: "learned" needs a learnt one (an
    error where there is nothing to learn from), "blend" uses the hand-weighted blend, "auto"
    the learnt one where there is one.
    ``allowed_items``: item ids, the only ones the lists may hold (see `DiscoverWeekly`); ids
    the model does not know are left out.
    """
    from deepcuts.models.cf.training import load_trained
    from deepcuts.models.parts import load_content, train_content

    if ranker not in RANKERS:
        raise ValueError(f"ranker must be one of {', '.join(RANKERS)}, not {ranker!r}")
    trained = load_trained(store, model_id)
    ids = {"cf": trained.record.model_id if trained.record else None}
    if content_vectors is None:
        loaded = load_content(store, content_id)
        if loaded is None and fit_missing:
            log.info(
                "no content model registered: learning one (run `deepcuts train` to do it ahead)"
            )
            loaded = train_content(store, trained)
        if loaded is not None:
            content_vectors = loaded[0].vectors_for(trained.items)
            ids["content"] = loaded[1].model_id
    until = datetime.combine(week_start, datetime.min.time())
    inter = trained.interactions(store, until)
    learned = None
    if ranker != "blend":
        found = usable_ranker(store, week_start, ranker_id)
        if found is None and fit_missing:
            log.info(
                "no weekly ranker learnt before %s registered: learning one", week_name(week_start)
            )
            from deepcuts.models.registry import default_model

            current = default_model(store, "weekly-ranker")
            newest = current is None or (current.data_until or datetime.min) <= until
            found = train_ranker(
                store, trained, week_start, content_vectors=content_vectors, make_default=newest
            )
        if found is not None:
            learned, record = found
            ids["weekly-ranker"] = record.model_id
        elif ranker == "learned":
            raise ValueError(
                "no streams in the week before to learn a ranker from: use --ranker blend"
            )
    allowed = None
    if allowed_items is not None:
        allowed = np.zeros(len(inter.items), bool)
        at = inter.items.indices(list(allowed_items))
        allowed[at[at >= 0]] = True
    dw = DiscoverWeekly(
        store,
        trained.model,
        inter,
        week_start,
        content_vectors=content_vectors,
        ranker=learned,
        config=config,
        allowed=allowed,
    )
    dw.model_ids = ids
    return dw


def save_run(store: Store, week: str, model_ids: dict[str, str], lists: int) -> None:
    """Record which model versions built a week's lists (``weekly_runs``)."""
    import json

    store.conn.execute("DELETE FROM weekly_runs WHERE week = ?", [week])
    store.conn.execute(
        "INSERT INTO weekly_runs (week, models, lists) VALUES (?, ?, ?)",
        [week, json.dumps(model_ids), lists],
    )


def stored_run(store: Store, week: str) -> dict | None:
    """What the batch of a week recorded: {"models": {kind: id}, "lists": n, "built_at": t}."""
    import json

    rows = store.conn.execute(
        "SELECT models, lists, built_at FROM weekly_runs WHERE week = ?", [week]
    ).fetchall()
    if not rows:
        return None
    return {"models": json.loads(rows[0][0]), "lists": rows[0][1], "built_at": rows[0][2]}


def store_content_vectors(store: Store, items: IdMap) -> np.ndarray | None:
    """Text and audio vectors of the store's items (audio features cached beside the store)."""
    from deepcuts.models.coldstart import content_vectors
    from deepcuts.models.parts import audio_cache

    return content_vectors(store, items, audio_cache=audio_cache(store))
