"""The home screen's vocabulary: contexts, cards, shelves, pages and the logged impression.

A home page is a ranking of *shelves* (themed rows, the title is the explanation), each a ranking
of *cards* (tracks, artists, playlists). Shelves come from shelf sources: anything with a
``name`` and a ``shelves(context, limit)`` method (see `ShelfSource`). A policy orders the
candidate shelves into shelf positions and each shown shelf's cards into card positions; every
shown card becomes an `Impression`, the one logged-feedback record that policies, the reward
model, the store and the off-policy estimators share.

Propensities (what they mean)
-----------------------------
For a card ``c`` on shelf ``s`` shown at shelf position ``j`` and card position ``l``:

``shelf_propensity``
    P(the policy puts shelf s at position j | context, candidate shelves), marginal over the
    policy's other choices on the page.
``card_propensity``
    P(the policy puts card c at position l of shelf s | context, s's candidate cards).
``propensity``
    Their product: the probability that this page shows card c of shelf s in slot (j, l).
    The policy orders shelves and the cards of each shelf with independent randomness, so the
    product is exact. This is the propensity the estimators use (position-wise importance
    weighting, which is unbiased when a slot's reward depends on the context, the card, the
    shelf and the slot, not on the rest of the page).
``propensity_given_earlier``
    P(this choice | the choices already made at earlier positions of the same ranking), the
    probability of the draw the policy actually made at that step, multiplied over the shelf
    step and the card step. Kept for audit and for slate estimators; the estimators here do
    not use it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

CARD_KINDS = ("track", "artist", "playlist", "album")
FeatureValue = str | int | float | bool


class BanditInputError(ValueError):
    """An argument a bandit component was given is invalid; the message names it."""


def _require(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise BanditInputError(f"{name}: {message}")


def _check_features(name: str, features: Mapping[str, FeatureValue]) -> None:
    _require(isinstance(features, Mapping), name, "must be a mapping of name to value")
    for key, value in features.items():
        _require(
            isinstance(key, str) and key != "",
            name,
            f"feature names must be non-empty strings, not {key!r}",
        )
        _require(
            isinstance(value, str | int | float | bool),
            name,
            f"feature {key!r} must be a string, number or bool, not {type(value).__name__}",
        )
        if isinstance(value, float):
            _require(math.isfinite(value), name, f"feature {key!r} is not finite")


def _as_vector(name: str, vector: object) -> np.ndarray | None:
    if vector is None:
        return None
    arr = np.asarray(vector, dtype=np.float64)
    _require(
        arr.ndim == 1 and arr.size > 0,
        name,
        f"must be a non-empty 1-d vector, not shape {arr.shape}",
    )
    _require(bool(np.all(np.isfinite(arr))), name, "has non-finite values")
    return arr


@dataclass(frozen=True, eq=False)
class Context:
    """What is known when a page is asked for.

    Parameters
    ----------
    user_id : the listener (an external id; the featurizer maps it).
    hour : local hour of day, 0-23.
    weekday : 0 = Monday ... 6 = Sunday.
    device : platform or device ("android", "ios", "desktop", "web", ...).
    country : ISO 3166-1 alpha-2 code of where the listener is.
    user_vector : the listener's taste vector (e.g. from the CF model), shape (d,), or None.
    features : further features, e.g. of the current session (``{"session_genre": "jazz",
        "session_plays": 3}``): strings are categorical, numbers are used as values.
    """

    user_id: str
    hour: int = 12
    weekday: int = 0
    device: str = "unknown"
    country: str = "unknown"
    user_vector: np.ndarray | None = None
    features: Mapping[str, FeatureValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(
            isinstance(self.user_id, str) and self.user_id != "",
            "user_id",
            "must be a non-empty string",
        )
        _require(
            isinstance(self.hour, int | np.integer) and 0 <= self.hour <= 23,
            "hour",
            f"must be an integer 0-23, not {self.hour!r}",
        )
        _require(
            isinstance(self.weekday, int | np.integer) and 0 <= self.weekday <= 6,
            "weekday",
            f"must be an integer 0 (Monday) to 6 (Sunday), not {self.weekday!r}",
        )
        _require(
            isinstance(self.device, str) and self.device != "",
            "device",
            "must be a non-empty string",
        )
        _require(
            isinstance(self.country, str) and self.country != "",
            "country",
            "must be a non-empty string",
        )
        object.__setattr__(self, "user_vector", _as_vector("user_vector", self.user_vector))
        _check_features("features", self.features)


@dataclass(frozen=True, eq=False)
class Card:
    """One item a shelf can show.

    Parameters
    ----------
    item_id : the track, artist, album or playlist id.
    kind : one of ``CARD_KINDS``.
    content_type : what decides the success threshold (``SuccessRule``); defaults to ``kind``
        (e.g. ``"sleep"`` for a sleep playlist that needs a longer stream to count).
    features : item features (``{"genre": "jazz", "artist_id": "...", "log_popularity": -7.1}``).
    vector : the item's embedding (CF, audio or text), shape (d,), or None.
    """

    item_id: str
    kind: str = "track"
    content_type: str = ""
    features: Mapping[str, FeatureValue] = field(default_factory=dict)
    vector: np.ndarray | None = None

    def __post_init__(self) -> None:
        _require(
            isinstance(self.item_id, str) and self.item_id != "",
            "item_id",
            "must be a non-empty string",
        )
        _require(
            self.kind in CARD_KINDS,
            "kind",
            f"must be one of {', '.join(CARD_KINDS)}, not {self.kind!r}",
        )
        if not self.content_type:
            object.__setattr__(self, "content_type", self.kind)
        _check_features("features", self.features)
        object.__setattr__(self, "vector", _as_vector("vector", self.vector))


@dataclass(frozen=True, eq=False)
class Shelf:
    """A themed row of candidate cards; its title is the explanation shown with every card.

    Parameters
    ----------
    shelf_id : stable id of this shelf instance ("because_you_listened:artist:51").
    shelf_type : the source's name, the explanation family ("because_you_listened").
    title : what the listener reads ("Because you listened to Nina Simone").
    cards : the candidates, in the source's own order; at least one, ids unique.
    """

    shelf_id: str
    shelf_type: str
    title: str
    cards: tuple[Card, ...]

    def __post_init__(self) -> None:
        _require(
            isinstance(self.shelf_id, str) and self.shelf_id != "",
            "shelf_id",
            "must be a non-empty string",
        )
        _require(
            isinstance(self.shelf_type, str) and self.shelf_type != "",
            "shelf_type",
            "must be a non-empty string",
        )
        _require(
            isinstance(self.title, str) and self.title != "", "title", "must be a non-empty string"
        )
        cards = tuple(self.cards)
        _require(len(cards) > 0, "cards", f"shelf {self.shelf_id!r} has no cards")
        # one pass in the usual case (a listener's first page makes a dozen shelves of ~15)
        if len({c.item_id for c in cards if isinstance(c, Card)}) != len(cards):
            _require(all(isinstance(c, Card) for c in cards), "cards", "must all be Card objects")
            raise BanditInputError(f"cards: shelf {self.shelf_id!r} has a card twice")
        object.__setattr__(self, "cards", cards)


@runtime_checkable
class ShelfSource(Protocol):
    """A named source of candidate cards with a title: how a shelf generator plugs in.

    ``name`` is the shelf type (a slug: "discover_weekly", "because_you_listened", ...);
    ``shelves`` returns zero or more shelves for a context (a source such as "Because you
    listened to <artist>" may return one shelf per seed artist), each with at most ``limit``
    cards, best first by the source's own judgement. The bandit decides which shelves the
    page shows, in which order, and the order of the cards within each.
    """

    name: str

    def shelves(self, context: Context, limit: int) -> Sequence[Shelf]: ...


@dataclass(frozen=True)
class PageLayout:
    """How many shelves a page shows and how many cards each shelf shows (at most)."""

    n_shelves: int = 4
    n_cards: int = 5

    def __post_init__(self) -> None:
        for name in ("n_shelves", "n_cards"):
            value = getattr(self, name)
            _require(
                isinstance(value, int | np.integer) and value >= 1,
                name,
                f"must be a positive integer, not {value!r}",
            )


# isinstance is quicker with a tuple of types than with a union
_INTEGERS = (int, np.integer)
_NUMBERS = (float, int, np.floating)
_MOST_LIKELY = 1.0 + 1e-9  # a probability's upper bound, with room for rounding


def new_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits (as UUIDv7 orders its ids).

    Ids made later sort later, so a unique index on them grows at its right edge (the live
    log's on page ids): when the live log kept a row per card, indexed by impression id, random
    ids landed every card of a page on a random page of that index, and a page's commit wrote
    one index page per card (1.76 against 0.60 ms a 30-card page on a log of 300,000
    impressions here). An id costs 1.1 microseconds against 0.6 for ``os.urandom(16).hex()``
    (a page makes one per card: `new_ids` makes a page's in one draw)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def new_ids(n: int) -> list[str]:
    """``n`` ids as `new_id` makes them, in order, from one read of the random source (a
    system call): 20 ids in 13 us against 31 us one by one (timeit, best of 5, here)."""
    t, bits = time.time_ns(), os.urandom(8 * n).hex()
    return [f"{t + i:016x}{bits[16 * i : 16 * i + 16]}" for i in range(n)]


@dataclass(frozen=True, eq=False)
class Impression:
    """One card shown on one page: the logged-feedback record.

    ``reward`` is None until plays are joined back (1.0 for a successful stream, 0.0 for none).
    See the module docstring for the four propensities.
    """

    page_id: str
    context: Context
    shelf: Shelf
    card: Card
    shelf_position: int
    card_position: int
    shelf_propensity: float
    card_propensity: float
    propensity_given_earlier: float
    policy_id: str
    policy_version: str
    served_at: datetime
    reward: float | None = None
    reward_at: datetime | None = None
    n_shelf_candidates: int | None = None
    n_card_candidates: int | None = None
    impression_id: str = field(default_factory=new_id)

    def __post_init__(self) -> None:
        # Messages are made only on failure, and the checks are spelt out rather than looped
        # over names: a served page makes an impression per card (and a simulation millions).
        for name, value in (("shelf_position", self.shelf_position),
                            ("card_position", self.card_position)):  # fmt: skip
            if not (isinstance(value, _INTEGERS) and value >= 0):
                raise BanditInputError(f"{name}: must be a non-negative integer, not {value!r}")
        for name, value in (("shelf_propensity", self.shelf_propensity),
                            ("card_propensity", self.card_propensity),
                            ("propensity_given_earlier", self.propensity_given_earlier)):  # fmt: skip
            if not (isinstance(value, _NUMBERS) and 0.0 < value <= _MOST_LIKELY):
                raise _not_a_probability(name, value)
        if self.reward is not None:
            _require(
                isinstance(self.reward, _NUMBERS) and math.isfinite(float(self.reward)),
                "reward",
                f"must be a finite number or None, not {self.reward!r}",
            )

    @classmethod
    def drawn(cls, values: dict[str, object]) -> Impression:
        """An impression from a policy's own draw (``values``: every field), set as it is:
        the draw counted the positions and `check_propensities` checked the page's
        propensities at once. A frozen dataclass's ``__init__`` sets each field through
        ``object.__setattr__`` and checks each impression: 2.7 against 0.6 us an impression
        here, and a served page makes twenty."""
        impression = object.__new__(cls)
        impression.__dict__.update(values)
        return impression

    @property
    def propensity(self) -> float:
        """P(this card of this shelf in this slot), the product of the shelf and card parts."""
        return float(self.shelf_propensity) * float(self.card_propensity)

    def with_reward(self, reward: float, at: datetime | None = None) -> Impression:
        return replace(self, reward=float(reward), reward_at=at or datetime.now(UTC))


def check_propensities(name: str, values: Sequence[float]) -> None:
    """Every value a probability in (0, 1], as `Impression` requires of each propensity."""
    for value in values:
        if not (isinstance(value, _NUMBERS) and 0.0 < value <= _MOST_LIKELY):
            raise _not_a_probability(name, value)


def _not_a_probability(name: str, value: object) -> BanditInputError:
    return BanditInputError(f"{name}: must be a probability in (0, 1], not {value!r}")


@dataclass(frozen=True, eq=False)
class Page:
    """A served home page: its shelves in order, each with its shown cards in order.

    ``shelves[j]`` is the shelf at position j and ``cards[j]`` the indices (into that shelf's
    ``cards``) shown at card positions 0, 1, ...; ``impressions`` hold one record per shown card,
    shelf by shelf.
    """

    page_id: str
    context: Context
    shelves: tuple[Shelf, ...]
    cards: tuple[tuple[int, ...], ...]
    impressions: tuple[Impression, ...]

    def rows(self) -> list[tuple[str, str, list[str]]]:
        """(shelf_id, title, item ids in order) per shown shelf: what the listener sees."""
        return [
            (s.shelf_id, s.title, [s.cards[i].item_id for i in idx])
            for s, idx in zip(self.shelves, self.cards, strict=True)
        ]


class PageDraw(NamedTuple):
    """One draw of a page's two rankings (`Policy.draw_page`), in Python numbers.

    ``shelves[j]`` is the candidate shelf at shelf position j, shown with
    ``shelf_propensity[j]`` (P(that shelf there)) and ``shelf_given_earlier[j]`` (P(that draw
    | the shelves above)); ``cards[j]``, ``card_propensity[j]`` and ``card_given_earlier[j]``
    are the same for that shelf's cards, position by position."""

    shelves: list[int]
    shelf_propensity: list[float]
    shelf_given_earlier: list[float]
    cards: list[list[int]]
    card_propensity: list[list[float]]
    card_given_earlier: list[list[float]]


class ServedPage(NamedTuple):
    """A page as a policy served it (`Policy.serve_page`): its draw (`PageDraw`) over the
    candidate shelves, with an impression id for each card shown, in page order. The service
    logs and answers it as it is (`deepcuts.bandit.impressions.served_page_row`); `page`
    makes its `Impression` records, which a served page never needs."""

    page_id: str
    context: Context
    served_at: datetime
    policy_id: str
    policy_version: str
    candidates: Sequence[Shelf]
    drawn: PageDraw
    impression_ids: list[str]

    def slots(self) -> Iterator[tuple[int, Shelf, int, Card, float, float, float, str]]:
        """Each card shown, in page order: (shelf position, shelf, card position, card,
        shelf propensity, card propensity, propensity given earlier, impression id)."""
        d, ids = self.drawn, iter(self.impression_ids)
        for j, s_idx in enumerate(d.shelves):
            shelf, p_shelf, cond_shelf = (
                self.candidates[s_idx],
                d.shelf_propensity[j],
                d.shelf_given_earlier[j],
            )
            for l_pos, c_idx in enumerate(d.cards[j]):
                yield (j, shelf, l_pos, shelf.cards[c_idx], p_shelf, d.card_propensity[j][l_pos],
                       cond_shelf * d.card_given_earlier[j][l_pos], next(ids))  # fmt: skip

    def page(self) -> Page:
        """The `Page`, with one `Impression` per card shown."""
        common = {"page_id": self.page_id, "context": self.context, "policy_id": self.policy_id,
                  "policy_version": self.policy_version, "served_at": self.served_at,
                  "reward": None, "reward_at": None, "n_shelf_candidates": len(self.candidates)}  # fmt: skip
        impressions = tuple(
            Impression.drawn(
                {
                    **common,
                    "shelf": shelf,
                    "shelf_position": j,
                    "shelf_propensity": p_shelf,
                    "n_card_candidates": len(shelf.cards),
                    "card": card,
                    "card_position": l_pos,
                    "card_propensity": p_card,
                    "propensity_given_earlier": given_earlier,
                    "impression_id": impression_id,
                }  # fmt: skip
            )
            for j, shelf, l_pos, card, p_shelf, p_card, given_earlier, impression_id in self.slots()
        )
        shown = tuple(self.candidates[s] for s in self.drawn.shelves)
        orders = tuple(tuple(order) for order in self.drawn.cards)
        return Page(self.page_id, self.context, shown, orders, impressions)


def gather_shelves(
    sources: Sequence[ShelfSource], context: Context, limit: int = 10
) -> list[Shelf]:
    """The candidate shelves of a page: every source's shelves for ``context``, in source order.

    A source that returns no shelf is skipped; a shelf whose id another source already gave is
    dropped (the first wins); each shelf keeps at most ``limit`` cards. A source that breaks the
    contract (a non-Shelf, a shelf of another type) is an error naming it.
    """
    if not isinstance(limit, int) or limit < 1:
        raise BanditInputError(f"limit: must be a positive integer, not {limit!r}")
    out: list[Shelf] = []
    seen: set[str] = set()
    for source in sources:
        if not isinstance(source, ShelfSource):
            raise BanditInputError(f"sources: {source!r} has no name and shelves(context, limit)")
        for shelf in source.shelves(context, limit):
            if not isinstance(shelf, Shelf):
                raise BanditInputError(
                    f"sources: {source.name} returned {type(shelf).__name__}, not a Shelf"
                )
            if shelf.shelf_type != source.name:
                raise BanditInputError(
                    f"sources: {source.name} returned a shelf of type {shelf.shelf_type!r}"
                )
            if shelf.shelf_id in seen:
                continue
            seen.add(shelf.shelf_id)
            out.append(
                shelf if len(shelf.cards) <= limit else replace(shelf, cards=shelf.cards[:limit])
            )
    return out
