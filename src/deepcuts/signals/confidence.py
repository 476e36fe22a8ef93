"""The user x item confidence matrix: what listeners did, weighed into one number per pair.

Every pair of a listener and an item the store has evidence for gets a value:

- **plays**: successful plays (streams of at least 30 seconds) are counted, or measured by
  minutes listened (``use_time``), and scaled: ``log`` gives ``1 + alpha * log(1 + p / eps)``
  (Hu, Koren and Volinsky's log confidence), ``linear`` gives ``alpha * p`` (raw counts with
  ``alpha = 1``), ``binary`` gives ``alpha``. Count-only rows (``play_count`` with no time,
  as in HetRec) are plays.
- **skips**: a play that ended before ``skip_ms`` (30 s) is not a play; it is negative evidence
  that subtracts ``skip_weight * log(1 + skips)``. Where only skips (or more negative than
  positive evidence) remain, the value is negative, ``-(1 + |net|)``: implicit's ALS reads a
  negative value as "preference 0 with that confidence", and item-based models ignore it.
- **saves, playlist adds, artist follows**: strong positives, adding ``save_weight``,
  ``playlist_weight`` (an add to any playlist, including playlists the listener made) and
  ``follow_weight`` (following the item's artist: where items are tracks, the tracks of that
  artist the listener has other evidence for; where items are artists, the artist). A save
  undone by a later ``unsave`` does not count.
- **bans and hides**: the pair is removed from the matrix and recorded in ``banned`` so that
  recommendation filters it.
- **recency**: each play, skip and playlist add is weighed by ``0.5 ** (age / half_life_days)``,
  its age counted back from ``now`` (by default the latest event in the store, so that the same
  store gives the same matrix). Events without a time are not decayed.
- plays in a private session (``incognito``) are left out, as Spotify leaves them out of taste.

External ids are mapped to rows and columns here, once (`IdMap`); the index space can be given
(``users=``, ``items=``) so that several matrices (a training window, a different weighting)
share it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from deepcuts.signals.ids import IdMap
from deepcuts.store import Store

log = logging.getLogger(__name__)

SCALINGS = ("log", "linear", "binary")
DEFAULT_TRACK_MS = 210_000  # a play with no time of its own, for ``use_time``


@dataclass(frozen=True)
class ConfidenceConfig:
    """How evidence becomes confidence (see the module docstring for the formula).

    Parameters
    ----------
    scaling : "log", "linear" or "binary".
    alpha : scale of the play term.
    eps : plays (or minutes) at which the log term reaches ``log 2``.
    use_time : measure plays by minutes listened instead of by count.
    skip_weight : weight of ``log(1 + skips)``, subtracted.
    skip_ms : a play shorter than this is a skip.
    save_weight, playlist_weight, follow_weight : added for a save, a playlist add, a follow.
    half_life_days : recency half-life; None turns decay off.
    now : the time ages are counted from; None means the latest event in the window.
    """

    scaling: Literal["log", "linear", "binary"] = "log"
    alpha: float = 1.0
    eps: float = 1.0
    use_time: bool = False
    skip_weight: float = 1.0
    skip_ms: int = 30_000
    save_weight: float = 2.0
    playlist_weight: float = 2.0
    follow_weight: float = 1.0
    half_life_days: float | None = 180.0
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, not {self.scaling!r}")
        for name in (
            "alpha",
            "eps",
            "skip_weight",
            "save_weight",
            "playlist_weight",
            "follow_weight",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, not {self.eps!r}")
        if self.skip_ms < 0:
            raise ValueError(f"skip_ms must be >= 0, not {self.skip_ms!r}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0 or None, not {self.half_life_days!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["now"] = self.now.isoformat() if self.now else None
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConfidenceConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown confidence setting(s): {', '.join(sorted(unknown))}")
        values = dict(values)
        if isinstance(values.get("now"), str):
            values["now"] = datetime.fromisoformat(values["now"])
        return cls(**values)


RAW_COUNTS = ConfidenceConfig(
    scaling="linear",
    alpha=1.0,
    skip_weight=0.0,
    save_weight=0.0,
    playlist_weight=0.0,
    follow_weight=0.0,
    half_life_days=None,
)
"""Plays as raw counts and nothing else: what a bare implicit model is usually fed."""


@dataclass
class PairEvidence:
    """Evidence per (user, item) pair, aggregated from the store, before weighting.

    All arrays have one entry per pair with any evidence; ``banned`` lists pairs to exclude.
    """

    users: IdMap
    items: IdMap
    user: np.ndarray  # int32 row
    item: np.ndarray  # int32 column
    plays: np.ndarray  # decayed successful plays
    minutes: np.ndarray  # decayed minutes of successful plays
    skips: np.ndarray  # decayed skips
    saved: np.ndarray  # 0/1
    playlist: np.ndarray  # decayed playlist adds
    followed: np.ndarray  # 0/1: follows the item's artist
    banned_user: np.ndarray
    banned_item: np.ndarray
    now: datetime | None


@dataclass
class Interactions:
    """The confidence matrix and what is needed to read it.

    Attributes
    ----------
    matrix : CSR float32, shape (n_users, n_items): the confidence values.
    users, items : the id maps of rows and columns.
    banned : CSR bool, shape (n_users, n_items): pairs never to recommend.
    config : the weighting used.
    now : the time ages were counted from.
    """

    matrix: sp.csr_matrix
    users: IdMap
    items: IdMap
    banned: sp.csr_matrix
    config: ConfidenceConfig = field(default_factory=ConfidenceConfig)
    now: datetime | None = None
    _positives: sp.csr_matrix | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def positives(self) -> sp.csr_matrix:
        """Binary CSR (float32) of the pairs with positive confidence (made once; the matrix is
        not changed in place: `without` makes a new `Interactions`)."""
        if self._positives is None:
            self._positives = positive_part(self.matrix, binary=True)
        return self._positives

    def seen(self) -> sp.csr_matrix:
        """Binary CSR of every pair with any evidence or a ban: what filters recommendation."""
        m = self.matrix.copy()
        m.data = np.ones_like(m.data)
        out = (m + self.banned.astype(np.float32)).tocsr()
        out.data = np.ones_like(out.data)
        return out

    def without(self, pairs: sp.csr_matrix) -> Interactions:
        """A copy with the given (user, item) pairs removed from the matrix (held-out data)."""
        return replace(self, matrix=remove_pairs(self.matrix, pairs))


def positive_part(matrix: sp.csr_matrix, binary: bool = False) -> sp.csr_matrix:
    """The entries > 0 of a CSR matrix (set to 1 where ``binary``), float32."""
    m = matrix.tocsr().astype(np.float32, copy=True)
    m.data[m.data < 0] = 0
    if binary:
        m.data[m.data > 0] = 1
    m.eliminate_zeros()
    return m


def remove_pairs(matrix: sp.csr_matrix, pairs: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` without the entries where ``pairs`` is nonzero (same shape)."""
    matrix = matrix.tocsr()
    if pairs.nnz == 0:
        return matrix.copy()
    mask = pairs.tocsr().astype(bool).astype(matrix.dtype)
    # x - x is exactly 0, so the masked entries vanish and no other entry changes
    out = (matrix - matrix.multiply(mask)).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


# -- building from the store ---------------------------------------------------------------


def store_id_maps(store: Store) -> tuple[IdMap, IdMap]:
    """Users and items the store knows of, sorted: every user with a row in ``users`` or any
    event, and every item played, saved, banned, hidden, added to a playlist or in one, and
    every track of the catalogue (so that tracks nobody has played yet, fresh releases, can
    still be recommended from their audio and text)."""
    users = store.conn.execute(
        """
        SELECT user_id FROM users UNION SELECT user_id FROM listens
        UNION SELECT user_id FROM actions UNION SELECT owner_id FROM playlists
            WHERE owner_id IS NOT NULL
        ORDER BY 1
        """
    ).fetchnumpy()["user_id"]
    items = store.conn.execute(
        """
        SELECT item_id FROM listens UNION SELECT item_id FROM playlist_items
        UNION SELECT target_id FROM actions
            WHERE action IN ('save', 'unsave', 'ban', 'hide', 'playlist_add')
        UNION SELECT track_id FROM tracks
        ORDER BY 1
        """
    ).fetchnumpy()["item_id"]
    return IdMap(users.astype(str)), IdMap(items.astype(str))


def _register_ids(store: Store, name: str, ids: IdMap, column: str) -> None:
    table = pa.table(
        {
            column: pa.array(ids.ids.tolist(), pa.string()),
            "idx": pa.array(np.arange(len(ids), dtype=np.int32)),
        }
    )
    store.conn.register(name, table)


def skip_condition(config: ConfidenceConfig, alias: str = "") -> str:
    """SQL over a ``listens`` row: whether it is a skip (ended before ``skip_ms``, or flagged
    as skipped where its length is unknown). The one statement of the rule; the events export
    splits listens by it."""
    a = f"{alias}." if alias else ""
    return (
        f"(CASE WHEN {a}ms_played IS NOT NULL THEN {a}ms_played < {int(config.skip_ms)} "
        f"ELSE coalesce({a}skipped, false) END)"
    )


def latest_event(store: Store, until: datetime | None = None) -> datetime | None:
    cond = "WHERE played_at < $until" if until else ""
    cond_a = "WHERE acted_at < $until" if until else ""
    params = {"until": until} if until else {}
    row = store.conn.execute(
        f"SELECT greatest((SELECT max(played_at) FROM listens {cond}), "
        f"(SELECT max(acted_at) FROM actions {cond_a}))",
        params,
    ).fetchall()[0][0]
    return row


def gather_evidence(
    store: Store,
    config: ConfidenceConfig = ConfidenceConfig(),  # noqa: B008 - frozen dataclass
    *,
    users: IdMap | None = None,
    items: IdMap | None = None,
    until: datetime | None = None,
) -> PairEvidence:
    """Aggregate the store's events per (user, item) pair, before weighting.

    Events at or after ``until`` are left out (a training window). Users and items outside
    the given maps are dropped.
    """
    began = time.perf_counter()
    if users is None or items is None:
        all_users, all_items = store_id_maps(store)
        users = all_users if users is None else users
        items = all_items if items is None else items
    now = config.now or latest_event(store, until)
    conn = store.conn
    _register_ids(store, "_dc_users", users, "user_id")
    _register_ids(store, "_dc_items", items, "item_id")
    params: dict[str, Any] = {}
    if until is not None:
        params["until"] = until
    if config.half_life_days is not None and now is not None:
        params["now"] = now
        params["hl"] = float(config.half_life_days) * 86400.0

        def decay(col: str) -> str:
            return (
                f"CASE WHEN {col} IS NULL THEN 1.0 ELSE pow(0.5, greatest("
                f"epoch($now::TIMESTAMP) - epoch({col}), 0) / $hl) END"
            )
    else:

        def decay(col: str) -> str:
            return "1.0"

    # a listen without a time (a play count) is history: before any cutoff, as undated actions are
    window = "AND (played_at IS NULL OR played_at < $until)" if until is not None else ""
    time_join = ""
    duration = str(DEFAULT_TRACK_MS)
    if config.use_time:
        time_join = "LEFT JOIN tracks t ON t.track_id = l.item_id"
        duration = f"coalesce(t.duration_ms, {DEFAULT_TRACK_MS})"
    minutes = (
        "sum(CASE WHEN is_skip THEN 0 ELSE ms * w END)::DOUBLE / 60000"
        if config.use_time
        else "0.0::DOUBLE"
    )
    act_window = "AND (acted_at IS NULL OR acted_at < $until)" if until is not None else ""
    pl_window = "AND coalesce(t, TIMESTAMP '1970-01-01') < $until" if until is not None else ""
    sql = f"""
        WITH l AS (
          SELECT l.user_id, l.item_id, coalesce(l.play_count, 1) AS n,
                 {skip_condition(config, "l")} AS is_skip,
                 coalesce(l.ms_played, coalesce(l.play_count, 1) * {duration}) AS ms,
                 {decay("l.played_at")} AS w
          FROM listens l {time_join}
          WHERE NOT coalesce(l.incognito, false) {window}
        ), p AS (
          SELECT u.idx AS u, i.idx AS i,
                 sum(CASE WHEN is_skip THEN 0 ELSE n * w END)::DOUBLE AS plays,
                 {minutes} AS minutes,
                 sum(CASE WHEN is_skip THEN n * w ELSE 0 END)::DOUBLE AS skips
          FROM l JOIN _dc_users u ON u.user_id = l.user_id
                 JOIN _dc_items i ON i.item_id = l.item_id
          GROUP BY 1, 2
        ), a AS (   -- the last of save / unsave wins; a ban or hide excludes the pair
          SELECT u.idx AS u, i.idx AS i,
                 coalesce(arg_max(action, coalesce(acted_at, TIMESTAMP '1970-01-01'))
                     FILTER (WHERE action IN ('save', 'unsave')) = 'save', false) AS saved,
                 bool_or(action IN ('ban', 'hide')) AS banned
          FROM actions x JOIN _dc_users u ON u.user_id = x.user_id
                         JOIN _dc_items i ON i.item_id = x.target_id
          WHERE action IN ('save', 'unsave', 'ban', 'hide') {act_window}
          GROUP BY 1, 2
        ), adds AS (   -- playlist adds, and the items of playlists the user made
          SELECT user_id, target_id AS item_id, acted_at AS t, coalesce(context_id, '') AS pl
          FROM actions WHERE action = 'playlist_add' {act_window}
          UNION
          SELECT p.owner_id, pi.item_id, coalesce(pi.added_at, p.created_at), p.playlist_id
          FROM playlist_items pi JOIN playlists p ON p.playlist_id = pi.playlist_id
          WHERE p.owner_id IS NOT NULL
        ), d AS (
          SELECT u.idx AS u, i.idx AS i, sum(w)::DOUBLE AS adds FROM (
            SELECT user_id, item_id, max({decay("t")}) AS w FROM adds
            WHERE true {pl_window} GROUP BY user_id, item_id, pl
          ) x JOIN _dc_users u ON u.user_id = x.user_id
              JOIN _dc_items i ON i.item_id = x.item_id
          GROUP BY 1, 2
        ), f AS (   -- items that are, or are tracks of, an artist the user follows
          SELECT DISTINCT u.idx AS u, i.idx AS i, b.direct
          FROM (SELECT DISTINCT user_id, target_id FROM actions
                WHERE action = 'follow_artist' {act_window}) x
          JOIN _dc_users u ON u.user_id = x.user_id
          JOIN (SELECT track_id AS item_id, artist_id, false AS direct FROM tracks
                WHERE artist_id IS NOT NULL
                UNION ALL SELECT artist_id, artist_id, true FROM artists) b
            ON b.artist_id = x.target_id
          JOIN _dc_items i ON i.item_id = b.item_id
        ), pairs AS (
          SELECT coalesce(p.u, a.u, d.u, fd.u) AS u, coalesce(p.i, a.i, d.i, fd.i) AS i,
                 coalesce(p.plays, 0) AS plays, coalesce(p.minutes, 0) AS minutes,
                 coalesce(p.skips, 0) AS skips, coalesce(a.saved, false) AS saved,
                 coalesce(a.banned, false) AS banned, coalesce(d.adds, 0) AS adds
          FROM p
          FULL JOIN a ON a.u = p.u AND a.i = p.i
          FULL JOIN d ON d.u = coalesce(p.u, a.u) AND d.i = coalesce(p.i, a.i)
          FULL JOIN (SELECT u, i FROM f WHERE direct) fd   -- following an artist item is evidence
            ON fd.u = coalesce(p.u, a.u, d.u) AND fd.i = coalesce(p.i, a.i, d.i)
        )
        SELECT pairs.*, f.u IS NOT NULL AS followed
        FROM pairs LEFT JOIN (SELECT DISTINCT u, i FROM f) f ON f.u = pairs.u AND f.i = pairs.i
    """
    if not _has_rows(store, "actions") and not _has_rows(store, "playlist_items"):
        # plays only (HetRec, most listening histories): no pairs to merge
        sql = (
            sql[: sql.index("), a AS (")]
            + """)
        SELECT p.*, false AS saved, false AS banned, 0.0::DOUBLE AS adds, false AS followed
        FROM p
    """
        )
    try:
        rows = _run(store, sql, params)
    finally:
        conn.unregister("_dc_users")
        conn.unregister("_dc_items")
    banned = np.asarray(rows["banned"], dtype=bool)
    evidence = PairEvidence(
        users=users,
        items=items,
        user=np.asarray(rows["u"], np.int32),
        item=np.asarray(rows["i"], np.int32),
        plays=np.asarray(rows["plays"], np.float64),
        minutes=np.asarray(rows["minutes"], np.float64),
        skips=np.asarray(rows["skips"], np.float64),
        saved=np.asarray(rows["saved"], np.float64),
        playlist=np.asarray(rows["adds"], np.float64),
        followed=np.asarray(rows["followed"], np.float64),
        banned_user=np.asarray(rows["u"], np.int32)[banned],
        banned_item=np.asarray(rows["i"], np.int32)[banned],
        now=now,
    )
    log.debug(
        "gathered evidence for %d pairs (%d users x %d items) in %.2f s",
        len(evidence.user),
        len(users),
        len(items),
        time.perf_counter() - began,
    )
    return evidence


def _has_rows(store: Store, table: str) -> bool:
    return bool(store.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchall()[0][0])


def _run(store: Store, sql: str, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Execute with the named parameters the SQL uses (DuckDB refuses unused ones)."""
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    return store.conn.execute(sql, used).fetchnumpy()


def weigh(evidence: PairEvidence, config: ConfidenceConfig) -> sp.csr_matrix:
    """The confidence matrix from aggregated evidence (see the module docstring)."""
    p = evidence.minutes if config.use_time else evidence.plays
    played = p > 0
    if config.scaling == "log":
        play_term = np.where(played, 1.0 + config.alpha * np.log1p(p / config.eps), 0.0)
    elif config.scaling == "linear":
        play_term = config.alpha * p
    else:
        play_term = np.where(played, config.alpha, 0.0)
    net = play_term
    has_any = played.copy()
    if evidence.saved.any() or evidence.playlist.any() or evidence.followed.any():
        strong = (
            config.save_weight * evidence.saved
            + config.playlist_weight * np.minimum(evidence.playlist, 1.0)
            + config.follow_weight * evidence.followed
        )
        if config.scaling == "log":
            # a save or add without a play still gets the base confidence of 1
            strong = strong + ((~played) & (strong > 0))
        net = net + strong
        has_any |= strong > 0
    if evidence.skips.any():
        net = net - config.skip_weight * np.log1p(evidence.skips)
        has_any |= evidence.skips > 0
    value = np.where(net > 0, net, -(1.0 - net))
    n_users, n_items = len(evidence.users), len(evidence.items)
    keep = has_any
    matrix = sp.csr_matrix(
        (value[keep].astype(np.float32), (evidence.user[keep], evidence.item[keep])),
        shape=(n_users, n_items),
        dtype=np.float32,
    )
    if len(evidence.banned_user):
        banned = sp.csr_matrix(
            (
                np.ones(len(evidence.banned_user), np.float32),
                (evidence.banned_user, evidence.banned_item),
            ),
            shape=(n_users, n_items),
        )
        matrix = remove_pairs(matrix, banned)
    matrix.sort_indices()
    return matrix


def banned_matrix(evidence: PairEvidence) -> sp.csr_matrix:
    n_users, n_items = len(evidence.users), len(evidence.items)
    m = sp.csr_matrix(
        (
            np.ones(len(evidence.banned_user), dtype=bool),
            (evidence.banned_user, evidence.banned_item),
        ),
        shape=(n_users, n_items),
        dtype=bool,
    )
    m.sum_duplicates()
    return m


def build_interactions(
    store: Store,
    config: ConfidenceConfig = ConfidenceConfig(),  # noqa: B008 - frozen dataclass
    *,
    users: IdMap | None = None,
    items: IdMap | None = None,
    until: datetime | None = None,
) -> Interactions:
    """The confidence matrix of the store (or of its events before ``until``).

    Example
    -------
    >>> from deepcuts.store import Store
    >>> store = Store(":memory:", create=True)
    >>> _ = store.conn.execute(
    ...     "INSERT INTO listens (user_id, item_id, play_count) VALUES ('u', 'a', 3), ('u', 'b', 1)")
    >>> inter = build_interactions(store, ConfidenceConfig(scaling="linear"))
    >>> inter.matrix.toarray().tolist()
    [[3.0, 1.0]]
    """
    evidence = gather_evidence(store, config, users=users, items=items, until=until)
    return interactions_from_evidence(evidence, config)


def interactions_from_evidence(evidence: PairEvidence, config: ConfidenceConfig) -> Interactions:
    return Interactions(
        matrix=weigh(evidence, config),
        users=evidence.users,
        items=evidence.items,
        banned=banned_matrix(evidence),
        config=config,
        now=evidence.now,
    )
