"""The home screen's shelf kinds: one registry, one small adapter per kind.

A shelf kind is a name (the shelf type the bandit learns about), a title template (the
explanation a listener reads) and an adapter: ``adapter(data, visit, limit)`` returns the
kind's candidate shelves for one visit as `ShelfPick`s (a key, the title, item indices best
first). The adapters read the listening data through `ShelfData` (the home screen's
``HomeData`` provides it) and share their rules with the batch candidate sources of Discover
Weekly (``deepcuts.candidates.sources``): a "new release" is `release_window` for both.

`SHELF_KINDS` is the one registry: the home screen builds its shelves from it and the
simulated home world (``deepcuts.simulate.home.world``) takes its shelf types from it
(`SHELF_TYPES`), so the two cannot drift apart.

This module needs only NumPy, so the simulator can import it without the store or models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np

EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
NEW_RELEASE_DAYS = 28  # how long a track stays a "new release"
FRESH_MAX_LISTENERS = 2  # "Fresh finds": tracks at most this many listeners have played


def day_number(moment: date | datetime) -> float:
    """Days since 1970-01-01 of a date (its midnight) or a moment (with its time of day, read
    on its own clock)."""
    days = float(moment.toordinal() - EPOCH_ORDINAL)
    if isinstance(moment, datetime):
        days += (
            moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
        ) / 86_400
    return days


def release_window(until: date | datetime, days: int = NEW_RELEASE_DAYS) -> tuple[int, int]:
    """The new releases as of ``until``: the release days ``first <= day < end`` (days since
    1970-01-01), as used by Discover Weekly's source and the home shelf alike.

    A track is out from the start (00:00) of its release day. The window holds the tracks
    whose release moment lies in the half-open ``[until - days, until)``:

    - ``until`` itself is excluded because it is the cutoff of what is known: a weekly list is
      built from everything *before* its week starts (as its listens are), so a track released
      on the Monday the list is for is not out yet when the list is made, and counts on next
      week's list instead of on both;
    - closed at the start, so the window is exactly ``days`` release days long and consecutive
      cutoffs never leave a day out.

    For a weekly list (``until`` = the week's Monday, 00:00) that is ``[week - 28, week)``; for a
    home page served at 15:00 on day T it is the days ``T - 27 .. T``: today's releases are in,
    the day 28 days ago is out, 28 days either way.
    """
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days: must be a positive integer, not {days!r}")
    end = math.ceil(day_number(until))
    return end - days, end


def in_release_window(
    release_day: np.ndarray, until: date | datetime, days: int = NEW_RELEASE_DAYS
) -> np.ndarray:
    """Boolean mask of ``release_day`` (days since 1970-01-01; unknown dates are far in the
    past) inside `release_window` (``until``, ``days``)."""
    first, end = release_window(until, days)
    day = np.asarray(release_day)
    return (day >= first) & (day < end)


def fresh_mask(listeners: np.ndarray, max_listeners: int = FRESH_MAX_LISTENERS) -> np.ndarray:
    """The tracks "Fresh finds" may offer: those at most ``max_listeners`` people have played."""
    return np.asarray(listeners) <= max_listeners


def most_streamed(tracks: np.ndarray, listeners: np.ndarray) -> np.ndarray:
    """``tracks`` most streamed (by listeners) first; ties keep their order."""
    tracks = np.asarray(tracks)
    return tracks[np.argsort(-np.asarray(listeners)[tracks], kind="stable")]


# -- what the adapters read ---------------------------------------------------------------------
class Visit(Protocol):
    """The part of a visit's context the shelf adapters read."""

    user_id: str
    country: str


class ShelfData(Protocol):
    """What the shelf adapters read (``deepcuts.surfaces.home.HomeData`` provides it).

    Items and users are indices of the interaction matrix; ``catalogue.plays`` counts each
    item's listeners and ``catalogue.release_day`` its release day.
    """

    store: Any
    history: Any  # `deepcuts.signals.history.ListenerHistory`: latest plays, weekly lists
    catalogue: Any
    interactions: Any
    side: Any
    now: datetime
    genres: np.ndarray | None
    content_vectors: np.ndarray | None
    shelf_cache: dict

    def user(self, user_id: str) -> int: ...

    def played(self, user: int) -> np.ndarray: ...

    def liked(self, user: int) -> tuple[np.ndarray, np.ndarray]: ...

    def top_artists(self, user: int, k: int) -> list[int]: ...

    def best(
        self, user: int, candidates: np.ndarray, limit: int, *, unplayed: bool = True
    ) -> list[int]: ...

    def similar(
        self, items: np.ndarray, exclude_artists: Sequence[int] = (), k: int = 200
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ShelfPick:
    """One candidate shelf of a kind: its key (unique within the kind), title and items."""

    key: str
    title: str
    items: tuple[int, ...]


Adapter = Callable[[ShelfData, Visit, int], list[ShelfPick]]


@dataclass(frozen=True)
class ShelfKind:
    """A shelf kind: ``name`` (the shelf type), ``title`` (a template over the pick's fields,
    e.g. ``"Best of {artist}"``) and ``adapter`` (see the module docstring)."""

    name: str
    title: str
    adapter: Adapter

    def shelves(self, data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
        return [p for p in self.adapter(data, visit, limit) if p.items]

    def pick(self, key: str, items: Sequence[int] | np.ndarray, **fields: str) -> ShelfPick:
        """A pick of this kind: the title filled in, the items without repeats."""
        return ShelfPick(
            key, self.title.format(**fields), tuple(dict.fromkeys(int(i) for i in items))
        )


def _kind(name: str) -> ShelfKind:
    return SHELF_KINDS_BY_NAME[name]


def _artist(data: ShelfData, artist: int) -> tuple[str, str]:
    cat = data.catalogue
    return str(cat.artists[artist]), str(cat.artist_names[artist])


def _indices(data: ShelfData, item_ids: Sequence[str]) -> list[int]:
    items = data.interactions.items
    return [i for i in (items.get(x) for x in item_ids) if i >= 0]


# -- the adapters -------------------------------------------------------------------------------
def discover_weekly(data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
    """The listener's latest stored Discover Weekly list (built by `deepcuts weekly`), in order."""
    stored = data.history.weekly_list(visit.user_id)
    if not stored:
        return []
    week, item_ids = stored
    return [_kind("discover_weekly").pick(week, _indices(data, item_ids[:limit]))]


def because_you_listened(
    data: ShelfData, visit: Visit, limit: int, artists: int = 2
) -> list[ShelfPick]:
    """For each of the listener's ``artists`` top artists: the listener's best unplayed tracks
    among those most like that artist's tracks they like, by *other* artists."""
    user = data.user(visit.user_id)
    kind = _kind("because_you_listened")
    liked = data.liked(user)[0]
    out = []
    for artist in data.top_artists(user, artists):
        mine = np.intersect1d(liked, np.flatnonzero(data.catalogue.artist == artist))
        candidates = data.similar(mine, exclude_artists=[artist])
        candidates = candidates[data.catalogue.artist[candidates] != artist]
        artist_id, name = _artist(data, artist)
        out.append(
            kind.pick(artist_id, data.best(user, candidates[: limit * 4], limit), artist=name)
        )
    return out


def best_of_artist(data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
    """The listener's top artist's tracks, most streamed first (played ones included)."""
    artists = data.top_artists(data.user(visit.user_id), 1)
    if not artists:
        return []
    tracks = most_streamed(
        np.flatnonzero(data.catalogue.artist == artists[0]), data.catalogue.plays
    )
    artist_id, name = _artist(data, artists[0])
    return [_kind("best_of_artist").pick(artist_id, tracks[:limit], artist=name)]


def keep_the_vibe_going(
    data: ShelfData, visit: Visit, limit: int, session_plays: int = 5
) -> list[ShelfPick]:
    """The listener's best unplayed tracks most like their latest ``session_plays`` plays."""
    user = data.user(visit.user_id)
    latest = data.history.latest_plays(visit.user_id, session_plays)
    session = np.array(_indices(data, [item for item, _ in latest]), np.int64)
    if len(session) == 0:
        return []
    items = data.best(user, data.similar(session)[: limit * 4], limit)
    return [_kind("keep_the_vibe_going").pick("session", items)]


def jump_back_in(data: ShelfData, visit: Visit, limit: int, days: int = 14) -> list[ShelfPick]:
    """What the listener streamed (30 s or more) in the last ``days`` days, latest first."""
    streamed = data.history.streamed_lately(visit.user_id, days, limit)
    return [_kind("jump_back_in").pick("recent", _indices(data, streamed))]


def popular_in_region(data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
    """What the most listeners of the visit's country stream, none the listener has played."""
    side = data.side
    country = visit.country.upper()
    if side.user_region is None or not side.regions or country not in side.regions:
        return []
    key = ("popular_in_region", country)
    popular = data.shelf_cache.get(key)
    if popular is None:
        members = np.flatnonzero(side.user_region == side.regions.index(country))
        counts = np.asarray(data.interactions.positives()[members].sum(axis=0)).ravel()
        popular = np.argsort(-counts, kind="stable")
        popular = popular[counts[popular] > 0][:500]
        data.shelf_cache[key] = popular
    user = data.user(visit.user_id)
    unplayed = popular[~np.isin(popular, data.played(user))][:limit]
    return [_kind("popular_in_region").pick(country, unplayed, country=country)]


def friends_listening(data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
    """The listener's best unplayed tracks among those most of their friends stream."""
    if data.side.friends is None:
        return []
    user = data.user(visit.user_id)
    friends = data.side.friends[user].indices
    if len(friends) == 0:
        return []
    counts = np.asarray(data.interactions.positives()[friends].sum(axis=0)).ravel()
    candidates = np.flatnonzero(counts > 0)
    candidates = candidates[np.argsort(-counts[candidates], kind="stable")][: limit * 6]
    return [_kind("friends_listening").pick("friends", data.best(user, candidates, limit))]


def fresh_finds(data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
    """Unplayed tracks hardly anybody has played yet (`fresh_mask`), matched to the listener's
    favourites by content vectors (audio and text) where there are any, else by the model."""
    user = data.user(visit.user_id)
    fresh, vectors = _fresh_tracks(data)
    blocked = np.zeros(len(data.catalogue.plays), bool)
    blocked[data.played(user)] = True
    blocked[data.interactions.banned[user].indices] = True
    allowed = ~blocked[fresh]
    if not allowed.any():
        return []
    if vectors is None:
        items = np.array(data.best(user, fresh[allowed], limit), np.int64)
        return [_kind("fresh_finds").pick("fresh", items)]
    liked = data.liked(user)[0][:20]
    if len(liked) == 0:
        return []
    from deepcuts.models.base import top_n  # compiled; this module stays NumPy-only to import

    sims = np.where(allowed, vectors @ data.content_vectors[liked].mean(axis=0), -np.inf)
    (best,), _ = top_n(sims[None, :], limit)
    return [_kind("fresh_finds").pick("fresh", fresh[best[best >= 0]])]


def _fresh_tracks(data: ShelfData) -> tuple[np.ndarray, np.ndarray | None]:
    """The tracks "Fresh finds" may offer and their content vectors, gathered once for every
    visit: gathered per listener, they were most of the catalogue's vectors at 100,000 tracks
    (70 ms a listener)."""
    found = data.shelf_cache.get("fresh_finds")
    if found is None:
        fresh = np.flatnonzero(fresh_mask(data.catalogue.plays))
        vectors = None if data.content_vectors is None else data.content_vectors[fresh]
        found = data.shelf_cache["fresh_finds"] = (fresh, vectors)
    return found


def genre_mix(data: ShelfData, visit: Visit, limit: int, mixes: int = 2) -> list[ShelfPick]:
    """For each of the listener's ``mixes`` favourite genres (or tags): their best tracks in it."""
    if data.genres is None:
        return []
    user = data.user(visit.user_id)
    liked, weights = data.liked(user)
    totals: dict[str, float] = {}
    for g, w in zip(data.genres[liked], weights, strict=True):
        if g:
            totals[g] = totals.get(g, 0.0) + float(w)
    kind = _kind("genre_mix")
    return [
        kind.pick(
            genre,
            data.best(user, _genre_items(data, genre), limit, unplayed=False),
            genre=genre.title(),
        )
        for genre in sorted(totals, key=lambda g: -totals[g])[:mixes]
    ]


def _genre_items(data: ShelfData, genre: str) -> np.ndarray:
    """The items of a genre, found once per genre (comparing the catalogue's genres, which are
    Python strings, cost milliseconds a listener)."""
    key = ("genre_items", genre)
    items = data.shelf_cache.get(key)
    if items is None:
        items = data.shelf_cache[key] = np.flatnonzero(data.genres == genre)
    return items


def new_releases(data: ShelfData, visit: Visit, limit: int) -> list[ShelfPick]:
    """The listener's best unplayed tracks released in `release_window` up to now."""
    recent = np.flatnonzero(in_release_window(data.catalogue.release_day, data.now))
    if len(recent) == 0:
        return []
    items = data.best(data.user(visit.user_id), recent, limit)
    return [_kind("new_releases").pick("recent", items)]


SHELF_KINDS: tuple[ShelfKind, ...] = (
    ShelfKind("discover_weekly", "Your Discover Weekly", discover_weekly),
    ShelfKind("because_you_listened", "Because you listened to {artist}", because_you_listened),
    ShelfKind("best_of_artist", "Best of {artist}", best_of_artist),
    ShelfKind("keep_the_vibe_going", "Keep the vibe going", keep_the_vibe_going),
    ShelfKind("jump_back_in", "Jump back in", jump_back_in),
    ShelfKind("popular_in_region", "Popular in {country}", popular_in_region),
    ShelfKind("friends_listening", "Your friends are listening", friends_listening),
    ShelfKind("fresh_finds", "Fresh finds", fresh_finds),
    ShelfKind("genre_mix", "{genre} mix", genre_mix),
    ShelfKind("new_releases", "New releases for you", new_releases),
)
SHELF_KINDS_BY_NAME = {k.name: k for k in SHELF_KINDS}
SHELF_TYPES: tuple[str, ...] = tuple(k.name for k in SHELF_KINDS)
