"""Features of (context, shelf, card, slot) for the reward model and the linear policies.

A feature is a name (``"device=ios"``, ``"uvec:3"``) and a value (1 for a categorical level, the
number for a numeric one). `FeatureSpace` gives each name an index the first time it is seen,
so new users, cards and shelves need no refit; index 0 is padding (value 0, never learned).
Slot features (shelf position, card position) are *linear-only*: where the reward model uses
them (its ``logit`` position model) they enter as a position bias and never interact with the
rest, so ranking by the slot-free score is the same at every position. The default
``examination`` position model uses slot-free rows and learns examination apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from deepcuts.bandit.types import BanditInputError, Card, Context, FeatureValue, Shelf

PAD = "<pad>"


@dataclass(frozen=True)
class FeatureRows:
    """A batch of sparse rows: ``indices`` and ``values``, both shape (B, F) (padded with 0)."""

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.indices.shape != self.values.shape or self.indices.ndim != 2:
            raise BanditInputError(
                f"indices: shape {self.indices.shape} does not match values {self.values.shape} (need (B, F))"
            )

    def __len__(self) -> int:
        return self.indices.shape[0]

    def take(self, rows: np.ndarray) -> FeatureRows:
        return FeatureRows(self.indices[rows], self.values[rows])

    @staticmethod
    def stack(parts: Sequence[FeatureRows]) -> FeatureRows:
        width = max(p.indices.shape[1] for p in parts)
        n = sum(len(p) for p in parts)
        idx = np.zeros((n, width), dtype=np.int64)
        val = np.zeros((n, width))
        r = 0
        for p in parts:
            k, w = p.indices.shape
            idx[r : r + k, :w] = p.indices
            val[r : r + k, :w] = p.values
            r += k
        return FeatureRows(idx, val)


@dataclass(frozen=True)
class PageBlocks:
    """The slot-free rows of every card of a page, split into the blocks they are made of.

    Row ``r`` (card ``table`` row ``cards[r]``, of shelf ``shelf_of[r]``) of `Featurizer.rows`
    is the context's features, then its shelf's, then its card's, then the CF column: here the
    context block is stored once, each shelf's block once, each card's features stay in the
    featurizer's card table (`card_rows` lays them out) and only the CF column is made per
    row. A factorization machine is additive over disjoint blocks of features
    (`FactorizationMachine.page_logits`), so a page is scored without building the
    (rows x features) matrix, and a card's own terms can be kept between pages.
    """

    context: FeatureRows  # (1, F_context)
    shelves: FeatureRows  # (n_shelves, F_shelf)
    shelf_of: np.ndarray  # (n,) the shelf of each row
    cards: np.ndarray  # (n,) each row's card: its row of ``table``
    table: CardTable  # the featurizer's cards, encoded
    cf: FeatureRows  # (n, 1): the CF column (index 0 on shelves without one)
    offsets: np.ndarray  # (n_shelves + 1,) each shelf's first row

    def __len__(self) -> int:
        return len(self.shelf_of)

    def card_rows(self, rows: np.ndarray | None = None) -> FeatureRows:
        """The card features of every row (or of ``rows``), zero-padded: (n, F_card)."""
        return self.table.rows(self.cards if rows is None else self.cards[rows])

    def max_index(self, card_max: int | None = None) -> int:
        """The largest feature index of any row (``card_max``, where known, for the cards)."""
        if card_max is None:
            encoded = self.table.encoded
            card_max = max((int(encoded[c][0].max(initial=0)) for c in self.cards), default=0)
        return max(
            card_max,
            *(int(b.indices.max(initial=0)) for b in (self.context, self.shelves, self.cf)),
        )

    def rows(self) -> FeatureRows:
        """The same rows as one (n, F) matrix: the context, shelf, card and CF blocks side by
        side (as `Featurizer.rows`, with a padding column on shelves without a CF column)."""
        n = len(self)
        ctx = np.broadcast_to(self.context.indices, (n, self.context.indices.shape[1]))
        ctx_v = np.broadcast_to(self.context.values, ctx.shape)
        cards = self.card_rows()
        return FeatureRows(
            np.hstack([ctx, self.shelves.indices[self.shelf_of], cards.indices, self.cf.indices]),
            np.hstack([ctx_v, self.shelves.values[self.shelf_of], cards.values, self.cf.values]),
        )


class CardTable:
    """Every card a featurizer has encoded, by item id: a row per card (in the order they
    were first seen), its encoded features, and its vector in one matrix per vector length.
    A page looks each of its cards up once (a listener's first page has ~170) and scores
    them against the listener's vector in one product, instead of going card by card.

    As `Featurizer.rows` does, a card's encoded features are those of the first card seen
    with its item id, and its CF score uses the vector of the card on the page: a card that
    comes with another vector object than its row's replaces the row's vector."""

    def __init__(self) -> None:
        self.row: dict[str, int] = {}
        self.encoded: list[tuple[np.ndarray, np.ndarray]] = []
        self.vector_of: list[np.ndarray | None] = []  # the vector object each row was given
        self.dims = np.zeros(0, dtype=np.int64)  # each row's vector length, -1 for none
        self.vectors: dict[int, np.ndarray] = {}  # length -> (capacity, length) matrix
        self.replaced = 0  # vectors replaced so far

    def __len__(self) -> int:
        return len(self.encoded)

    def add(
        self, item_id: str, encoded: tuple[np.ndarray, np.ndarray], vector: np.ndarray | None
    ) -> int:
        r = len(self.encoded)
        if r == len(self.dims):  # grow by doubling
            cap = max(2 * r, 256)
            self.dims = np.concatenate([self.dims, np.full(cap - r, -1, dtype=np.int64)])
            for d, m in self.vectors.items():
                self.vectors[d] = np.concatenate([m, np.zeros((cap - r, d))])
        self.encoded.append(encoded)
        self.vector_of.append(None)
        self.row[item_id] = r
        self._put_vector(r, vector)
        return r

    def replace_vector(self, r: int, vector: np.ndarray | None) -> None:
        self.replaced += 1
        self._put_vector(r, vector)

    def _put_vector(self, r: int, vector: np.ndarray | None) -> None:
        self.vector_of[r] = vector
        self.dims[r] = -1 if vector is None else len(vector)
        if vector is not None:
            d = len(vector)
            if d not in self.vectors:
                self.vectors[d] = np.zeros((len(self.dims), d))
            self.vectors[d][r] = vector

    def rows(self, cards: np.ndarray) -> FeatureRows:
        """The encoded features of ``cards`` (rows of this table), zero-padded."""
        return _padded([self.encoded[c] for c in cards])


def _padded(encoded: Sequence[tuple[np.ndarray, np.ndarray]]) -> FeatureRows:
    """Variable-length (indices, values) rows as one zero-padded `FeatureRows`."""
    lengths = np.fromiter((len(i) for i, _ in encoded), dtype=np.int64, count=len(encoded))
    width = int(lengths.max(initial=0))
    idx = np.zeros((len(encoded), width), dtype=np.int64)
    val = np.zeros((len(encoded), width))
    if len(encoded):
        fill = np.arange(width)[None, :] < lengths[:, None]
        idx[fill] = np.concatenate([i for i, _ in encoded])
        val[fill] = np.concatenate([v for _, v in encoded])
    return FeatureRows(idx, val)


class FeatureSpace:
    """Names to indices, growing as new names appear. Index 0 is padding."""

    def __init__(self, names: Sequence[str] = (), linear_only: Sequence[bool] = ()):
        self.names: list[str] = [PAD]
        self.linear_only: list[bool] = [True]
        self._index: dict[str, int] = {PAD: 0}
        self._linear_only_mask = np.ones(1, dtype=bool)
        for name, lin in zip(names, linear_only, strict=True):
            if name != PAD:
                self.index(name, lin)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str, linear_only: bool = False) -> int:
        i = self._index.get(name)
        if i is None:
            i = len(self.names)
            self._index[name] = i
            self.names.append(name)
            self.linear_only.append(linear_only)
        return i

    def get(self, name: str) -> int | None:
        return self._index.get(name)

    def linear_only_mask(self) -> np.ndarray:
        """``linear_only`` as a bool array (extended, not rebuilt, as the space grows)."""
        have = len(self._linear_only_mask)
        if have < len(self.linear_only):
            self._linear_only_mask = np.concatenate(
                [self._linear_only_mask, np.asarray(self.linear_only[have:], dtype=bool)]
            )
        return self._linear_only_mask

    def encode(
        self, items: Sequence[tuple[str, float]], linear_only: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        idx = np.fromiter(
            (self.index(n, linear_only) for n, _ in items), dtype=np.int64, count=len(items)
        )
        val = np.fromiter((v for _, v in items), dtype=np.float64, count=len(items))
        return idx, val


def _named(prefix: str, features: dict | object) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for key, value in features.items():  # type: ignore[attr-defined]
        out.extend(_one(f"{prefix}{key}", value))
    return out


def _one(name: str, value: FeatureValue) -> list[tuple[str, float]]:
    if isinstance(value, bool) or isinstance(value, str):
        return [(f"{name}={value}", 1.0)]
    if isinstance(value, int | np.integer):
        return [(f"{name}={int(value)}", 1.0)]
    return [(name, float(value))]


@dataclass
class Featurizer:
    """Turns contexts, shelves, cards and slots into `FeatureRows` over one `FeatureSpace`.

    Parameters
    ----------
    user_ids, item_ids : include one-hot user and item ids (the FM then learns an embedding per
        user and per item).
    vectors : include the user's and the card's vectors as numeric features.
    hour_bucket : hours are grouped into buckets of this many hours.
    space : the feature space (shared by every model that uses this featurizer).
    """

    user_ids: bool = True
    item_ids: bool = True
    vectors: bool = True
    hour_bucket: int = 3
    space: FeatureSpace = field(default_factory=FeatureSpace)

    def __post_init__(self) -> None:
        if not isinstance(self.hour_bucket, int) or not 1 <= self.hour_bucket <= 24:
            raise BanditInputError(
                f"hour_bucket: must be an integer 1-24, not {self.hour_bucket!r}"
            )
        self.cards = CardTable()
        # each shelf type's encoded features, and all of them as zero-padded rows
        self._shelf_types: dict[str, int] = {}
        self._shelf_type_encoded: list[tuple[np.ndarray, np.ndarray]] = []
        self._shelf_type_rows = _padded([])
        self._uvec_index: dict[int, np.ndarray] = {}  # the "uvec:i" names' indices, by length

    # -- named features ------------------------------------------------------------------
    def context_items(self, context: Context) -> list[tuple[str, float]]:
        items = self._context_named(context)
        if self.vectors and context.user_vector is not None:
            items.extend((f"uvec:{i}", float(v)) for i, v in enumerate(context.user_vector))
        return items

    def _context_named(self, context: Context) -> list[tuple[str, float]]:
        """`context_items` without the user's vector."""
        items = [
            (f"hour={context.hour // self.hour_bucket}", 1.0),
            (f"weekday={context.weekday}", 1.0),
            (f"weekend={context.weekday >= 5}", 1.0),
            (f"device={context.device}", 1.0),
            (f"country={context.country}", 1.0),
        ]
        if self.user_ids:
            items.append((f"user={context.user_id}", 1.0))
        items.extend(_named("ctx.", context.features))
        return items

    def shelf_items(self, shelf: Shelf) -> list[tuple[str, float]]:
        return [(f"shelf_type={shelf.shelf_type}", 1.0)]

    def card_items(self, card: Card) -> list[tuple[str, float]]:
        items = [(f"kind={card.kind}", 1.0)]
        if self.item_ids:
            items.append((f"item={card.item_id}", 1.0))
        items.extend(_named("card.", card.features))
        if self.vectors and card.vector is not None:
            items.extend((f"ivec:{i}", float(v)) for i, v in enumerate(card.vector))
        return items

    def slot_items(self, shelf_position: int, card_position: int) -> list[tuple[str, float]]:
        return [(f"spos={shelf_position}", 1.0), (f"cpos={card_position}", 1.0)]

    # -- encoded ------------------------------------------------------------------------
    def encode_card(self, card: Card) -> tuple[np.ndarray, np.ndarray]:
        return self.cards.encoded[self.card_row(card)]

    def card_row(self, card: Card) -> int:
        """The card's row of the card table, encoding it (and growing the space) when new."""
        table = self.cards
        r = table.row.get(card.item_id)
        if r is None:
            r = table.add(card.item_id, self.space.encode(self.card_items(card)), card.vector)
        elif table.vector_of[r] is not card.vector:
            table.replace_vector(r, card.vector)
        return r

    def _add_shelf_type(self, shelf: Shelf) -> int:
        self._shelf_type_encoded.append(self.space.encode(self.shelf_items(shelf)))
        self._shelf_type_rows = _padded(self._shelf_type_encoded)
        self._shelf_types[shelf.shelf_type] = len(self._shelf_type_encoded) - 1
        return self._shelf_types[shelf.shelf_type]

    def encode_context(self, context: Context) -> tuple[np.ndarray, np.ndarray]:
        last = getattr(self, "_last_context", None)
        if last is not None and last[0] is context:
            return last[1]
        ci, cv = self.space.encode(self._context_named(context))
        uv = context.user_vector
        if self.vectors and uv is not None:  # the vector's names are made once, in order
            named = self._uvec_index.get(len(uv))
            if named is None:
                named = self._uvec_index[len(uv)] = np.fromiter(
                    (self.space.index(f"uvec:{i}") for i in range(len(uv))), np.int64, len(uv)
                )
            ci, cv = np.concatenate([ci, named]), np.concatenate([cv, uv.astype(np.float64)])
        self._last_context = (context, (ci, cv))
        return ci, cv

    def rows(
        self,
        context: Context,
        shelf: Shelf,
        cards: Sequence[Card],
        slots: Sequence[tuple[int, int]] | None = None,
    ) -> FeatureRows:
        """One row per card: context + shelf + card features (and the card's CF score, the
        inner product of the user's and the card's vectors, when both exist; a ``cf_missing``
        indicator for a card without a vector beside cards with one), plus slot
        features if ``slots`` (one (shelf position, card position) per card) is given.
        Shape (len(cards), F)."""
        ci, cv = self.encode_context(context)
        si, sv = self.space.encode(self.shelf_items(shelf))
        encoded = [self.encode_card(c) for c in cards]
        width = max(len(i) for i, _ in encoded)
        n = len(cards)
        uv = context.user_vector if self.vectors else None
        has = np.array(
            [uv is not None and c.vector is not None and len(c.vector) == len(uv) for c in cards],
            dtype=bool,
        )
        cf = bool(has.any())
        extra = int(cf) + (2 if slots is not None else 0)
        base = len(ci) + len(si)
        idx = np.zeros((n, base + width + extra), dtype=np.int64)
        val = np.zeros((n, base + width + extra))
        idx[:, : len(ci)] = ci
        val[:, : len(ci)] = cv
        idx[:, len(ci) : base] = si
        val[:, len(ci) : base] = sv
        for r, (i, v) in enumerate(encoded):
            idx[r, base : base + len(i)] = i
            val[r, base : base + len(v)] = v
        col = base + width
        if cf:  # cards without a vector (cold ones) say so instead
            idx[:, col] = np.where(
                has, self.space.index("cf_score"), self.space.index("cf_missing")
            )
            val[has, col] = np.stack([c.vector for c, h in zip(cards, has, strict=True) if h]) @ uv  # type: ignore[operator]
            val[~has, col] = 1.0
            col += 1
        if slots is not None:
            if len(slots) != n:
                raise BanditInputError(f"slots: {len(slots)} given for {n} cards")
            for r, (j, k) in enumerate(slots):
                idx[r, col : col + 2] = self.space.encode(self.slot_items(j, k), linear_only=True)[
                    0
                ]
                val[r, col : col + 2] = 1.0
        return FeatureRows(idx, val)

    def page_blocks(self, context: Context, shelves: Sequence[Shelf]) -> PageBlocks:
        """The slot-free rows of every card of every shelf, as blocks (see `PageBlocks`): the
        same features, the same values and the same new names in the same order as calling
        `rows` for each shelf in turn (so the feature space grows the same way)."""
        ci, cv = self.encode_context(context)
        table = self.cards
        known, vector_of, replaced = table.row, table.vector_of, table.replaced
        uv = context.user_vector if self.vectors else None
        d = -2 if uv is None else len(uv)  # -2: no card's vector matches a missing one
        cf_named = (
            self.space.get("cf_score") is not None and self.space.get("cf_missing") is not None
        )
        types, cards = [], []
        by_type = self._shelf_types
        for shelf in shelves:
            t = by_type.get(shelf.shelf_type)
            if t is None:  # a shelf's features are its type's (`shelf_items`)
                t = self._add_shelf_type(shelf)
            types.append(t)
            found = [r if (r := known.get(c.item_id)) is not None and vector_of[r] is c.vector
                     else None for c in shelf.cards]  # fmt: skip
            if None in found:  # new cards, encoded in order (as `rows` would), or new vectors
                found = [self.card_row(c) if r is None else r for r, c in zip(found, shelf.cards, strict=True)]  # fmt: skip
            cards += found
            # as in `rows`: the CF column's names are made once a shelf has a card with a
            # vector to score, after that shelf's cards
            if not cf_named and uv is not None and any(table.dims[r] == d for r in found):
                self.space.index("cf_score"), self.space.index("cf_missing")
                cf_named = True
        sizes = np.fromiter((len(s.cards) for s in shelves), dtype=np.int64, count=len(shelves))
        shelf_of = np.repeat(np.arange(len(shelves)), sizes)
        row_cards = np.asarray(cards, dtype=np.int64)
        # The CF column, per row: its feature (0 on a shelf where no card has a vector), and
        # the card's vector scored against the user's, in one product for the whole page.
        if table.replaced == replaced:
            has = table.dims[row_cards] == d
            vectors = table.vectors[d][row_cards[has]] if has.any() else None
        else:  # a card came with a new vector: each row's own (one item's may differ)
            own = [c.vector for s in shelves for c in s.cards]
            has = np.fromiter((v is not None and len(v) == d for v in own), bool, len(own))
            vectors = np.stack([own[r] for r in np.flatnonzero(has)]) if has.any() else None
        cf_index = np.zeros(len(row_cards), dtype=np.int64)
        cf_value = np.zeros(len(row_cards))
        if vectors is not None:
            column = (np.bincount(shelf_of, weights=has, minlength=len(shelves)) > 0)[shelf_of]
            cf_index[column] = np.where(
                has[column], self.space.index("cf_score"), self.space.index("cf_missing")
            )
            cf_value[column] = 1.0  # cf_missing's value
            cf_value[has] = vectors @ uv  # type: ignore[operator]
        return PageBlocks(
            context=FeatureRows(ci[None, :], cv[None, :]),
            shelves=self._shelf_type_rows.take(np.asarray(types, dtype=np.int64)),
            shelf_of=shelf_of,
            cards=row_cards,
            table=table,
            cf=FeatureRows(cf_index[:, None], cf_value[:, None]),
            offsets=np.concatenate([[0], np.cumsum(sizes)]),
        )

    def slot_rows(self, slots: Sequence[tuple[int, int]]) -> FeatureRows:
        """Only the slot features of each (shelf position, card position), shape (n, 2)."""
        idx = np.zeros((len(slots), 2), dtype=np.int64)
        val = np.ones((len(slots), 2))
        for r, (j, k) in enumerate(slots):
            idx[r] = self.space.encode(self.slot_items(j, k), linear_only=True)[0]
        return FeatureRows(idx, val)

    # -- fixed-size dense features (linear policies) ----------------------------------------
    def dense(
        self, rows: FeatureRows, context: Context, cards: Sequence[Card], n_buckets: int
    ) -> np.ndarray:
        """Fixed-size features for linear models, shape (n, 1 + n_buckets + d_u * d_i).

        Categorical features are hashed into ``n_buckets`` (signed by a second hash bit); the
        outer product of the user's and each card's vector is appended when both exist, so a
        linear model can learn a bilinear taste match.
        """
        buckets = self._buckets(n_buckets)
        n = len(rows)
        out_cat = np.zeros((n, n_buckets))
        b = buckets[rows.indices]
        sign = self._signs[rows.indices]
        valid = (b >= 0) & ~self._is_vector[rows.indices]
        r = np.repeat(np.arange(n), rows.indices.shape[1]).reshape(rows.indices.shape)
        np.add.at(out_cat, (r[valid], b[valid]), (rows.values * sign)[valid])
        parts = [np.ones((n, 1)), out_cat]
        if (
            self.vectors
            and context.user_vector is not None
            and all(c.vector is not None for c in cards)
        ):
            iv = np.stack([c.vector for c in cards])
            parts.append((context.user_vector[None, :, None] * iv[:, None, :]).reshape(n, -1))
        return np.hstack(parts)

    def _buckets(self, n_buckets: int) -> np.ndarray:
        """Bucket, sign and is-vector flag of every index, extended as the space grows."""
        if getattr(self, "_bucket_n", None) != n_buckets:
            self._bucket_n = n_buckets
            self._bucket_arr = np.zeros(0, dtype=np.int64)
            self._signs = np.zeros(0)
            self._is_vector = np.zeros(0, dtype=bool)
        have = len(self._bucket_arr)
        if have < len(self.space):
            new = self.space.names[have:]
            b = np.array([zlib.crc32(n.encode()) % n_buckets for n in new], dtype=np.int64)
            if have == 0:
                b[0] = -1
            s = np.array([1.0 if zlib.adler32(n.encode()) & 1 else -1.0 for n in new])
            v = np.array(
                [n.startswith(("uvec:", "ivec:", "spos=", "cpos=")) for n in new], dtype=bool
            )
            self._bucket_arr = np.concatenate([self._bucket_arr, b])
            self._signs = np.concatenate([self._signs, s])
            self._is_vector = np.concatenate([self._is_vector, v])
        return self._bucket_arr
