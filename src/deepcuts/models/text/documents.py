"""A document per item (track or artist) from everything written about it.

The parts of an item's document, each kept apart so that evaluation can leave out what one
listener wrote:

- catalogue text: name, genre and description (and, for a track, its artist's genre and
  description, which a new track of a known artist has from day one);
- tags: one term per word of the tag and, for a tag of several words, one for the phrase
  (``female_vocalists``), weighted by the tag's weight; with the user who tagged, if any;
- playlists: the names and descriptions of the playlists the item is in, with their owners.

Terms are lower-case words of letters and digits; stop words are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from deepcuts.store import Store

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
STOP_WORDS = frozenset(
    """a an and are as at be but by for from has have i in is it its my of on or our so that the
    their this to was were with you your me we us up out off all some just more most very""".split()
)


def words(text: str | None) -> list[str]:
    """The lower-case words of a text, without stop words or one-letter words."""
    if not text:
        return []
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOP_WORDS]


def tag_terms(tag: str | None) -> list[str]:
    """The terms of one tag: its words, and the phrase when it has several."""
    ws = [w for w in _WORD.findall((tag or "").lower())]
    if not ws:
        return []
    terms = [w for w in ws if len(w) > 1 and w not in STOP_WORDS]
    if len(ws) > 1:
        terms.append("_".join(ws))
    return terms


@dataclass
class ItemTexts:
    """What is written about items, by item row; part rows point at ``item_ids`` by index.

    ``tag_*`` arrays are one row per tag assignment, ``playlist_*`` one row per (playlist,
    item) membership; a user of ``None`` is editorial.
    """

    item_ids: list[str]
    kinds: list[str]  # "track" or "artist" (or "item" when the catalogue does not know it)
    catalogue: list[str]
    names: list[str] = field(default_factory=list)  # display names ("Title - Artist")
    tag_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tag_text: list[str] = field(default_factory=list)
    tag_user: list[str | None] = field(default_factory=list)
    tag_weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    playlist_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    playlist_text: list[str] = field(default_factory=list)
    playlist_owner: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    def terms(self, exclude_user: str | None = None) -> list[list[str]]:
        """Each item's terms; ``exclude_user``'s tags and playlists left out."""
        docs: list[list[str]] = [words(text) for text in self.catalogue]
        for i, tag, user in zip(self.tag_item, self.tag_text, self.tag_user, strict=True):
            if exclude_user is None or user != exclude_user:
                docs[i].extend(tag_terms(tag))
        for i, text, owner in zip(
            self.playlist_item, self.playlist_text, self.playlist_owner, strict=True
        ):
            if exclude_user is None or owner != exclude_user:
                docs[i].extend(words(text))
        return docs

    def term_rows(self) -> tuple[list[list[str]], np.ndarray, list[str | None], np.ndarray]:
        """Every part of every document as one row: (terms, item, user, weight).

        Catalogue text has user ``None``; a tag row the tagger, a playlist row its owner.
        """
        terms = [words(text) for text in self.catalogue]
        items = list(range(len(self.item_ids)))
        users: list[str | None] = [None] * len(self.item_ids)
        weights = [1.0] * len(self.item_ids)
        for i, tag, user, weight in zip(
            self.tag_item, self.tag_text, self.tag_user, self.tag_weight, strict=True
        ):
            terms.append(tag_terms(tag))
            items.append(int(i))
            users.append(user)
            weights.append(float(weight) if weight == weight else 1.0)
        for i, text, owner in zip(
            self.playlist_item, self.playlist_text, self.playlist_owner, strict=True
        ):
            terms.append(words(text))
            items.append(int(i))
            users.append(owner)
            weights.append(1.0)
        return terms, np.array(items, np.int64), users, np.array(weights)

    def documents(self, exclude_user: str | None = None, max_tags: int = 30) -> list[str]:
        """Each item's text as prose for a sentence encoder: catalogue text, then its most used
        tags (most first, at most ``max_tags``), then its most frequent playlist names."""
        tag_counts: list[dict[str, float]] = [{} for _ in self.item_ids]
        for i, tag, user, weight in zip(
            self.tag_item, self.tag_text, self.tag_user, self.tag_weight, strict=True
        ):
            if exclude_user is None or user != exclude_user:
                key = tag.strip().lower()
                tag_counts[i][key] = tag_counts[i].get(key, 0.0) + (
                    weight if weight == weight else 1.0
                )
        lists: list[dict[str, int]] = [{} for _ in self.item_ids]
        for i, text, owner in zip(
            self.playlist_item, self.playlist_text, self.playlist_owner, strict=True
        ):
            if exclude_user is None or owner != exclude_user:
                lists[i][text] = lists[i].get(text, 0) + 1
        out = []
        for base, tags, names in zip(self.catalogue, tag_counts, lists, strict=True):
            parts = [base] if base else []
            if tags:
                top = sorted(tags, key=lambda t: -tags[t])[:max_tags]
                parts.append("Tags: " + ", ".join(top) + ".")
            if names:
                top = sorted(names, key=lambda t: -names[t])[:5]
                parts.append("In playlists: " + "; ".join(top) + ".")
            out.append(" ".join(parts))
        return out


def load_item_texts(store: Store, items: Sequence[str] | None = None) -> ItemTexts:
    """The texts of ``items`` (default: every track and artist in the catalogue, tracks first).

    Items are looked up as tracks, then as artists; an id in neither gets only the tags and
    playlists that name it.
    """
    conn = store.conn
    tracks = conn.execute(
        """
        SELECT t.track_id, concat_ws(' - ', t.name, a.name), concat_ws('. ', t.name, t.genre, t.description,
               CASE WHEN a.name IS NOT NULL THEN 'by ' || a.name END, a.genre, a.description)
        FROM tracks t LEFT JOIN artists a ON a.artist_id = t.artist_id ORDER BY t.track_id
        """
    ).fetchall()
    artists = conn.execute(
        "SELECT artist_id, name, concat_ws('. ', name, genre, description) FROM artists ORDER BY artist_id"
    ).fetchall()
    known: dict[str, tuple[str, str, str]] = {}
    for item_id, name, text in tracks:
        known[item_id] = ("track", text or "", name or item_id)
    for item_id, name, text in artists:
        known.setdefault(item_id, ("artist", text or "", name or item_id))
    item_ids = list(known) if items is None else [str(i) for i in items]
    index = {item: i for i, item in enumerate(item_ids)}
    texts = ItemTexts(
        item_ids=item_ids,
        kinds=[known.get(i, ("item", "", i))[0] for i in item_ids],
        catalogue=[known.get(i, ("item", "", i))[1] for i in item_ids],
        names=[known.get(i, ("item", "", i))[2] for i in item_ids],
    )
    tag_rows = conn.execute(
        "SELECT item_id, tag, user_id, coalesce(weight, 1.0) FROM item_tags ORDER BY item_id, tag, user_id"
    ).fetchall()
    rows = [(index[r[0]], r[1], r[2], r[3]) for r in tag_rows if r[0] in index]
    if rows:
        item, tag, user, weight = zip(*rows, strict=True)
        texts.tag_item, texts.tag_text, texts.tag_user = (
            np.array(item, np.int64),
            list(tag),
            list(user),
        )
        texts.tag_weight = np.array(weight, np.float64)
    playlist_rows = conn.execute(
        """
        SELECT DISTINCT pi.item_id, p.playlist_id, concat_ws('. ', p.name, p.description), p.owner_id
        FROM playlist_items pi JOIN playlists p ON p.playlist_id = pi.playlist_id
        ORDER BY pi.item_id, p.playlist_id
        """
    ).fetchall()
    rows = [(index[r[0]], r[2], r[3]) for r in playlist_rows if r[0] in index and r[2]]
    if rows:
        item, text, owner = zip(*rows, strict=True)
        texts.playlist_item, texts.playlist_text, texts.playlist_owner = (
            np.array(item, np.int64),
            list(text),
            list(owner),
        )
    return texts


class Vocabulary:
    """Terms to column numbers, and documents of terms to a sparse count matrix."""

    def __init__(self, terms: Iterable[str]):
        self.terms = list(terms)
        self.index = {t: i for i, t in enumerate(self.terms)}

    def __len__(self) -> int:
        return len(self.terms)

    def counts(
        self, docs: Sequence[Sequence[str]], weights: Sequence[float] | None = None
    ) -> sp.csr_matrix:
        """(len(docs), len(self)) term counts; unknown terms are ignored."""
        rows, cols, vals = [], [], []
        for r, doc in enumerate(docs):
            w = 1.0 if weights is None else float(weights[r])
            for term in doc:
                c = self.index.get(term)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
                    vals.append(w)
        m = sp.csr_matrix((np.array(vals, np.float64), (rows, cols)), shape=(len(docs), len(self)))
        m.sum_duplicates()
        return m
