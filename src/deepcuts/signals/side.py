"""Side information in the index space of a confidence matrix: tags, friends, regions, playlists.

- ``item_tags``: items x tags counts. Listeners' tag assignments (HetRec) and editorial tags
  and genres; a tag on an artist also tags the artist's tracks where items are tracks.
- ``friends``: users x users, 1 where the row user is friends with or follows the column user.
- ``user_region``: each user's home country (``users.country``, else the country they listen
  from most), as an index into ``regions``; -1 where unknown.
- ``item_cooccurrence``: items x items, how many playlists hold both (diagonal 0).

Held-out data must not reach training: ``exclude`` (users x items) names (user, item) pairs
that are test data, and a listener's own tag assignment on, or playlist entry of, such a pair is
left out. ``until`` leaves out what happened at or after a time.

Aggregates for candidate generation and ranking: `friends_listening` (the share of a user's
friends who listen to each item) and `regional_popularity` (the share of a region's listeners
who listen to each item).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from deepcuts.signals.ids import IdMap
from deepcuts.store import Store


@dataclass
class SideInfo:
    """What a hybrid model may use besides the confidence matrix (see the module docstring).

    Any field may be None where the store has no such data.
    """

    item_tags: sp.csr_matrix | None = None  # (n_items, n_tags) float32
    tags: list[str] | None = None
    friends: sp.csr_matrix | None = None  # (n_users, n_users) float32
    user_region: np.ndarray | None = None  # (n_users,) int32, -1 unknown
    regions: list[str] | None = None
    item_cooccurrence: sp.csr_matrix | None = None  # (n_items, n_items) float32

    def restricted_to_users(self, rows: np.ndarray) -> SideInfo:
        """Side information for a subset of users, in that order (friend columns kept)."""
        return SideInfo(
            item_tags=self.item_tags,
            tags=self.tags,
            friends=None if self.friends is None else self.friends[rows],
            user_region=None if self.user_region is None else self.user_region[rows],
            regions=self.regions,
            item_cooccurrence=self.item_cooccurrence,
        )


def _pairs_table(exclude: sp.csr_matrix | None) -> pa.Table:
    if exclude is None or exclude.nnz == 0:
        u = i = np.zeros(0, np.int32)
    else:
        coo = exclude.tocoo()
        u, i = coo.row.astype(np.int32), coo.col.astype(np.int32)
    return pa.table({"u": pa.array(u), "i": pa.array(i)})


def build_side_info(
    store: Store,
    users: IdMap,
    items: IdMap,
    *,
    exclude: sp.csr_matrix | None = None,
    until: datetime | None = None,
    tags: bool = True,
    neighbours: int | None = None,
) -> SideInfo:
    """All side information of the store in the given index space (module docstring);
    ``tags=False`` leaves the item tags out (None), for a caller with no use for them;
    ``neighbours=k`` keeps only each item's k strongest co-occurrences (of equal ones the lower
    item), computed without the full co-occurrence matrix."""
    tables = {
        "_dc_side_users": users.table("user_id"),
        "_dc_side_items": items.table("item_id"),
        "_dc_side_exclude": _pairs_table(exclude),
    }

    def read(part: Callable, *args: Any) -> Any:
        # Each part on a connection of its own, so that the parts are read at the same time.
        view = store.cursor()
        try:
            for name, table in tables.items():
                view.conn.register(name, table)
            return part(view, *args)
        finally:
            view.close()

    with ThreadPoolExecutor(2) as threads:  # the slowest first
        counting = threads.submit(read, _cooccurrence, len(items), until, neighbours)
        tagging = threads.submit(read, _item_tags, len(items), until) if tags else None
        befriending = threads.submit(read, _friends, len(users), until)
        placing = threads.submit(read, _regions, len(users))
        cooc = counting.result()
        item_tags, tag_names = tagging.result() if tagging is not None else (None, None)
        user_region, regions = placing.result()
        friends = befriending.result()
    return SideInfo(item_tags, tag_names, friends, user_region, regions, cooc)


def _params(until: datetime | None) -> dict[str, Any]:
    return {"until": until} if until is not None else {}


def _item_tags(
    store: Store, n_items: int, until: datetime | None
) -> tuple[sp.csr_matrix | None, list[str] | None]:
    window = "AND (tagged_at IS NULL OR tagged_at < $until)" if until is not None else ""
    rows = store.conn.execute(
        f"""
        WITH t AS (
          SELECT item_id, lower(trim(tag)) AS tag, user_id, coalesce(weight, 1.0) AS w
          FROM item_tags WHERE length(trim(tag)) > 0 {window}
          UNION ALL
          SELECT track_id, 'genre:' || lower(trim(genre)), NULL, 1.0 FROM tracks
          WHERE genre IS NOT NULL AND length(trim(genre)) > 0
          UNION ALL
          SELECT artist_id, 'genre:' || lower(trim(genre)), NULL, 1.0 FROM artists
          WHERE genre IS NOT NULL AND length(trim(genre)) > 0
        ), spread AS (   -- an artist's tags also tag its tracks
          SELECT t.item_id, t.tag, t.user_id, t.w FROM t
          UNION ALL
          SELECT tr.track_id, t.tag, t.user_id, t.w FROM t JOIN tracks tr ON tr.artist_id = t.item_id
        ), mapped AS (
          SELECT i.idx AS i, s.tag, u.idx AS u, s.w FROM spread s
          JOIN _dc_side_items i ON i.item_id = s.item_id
          LEFT JOIN _dc_side_users u ON u.user_id = s.user_id
        )
        SELECT m.i, m.tag, sum(m.w)::DOUBLE AS w FROM mapped m
        ANTI JOIN _dc_side_exclude x ON x.u = m.u AND x.i = m.i
        GROUP BY 1, 2
        """,
        _params(until),
    ).fetchnumpy()
    if not len(rows["i"]):
        return None, None
    tags, tag_idx = np.unique(rows["tag"].astype(str), return_inverse=True)
    m = sp.csr_matrix(
        (rows["w"].astype(np.float32), (rows["i"].astype(np.int32), tag_idx.astype(np.int32))),
        shape=(n_items, len(tags)),
    )
    m.sort_indices()
    return m, tags.tolist()


def _friends(store: Store, n_users: int, until: datetime | None) -> sp.csr_matrix | None:
    window_f = "WHERE since IS NULL OR since < $until" if until is not None else ""
    window_a = "AND (acted_at IS NULL OR acted_at < $until)" if until is not None else ""
    rows = store.conn.execute(
        f"""
        WITH e AS (  -- a friend who is also followed comes twice: the matrix keeps one
          SELECT user_id, friend_id FROM friendships {window_f}
          UNION ALL
          SELECT user_id, target_id FROM actions WHERE action = 'follow_user' {window_a}
        )
        SELECT a.idx AS u, b.idx AS f FROM e
        JOIN _dc_side_users a ON a.user_id = e.user_id
        JOIN _dc_side_users b ON b.user_id = e.friend_id
        WHERE a.idx <> b.idx
        """,
        _params(until),
    ).fetchnumpy()
    if not len(rows["u"]):
        return None
    m = sp.csr_matrix(
        (
            np.ones(len(rows["u"]), np.float32),
            (rows["u"].astype(np.int32), rows["f"].astype(np.int32)),
        ),
        shape=(n_users, n_users),
    )
    m.data[:] = 1  # repeats were summed
    m.sort_indices()
    return m


def _regions(store: Store, n_users: int) -> tuple[np.ndarray | None, list[str] | None]:
    rows = store.conn.execute(
        """
        WITH listened AS (
          SELECT user_id, mode(upper(country)) AS country FROM listens
          WHERE country IS NOT NULL AND length(trim(country)) > 0 GROUP BY user_id
        )
        SELECT u.idx AS u, coalesce(upper(us.country), l.country) AS country
        FROM _dc_side_users u
        LEFT JOIN users us ON us.user_id = u.user_id
        LEFT JOIN listened l ON l.user_id = u.user_id
        WHERE coalesce(us.country, l.country) IS NOT NULL
        """
    ).fetchnumpy()
    if not len(rows["u"]):
        return None, None
    regions, idx = np.unique(rows["country"].astype(str), return_inverse=True)
    out = np.full(n_users, -1, dtype=np.int32)
    out[rows["u"].astype(np.int64)] = idx
    return out, regions.tolist()


def _cooccurrence(
    store: Store, n_items: int, until: datetime | None, neighbours: int | None = None
) -> sp.csr_matrix | None:
    window = (
        "AND coalesce(pi.added_at, p.created_at, TIMESTAMP '1970-01-01') < $until"
        if until is not None
        else ""
    )
    # Playlists are numbered in the store as they come (the product P'P does not depend on the
    # order); a track listed twice on a playlist counts once (the matrix keeps one).
    rows = store.conn.execute(
        f"""
        WITH p AS (SELECT playlist_id, owner_id, created_at, row_number() OVER () - 1 AS p
                   FROM playlists),
        e AS (
          SELECT p.p, i.idx AS i, u.idx AS u
          FROM playlist_items pi
          JOIN p ON p.playlist_id = pi.playlist_id
          JOIN _dc_side_items i ON i.item_id = pi.item_id
          LEFT JOIN _dc_side_users u ON u.user_id = p.owner_id
          WHERE true {window}
        )
        SELECT e.p, e.i FROM e ANTI JOIN _dc_side_exclude x ON x.u = e.u AND x.i = e.i
        """,
        _params(until),
    ).fetchnumpy()
    if not len(rows["p"]):
        return None
    n_pl = int(rows["p"].max()) + 1
    P = sp.csr_matrix(
        (
            np.ones(len(rows["p"]), np.float32),
            (rows["p"].astype(np.int64), rows["i"].astype(np.int32)),
        ),
        shape=(n_pl, n_items),
    )
    P.data[:] = 1
    if neighbours is not None:
        from deepcuts.signals.neighbours import strongest_cooccurrence

        return strongest_cooccurrence(P, neighbours)
    C = (P.T @ P).tocsr()
    C.setdiag(0)
    C.eliminate_zeros()
    C.sort_indices()
    return C.astype(np.float32)


# -- aggregates ----------------------------------------------------------------------------


def friends_listening(friends: sp.csr_matrix, positives: sp.csr_matrix) -> sp.csr_matrix:
    """Users x items: the share of each user's friends who listen to each item.

    Parameters
    ----------
    friends : CSR (n_users, n_users), nonzero where the column user is a friend of the row.
    positives : CSR (n_users, n_items), nonzero where the user listens to the item.
    """
    f = friends.tocsr().astype(np.float32)
    deg = np.diff(f.indptr)
    f.data = np.repeat(1.0 / np.maximum(deg, 1), deg).astype(np.float32)  # each friend 1/degree
    p = positives.tocsr().astype(np.float32)
    p.data = (p.data > 0).astype(np.float32)
    out = (f @ p).tocsr()
    out.sort_indices()
    return out


def regional_popularity(
    positives: sp.csr_matrix, user_region: np.ndarray, n_regions: int
) -> np.ndarray:
    """Regions x items (float32): the share of each region's listeners who listen to each item.

    Users with region -1 count in no region.
    """
    p = positives.tocsr().astype(np.float32)
    p.data = (p.data > 0).astype(np.float32)
    known = user_region >= 0
    assign = sp.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (user_region[known], np.flatnonzero(known))),
        shape=(n_regions, p.shape[0]),
    )
    counts = np.asarray((assign @ p).todense(), dtype=np.float32)
    listeners = np.asarray(assign.sum(axis=1)).ravel()
    listeners[listeners == 0] = 1
    return counts / listeners[:, None]
