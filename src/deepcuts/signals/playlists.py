"""Playlists as model input: ordered track sequences, titles, and the playlist x track matrix.

`load_playlists` reads every playlist of the store with its tracks in order, its name, and the
catalogue's names of the tracks (title, artist). `playlist_matrix` turns sequences into the
playlists x tracks matrix the continuation models learn from: the value of an entry is
``1 + position`` of the track's first occurrence, so the matrix keeps the order (models that
want a set binarise it, sequence models read the order back). `normalize_title` is the
RecSys Challenge 2018 normalisation of playlist names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepcuts.signals.ids import IdMap
from deepcuts.store import Store

_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def normalize_title(title: str | None) -> str:
    """A playlist name as the RecSys Challenge 2018 compared names: lower case, accents,
    punctuation and emoji removed, runs of spaces made one.

    >>> normalize_title("  Chill  Vibes!! 🌴 ")
    'chill vibes'
    >>> normalize_title("Café Del Mar")
    'cafe del mar'
    """
    if not title:
        return ""
    text = unicodedata.normalize("NFKD", title.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NOT_WORD.sub(" ", text).replace("_", " ")
    return _SPACE.sub(" ", text).strip()


@dataclass
class PlaylistData:
    """Playlists and the catalogue of tracks they use, in index space.

    Attributes
    ----------
    playlists : IdMap of playlist ids (row order).
    titles : list[str], each playlist's name ("" where it has none).
    sequences : list of int64 arrays, each playlist's track indices in order (repeats kept).
    items : IdMap of track ids: every track of the catalogue, those on a playlist first.
    item_names : list[str], each track's title (its id where the catalogue has no name).
    item_artists : list[str], each track's artist name ("" where unknown).
    """

    playlists: IdMap
    titles: list[str]
    sequences: list[np.ndarray]
    items: IdMap
    item_names: list[str]
    item_artists: list[str]

    def __len__(self) -> int:
        return len(self.playlists)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences], np.int64)

    def artist_codes(self) -> np.ndarray:
        """int64 (n_items,): a number per distinct artist name, -1 where unknown."""
        codes: dict[str, int] = {}
        return np.array(
            [codes.setdefault(a, len(codes)) if a else -1 for a in self.item_artists], np.int64
        )

    def artist_names(self) -> list[str]:
        """The name of each artist number `artist_codes` gives, in number order."""
        return list(dict.fromkeys(a for a in self.item_artists if a))

    def label(self, item: int) -> str:
        """``Title - Artist`` of a track, for reasons and tables."""
        name, artist = self.item_names[item], self.item_artists[item]
        return f"{name} - {artist}" if artist else name


def load_playlists(store: Store) -> PlaylistData:
    """Every playlist in the store with its ordered tracks, and every track of the catalogue.

    Tracks are indexed in order of first appearance on a playlist (by playlist id, then
    position), then the catalogue's tracks that are on no playlist (cold tracks), by id.
    """
    conn = store.conn
    rows = conn.execute(
        """
        SELECT p.playlist_id, coalesce(p.name, ''),
               list(pi.item_id ORDER BY pi.position) FILTER (WHERE pi.item_id IS NOT NULL)
        FROM playlists p LEFT JOIN playlist_items pi ON pi.playlist_id = p.playlist_id
        GROUP BY p.playlist_id, p.name ORDER BY p.playlist_id
        """
    ).fetchall()
    order: dict[str, int] = {}
    sequences = []
    for _, _, items in rows:
        seq = []
        for item in items or ():
            seq.append(order.setdefault(item, len(order)))
        sequences.append(np.asarray(seq, np.int64))
    cold = [
        r[0]
        for r in conn.execute("SELECT track_id FROM tracks ORDER BY track_id").fetchall()
        if r[0] not in order
    ]
    for item in cold:
        order[item] = len(order)
    items = IdMap(list(order))
    names = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT t.track_id, t.name, a.name FROM tracks t LEFT JOIN artists a ON a.artist_id = t.artist_id"
        ).fetchall()
    }
    item_names = [names.get(i, (None, None))[0] or i for i in items.ids.tolist()]
    item_artists = [names.get(i, (None, None))[1] or "" for i in items.ids.tolist()]
    return PlaylistData(
        playlists=IdMap([r[0] for r in rows]),
        titles=[r[1] for r in rows],
        sequences=sequences,
        items=items,
        item_names=item_names,
        item_artists=item_artists,
    )


def playlist_matrix(sequences: Sequence[Sequence[int]], n_items: int) -> sp.csr_matrix:
    """Playlists x tracks, float32: ``1 + position`` of each track's first occurrence.

    >>> playlist_matrix([[2, 0, 2], []], 3).toarray().tolist()
    [[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    rows, cols, vals = [], [], []
    for r, seq in enumerate(sequences):
        seq = np.asarray(seq, np.int64)
        if not len(seq):
            continue
        first, where = np.unique(seq, return_index=True)
        rows.append(np.full(len(first), r, np.int64))
        cols.append(first)
        vals.append(where.astype(np.float32) + 1)
    if not rows:
        return sp.csr_matrix((len(sequences), n_items), dtype=np.float32)
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(sequences), n_items),
        dtype=np.float32,
    )
    m.sort_indices()
    return m


def ordered_row(row: sp.csr_matrix) -> np.ndarray:
    """The track indices of one row of a `playlist_matrix`, in playlist order."""
    row = row.tocsr()
    return row.indices[np.argsort(row.data, kind="stable")].astype(np.int64)
