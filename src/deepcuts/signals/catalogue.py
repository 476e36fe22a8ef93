"""What the catalogue says about each item, as arrays in the items' index space.

Surfaces need an item's artist and album (caps per artist and album), release date (fresh
tracks, new releases), popularity (long tail, novelty) and names (explanations, exports).
Where the items are artists (HetRec), each item is its own artist and has no album.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from deepcuts.signals.ids import IdMap
from deepcuts.store import Store

NO_DATE = np.iinfo(np.int32).min


@dataclass
class Catalogue:
    """Item metadata aligned with an items `IdMap`.

    Attributes
    ----------
    items : the id map the arrays follow.
    names : (n_items,) object: the item's name (or its id where unknown).
    artist : (n_items,) int32: index into `artists` (-1 unknown).
    artists : (n_artists,) object: artist ids.
    artist_names : (n_artists,) object.
    album : (n_items,) int32: index of the item's album among distinct album ids (-1 none).
    album_names : (n_albums,) object.
    release_day : (n_items,) int32: days since 1970-01-01 (NO_DATE unknown).
    duration_ms : (n_items,) float64 (NaN unknown).
    location : (n_items,) object: the audio path or URI, or None.
    plays : (n_items,) float64: listens in the store (rows of play counts summed).
    """

    items: IdMap
    names: np.ndarray
    artist: np.ndarray
    artists: np.ndarray
    artist_names: np.ndarray
    album: np.ndarray
    album_names: np.ndarray
    release_day: np.ndarray
    duration_ms: np.ndarray
    location: np.ndarray
    plays: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.items)

    def popularity_rank(self) -> np.ndarray:
        """Each item's rank by plays, 0 for the most played."""
        order = np.argsort(-self.plays, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank

    @cached_property
    def artist_name_of_item(self) -> list[str]:
        """Each item's artist's name; an item without an artist (an artist itself) its own."""
        names = self.names.tolist()
        artist_names = self.artist_names.tolist()
        return [
            str(artist_names[a]) if a >= 0 else str(names[i])
            for i, a in enumerate(self.artist.tolist())
        ]

    @cached_property
    def display_names(self) -> list[str]:
        """'Title by Artist' for a track, the name alone for an artist: what explanations show."""
        return [
            str(name) if artist == str(name) else f"{name} by {artist}"
            for name, artist in zip(self.names.tolist(), self.artist_name_of_item, strict=True)
        ]

    def long_tail(self, head_share: float = 0.2) -> np.ndarray:
        """Boolean (n_items,): True outside the head, the `head_share` most played items."""
        return self.popularity_rank() >= int(np.ceil(head_share * self.n_items))


def load_catalogue(store: Store, items: IdMap, plays: np.ndarray | None = None) -> Catalogue:
    """The catalogue's facts about `items` (tracks, or artists where items are artists).

    ``plays``: the caller's own count per item (a surface counts listeners up to its date), in
    place of the store's listens summed, which then are not read at all."""
    if plays is not None and len(plays) != len(items):
        raise ValueError(f"plays must be one count per item ({len(items)}), not {len(plays)}")
    plays_join = (
        """LEFT JOIN (SELECT item_id, sum(coalesce(play_count, 1)) AS plays FROM listens
                       GROUP BY item_id) p ON p.item_id = i.item_id"""
        if plays is None
        else ""
    )
    conn = store.conn
    conn.register(
        "_catalogue_items",
        pa.table({"item_id": pa.array(items.ids, pa.string()), "idx": np.arange(len(items))}),
    )
    try:
        rows = conn.sql(
            f"""
            SELECT i.idx,
                   coalesce(t.name, a_item.name, i.item_id) AS name,
                   coalesce(t.artist_id, a_item.artist_id) AS artist_id,
                   coalesce(ta.name, a_item.name) AS artist_name,
                   t.album_id, al.name AS album_name,
                   coalesce(t.release_date, al.release_date) AS release_date,
                   t.duration_ms,
                   coalesce(t.audio_path, t.uri) AS location,
                   {"coalesce(p.plays, 0)" if plays is None else "0"} AS plays
            FROM _catalogue_items i
            LEFT JOIN tracks t ON t.track_id = i.item_id
            LEFT JOIN artists ta ON ta.artist_id = t.artist_id
            LEFT JOIN artists a_item ON a_item.artist_id = i.item_id
            LEFT JOIN albums al ON al.album_id = t.album_id
            {plays_join}
            ORDER BY i.idx
            """
        ).to_arrow_table()
    finally:
        conn.unregister("_catalogue_items")
    artist_ids = rows["artist_id"].to_numpy(zero_copy_only=False)
    album_ids = rows["album_id"].to_numpy(zero_copy_only=False)
    artists, artist = _codes(artist_ids)
    albums, album = _codes(album_ids)
    artist_name_of = dict(
        zip(artist_ids, rows["artist_name"].to_numpy(zero_copy_only=False), strict=True)
    )
    album_name_of = dict(
        zip(album_ids, rows["album_name"].to_numpy(zero_copy_only=False), strict=True)
    )
    release = rows["release_date"].cast(pa.int32()).fill_null(NO_DATE).to_numpy()
    duration = rows["duration_ms"].cast(pa.float64()).to_numpy(zero_copy_only=False)
    return Catalogue(
        items=items,
        names=rows["name"].to_numpy(zero_copy_only=False),
        artist=artist,
        artists=artists,
        artist_names=np.array([artist_name_of[a] or a for a in artists], dtype=object),
        album=album,
        album_names=np.array([album_name_of[a] or a for a in albums], dtype=object),
        release_day=release.astype(np.int32),
        duration_ms=np.where(np.isnan(duration), np.nan, duration),
        location=rows["location"].to_numpy(zero_copy_only=False),
        plays=(
            rows["plays"].cast(pa.float64()).to_numpy()
            if plays is None
            else np.asarray(plays, np.float64)
        ),
    )


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-null values (object array) and each value's index among them (-1 null)."""
    present = np.array([v is not None for v in values], bool)
    uniques, inverse = np.unique(values[present].astype(str), return_inverse=True)
    codes = np.full(len(values), -1, np.int32)
    codes[present] = inverse
    return uniques.astype(object), codes
