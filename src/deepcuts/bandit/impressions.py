"""Impressions in the store: logging served pages, joining plays back as rewards, exporting.

The ``impressions`` table (schema version 3) has one row per card shown on a served page:

==========================  =====================================================================
impression_id               unique id of the row
page_id                     the served page (rows of a page share a context)
user_id, served_at          who saw it and when (UTC)
hour, weekday, device,      the context: local hour 0-23, weekday 0 = Monday, platform, country
country
context                     JSON of further context features (e.g. of the session)
shelf_id, shelf_type,       the shelf (explanation) the card was on
shelf_title
item_id, item_kind,         the card: its id, kind (track, artist, playlist, album), the content
content_type,               type that picks the success threshold, and JSON card features
card_features
shelf_position,             0-based slot of the card on the page
card_position
n_shelf_candidates,         how many shelves and cards the policy chose from (a page showing
n_card_candidates           fewer than all candidates cannot be fully replayed from the log)
policy_id, policy_version   which policy served it
propensity                  P(this card of this shelf in this slot) = shelf_propensity *
                            card_propensity (see ``deepcuts.bandit.types``)
shelf_propensity,           P(shelf at its position), P(card at its position | shelf), and
card_propensity,            P(the draws made | earlier positions)
propensity_given_earlier
reward, reward_at           1.0 for a stream of at least the threshold, 0.0 for none within the
                            window; NULL until joined
==========================  =====================================================================
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from deepcuts.bandit.feedback import LoggedFeedback, feedback_from_frame, write_table
from deepcuts.bandit.reward import SuccessRule
from deepcuts.bandit.types import BanditInputError, Card, Context, Impression, ServedPage, Shelf
from deepcuts.store import Store
from deepcuts.store.live import PageRow, page_impressions

COLUMNS = (
    "impression_id", "page_id", "user_id", "served_at", "hour", "weekday", "device", "country",
    "context", "shelf_id", "shelf_type", "shelf_title", "item_id", "item_kind", "content_type",
    "card_features", "shelf_position", "card_position", "n_shelf_candidates", "n_card_candidates",
    "policy_id", "policy_version", "propensity", "shelf_propensity", "card_propensity",
    "propensity_given_earlier", "reward", "reward_at",
)  # fmt: skip


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


# One encoder for every card's and context's features (`json.dumps` with an option builds one
# per call, and a page has a card per impression).
_FEATURES_JSON = json.JSONEncoder(sort_keys=True)


_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # as ensure_ascii


# JSON text of each probability seen, kept: a policy's propensities come from a few values (an
# epsilon-greedy ranking's depend only on the candidates' ranks, `ranking`), and the shortest
# text of a float costs 0.4 us to find, against 0.1 for a look-up; a page logs and returns 120.
_PROBABILITY_TEXT: dict[float, str] = {}


def probability_text(value: float) -> str:
    """``repr(float(value))``, a probability's JSON text (in (0, 1], as `Impression` checks
    them: no NaN, and no -0.0 that 0.0's text would answer), remembered."""
    text = _PROBABILITY_TEXT.get(value)
    if text is None:
        if len(_PROBABILITY_TEXT) >= 1 << 16:  # Thompson sampling's averages are many more
            _PROBABILITY_TEXT.clear()
        text = _PROBABILITY_TEXT[value] = repr(float(value))
    return text


def _json(features: object) -> str:
    def py(v: object) -> object:
        return v.item() if isinstance(v, np.generic) else v

    return _FEATURES_JSON.encode({k: py(v) for k, v in dict(features).items()})  # type: ignore[call-overload]


# What a card contributes to its rows' JSON, kept while the card lives (a snapshot makes each
# card once, and a page shows twenty).
_CARD_JSON: weakref.WeakKeyDictionary[Card, str] = weakref.WeakKeyDictionary()


def _members(values: dict[str, object]) -> str:
    """A JSON object's members without its braces, to be joined with others into one object."""
    return _FEATURES_JSON.encode(values)[1:-1]


def _page_members(
    page_id: str, context: Context, served_at: datetime | None, n_shelf_candidates: int | None,
    policy_id: str, policy_version: str,
) -> str:  # fmt: skip
    """What the impressions of a page share: the page, its context and its policy
    (``served_at`` in UTC without its zone, as `_utc` leaves it)."""
    return _members(
        {
            "page_id": page_id,
            "user_id": context.user_id,
            "served_at": None if served_at is None else served_at.isoformat(),
            "hour": int(context.hour),
            "weekday": int(context.weekday),
            "device": context.device,
            "country": context.country,
            "context": _json(context.features),
            "n_shelf_candidates": n_shelf_candidates,
            "policy_id": policy_id,
            "policy_version": policy_version,
        }
    )


def _shelf_members(shelf: Shelf, n_card_candidates: int | None) -> str:
    return _members(
        {
            "shelf_id": shelf.shelf_id,
            "shelf_type": shelf.shelf_type,
            "shelf_title": shelf.title,
            "n_card_candidates": n_card_candidates,
        }
    )


def _card_members(card: Card) -> str:
    """What a card contributes to its rows, encoded once while the card lives."""
    part = _CARD_JSON.get(card)
    if part is None:
        part = _CARD_JSON[card] = _members(
            {
                "item_id": card.item_id,
                "item_kind": card.kind,
                "content_type": card.content_type,
                "card_features": _json(card.features),
            }
        )
    return part


def _own_members(
    impression_id: str, shelf_position: int, card_position: int, shelf_propensity: float,
    card_propensity: float, propensity_given_earlier: float, reward: float | None = None,
    reward_at: datetime | None = None,
) -> str:  # fmt: skip
    """An impression's own members. Propensities are in (0, 1] and a reward is finite
    (`Impression` checks them; a policy's draw is checked as it is served): valid JSON."""
    rewarded = _utc(reward_at)
    return (
        f'"impression_id": {_string(impression_id)}, '
        f'"shelf_position": {int(shelf_position)}, '
        f'"card_position": {int(card_position)}, '
        f'"propensity": {probability_text(float(shelf_propensity) * float(card_propensity))}, '
        f'"shelf_propensity": {probability_text(shelf_propensity)}, '
        f'"card_propensity": {probability_text(card_propensity)}, '
        f'"propensity_given_earlier": {probability_text(propensity_given_earlier)}, '
        f'"reward": {"null" if reward is None else repr(float(reward))}, '
        f'"reward_at": {"null" if rewarded is None else _string(rewarded.isoformat())}'
    )


def _im_page_members(im: Impression) -> str:
    return _page_members(im.page_id, im.context, _utc(im.served_at), im.n_shelf_candidates,
                         im.policy_id, im.policy_version)  # fmt: skip


def page_log_rows(impressions: Iterable[Impression]) -> list[PageRow]:
    """Impressions as the live log keeps them (`LiveLog.append_pages`): a row per page, whose
    JSON holds what the page's impressions share once and each impression's own members
    under "impressions"; `deepcuts.store.live.page_impressions` reads them back as rows of
    the ``impressions`` table (every column of ``COLUMNS``).

    The JSON is joined from parts, each shelf's and card's members encoded once (a card's
    once while it lives), so logging a page costs a few microseconds a card. An impression
    that does not share its page's context and policy with the page's first (never so on a
    served page) carries its own. A page as served (`ServedPage`) is logged by
    `served_page_row`, to the same row, without making its impressions."""
    pages: dict[str, tuple[tuple, str, str, str, list[str]]] = {}
    shelves: dict[tuple[int, int | None], str] = {}
    for im in impressions:
        shelf = im.shelf
        key = (id(im.context), im.served_at, im.policy_id, im.policy_version, im.n_shelf_candidates)  # fmt: skip
        page = pages.get(im.page_id)
        if page is None:
            served = _utc(im.served_at)
            page = pages[im.page_id] = (
                key, im.context.user_id, "" if served is None else served.isoformat(),
                _im_page_members(im), [],
            )  # fmt: skip
        shelf_key = (id(shelf), im.n_card_candidates)
        shelf_part = shelves.get(shelf_key)
        if shelf_part is None:
            shelf_part = shelves[shelf_key] = _shelf_members(shelf, im.n_card_candidates)
        own = _own_members(
            im.impression_id, im.shelf_position, im.card_position, im.shelf_propensity,
            im.card_propensity, im.propensity_given_earlier, im.reward, im.reward_at,
        )  # fmt: skip
        differs = "" if key == page[0] else f", {_im_page_members(im)}"
        page[4].append(f"{{{own}, {shelf_part}, {_card_members(im.card)}{differs}}}")
    return [
        (page_id, user_id, served_at, len(rows), f'{{{part}, "impressions": [{", ".join(rows)}]}}')
        for page_id, (_, user_id, served_at, part, rows) in pages.items()
    ]


# What a shelf of a served page contributes to its rows (its n_card_candidates is all its
# cards), kept while the shelf lives: a snapshot makes each listener's shelves once.
_SHELF_JSON: weakref.WeakKeyDictionary[Shelf, str] = weakref.WeakKeyDictionary()


def served_page_row(served: ServedPage) -> PageRow:
    """`page_log_rows` of a served page's impressions, the same row, made from the page as
    the policy served it: a served page never makes its `Impression` records."""
    at = _utc(served.served_at)
    rows = []
    for j, shelf, l_pos, card, p_shelf, p_card, given_earlier, impression_id in served.slots():
        shelf_part = _SHELF_JSON.get(shelf)
        if shelf_part is None:
            shelf_part = _SHELF_JSON[shelf] = _shelf_members(shelf, len(shelf.cards))
        own = _own_members(impression_id, j, l_pos, p_shelf, p_card, given_earlier)
        rows.append(f"{{{own}, {shelf_part}, {_card_members(card)}}}")
    page = _page_members(served.page_id, served.context, at, len(served.candidates),
                         served.policy_id, served.policy_version)  # fmt: skip
    return (
        served.page_id, served.context.user_id, "" if at is None else at.isoformat(), len(rows),
        f'{{{page}, "impressions": [{", ".join(rows)}]}}',
    )  # fmt: skip


def impression_records(impressions: Iterable[Impression]) -> list[dict[str, object]]:
    """Impressions as rows of the ``impressions`` table, one dict each with every column of
    ``COLUMNS`` (JSON values: times as ISO text in UTC): the live log's pages read back."""
    return [
        row for *_, page in page_log_rows(impressions) for row in page_impressions(json.loads(page))
    ]


def records_frame(records: Iterable[dict[str, object]]) -> pd.DataFrame:
    """Rows of the ``impressions`` table (as `impression_records` gives them) as a frame with
    the table's types."""
    frame = pd.DataFrame(list(records), columns=list(COLUMNS))
    for name in ("n_shelf_candidates", "n_card_candidates"):
        frame[name] = frame[name].astype("Int64")
    frame["reward"] = frame["reward"].astype("Float64")
    for name in ("served_at", "reward_at"):  # ISO text, with or without fractions of a second
        frame[name] = pd.to_datetime(frame[name], format="ISO8601")
    return frame


def impression_rows(impressions: Iterable[Impression]) -> pd.DataFrame:
    """Impressions as rows of the ``impressions`` table."""
    return records_frame(impression_records(impressions))


def log_impressions(store: Store, impressions: Iterable[Impression]) -> int:
    """Write impressions (e.g. ``page.impressions`` of a served page); returns rows written."""
    return insert_impression_frame(store, impression_rows(impressions))


def insert_impression_frame(store: Store, frame: pd.DataFrame) -> int:
    """Insert rows of the ``impressions`` table, leaving out any whose impression id is already
    stored (so absorbing the live log twice changes nothing); returns rows inserted."""
    if frame.empty:
        return 0
    store.conn.register("_new_impressions", frame)
    try:
        return store.conn.execute(
            f"INSERT INTO impressions ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
            "FROM _new_impressions n WHERE NOT EXISTS "
            "(SELECT 1 FROM impressions i WHERE i.impression_id = n.impression_id)"
        ).fetchall()[0][0]
    finally:
        store.conn.unregister("_new_impressions")


def join_rewards(
    store: Store,
    rule: SuccessRule | None = None,
    window: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> dict[str, int]:
    """Join plays back to impressions as rewards.

    An impression whose reward is unknown gets 1.0 when the same user played its card (a listen
    of that item, or a listen whose ``context_id`` is the card, e.g. a playlist) between the
    time it was served and ``window`` later, for at least the rule's threshold for the card's
    content type; ``reward_at`` is when the first such stream ended. Once the window has passed
    (by ``now``, default the current time) without one, the reward is 0.0.
    Returns counts: ``streamed`` and ``not_streamed`` set now.
    """
    rule = rule or SuccessRule()
    if window <= timedelta(0):
        raise BanditInputError(f"window: must be positive, not {window}")
    now_ts = _utc(now or datetime.now(UTC))
    seconds = window.total_seconds()
    thresholds = pd.DataFrame(
        {
            "content_type": list(rule.by_content_type),
            "threshold_ms": [rule.threshold_ms(k) for k in rule.by_content_type],
        }
    )
    conn = store.conn
    conn.register(
        "_thresholds",
        thresholds
        if not thresholds.empty
        else pd.DataFrame(
            {"content_type": pd.Series([], dtype=str), "threshold_ms": pd.Series([], dtype="int64")}
        ),
    )
    try:
        conn.execute("BEGIN TRANSACTION")
        streamed = conn.execute(
            """
            WITH pending AS (
                SELECT i.impression_id, i.user_id, i.item_id, i.served_at,
                       coalesce(t.threshold_ms, ?) AS threshold_ms
                FROM impressions i LEFT JOIN _thresholds t ON t.content_type = i.content_type
                WHERE i.reward IS NULL
            ), hits AS (
                SELECT p.impression_id, min(l.played_at) AS first_stream
                FROM pending p JOIN listens l
                  ON l.user_id = p.user_id
                 AND (l.item_id = p.item_id OR l.context_id = p.item_id)
                 AND l.played_at >= p.served_at
                 AND l.played_at <= p.served_at + to_microseconds(CAST(? * 1000000 AS BIGINT))
                 AND l.ms_played >= p.threshold_ms
                GROUP BY p.impression_id
            )
            UPDATE impressions SET reward = 1.0, reward_at = hits.first_stream
            FROM hits WHERE impressions.impression_id = hits.impression_id
            """,
            [int(round(1000 * rule.seconds)), seconds],
        ).fetchall()[0][0]
        not_streamed = conn.execute(
            """
            UPDATE impressions
               SET reward = 0.0, reward_at = served_at + to_microseconds(CAST(? * 1000000 AS BIGINT))
             WHERE reward IS NULL
               AND served_at + to_microseconds(CAST(? * 1000000 AS BIGINT)) <= ?
            """,
            [seconds, seconds, now_ts],
        ).fetchall()[0][0]
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_thresholds")
    return {"streamed": int(streamed), "not_streamed": int(not_streamed)}


def impressions_frame(
    store: Store, policy_id: str | None = None, rewarded_only: bool = True
) -> pd.DataFrame:
    """The impressions table in the logged-table format (see ``deepcuts.bandit.feedback``):
    ``item_id`` as ``action``, ``card_position`` as ``position``, context JSON as ``ctx.<name>``
    columns and card features as ``card.<name>`` columns."""
    where = []
    params: list[object] = []
    if rewarded_only:
        where.append("reward IS NOT NULL")
    if policy_id is not None:
        where.append("policy_id = ?")
        params.append(policy_id)
    sql = (
        "SELECT * FROM impressions"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY served_at, page_id, shelf_position, card_position"
    )
    cur = store.conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    frame = pd.DataFrame(cur.fetchall(), columns=names)
    if frame.empty:
        return frame.rename(columns={"item_id": "action", "card_position": "position"})
    ctx = pd.json_normalize([json.loads(x or "{}") for x in frame.pop("context")]).add_prefix(
        "ctx."
    )
    card = pd.json_normalize(
        [json.loads(x or "{}") for x in frame.pop("card_features")]
    ).add_prefix("card.")
    frame = frame.rename(columns={"item_id": "action", "card_position": "position"})
    return pd.concat([frame.reset_index(drop=True), ctx, card], axis=1)


def read_store(store: Store, policy_id: str | None = None) -> tuple[LoggedFeedback, pd.DataFrame]:
    """The store's rewarded impressions as `LoggedFeedback` (and the table it came from)."""
    frame = impressions_frame(store, policy_id)
    if frame.empty:
        raise BanditInputError(
            "impressions: the store has no impressions with rewards"
            + (f" for policy {policy_id!r}" if policy_id else "")
            + ": serve pages with `deepcuts home --user USER`; plays ingested after a page "
            "become its rewards when the listener's next page is served. Or evaluate a simulated log: "
            "`deepcuts simulate-home --out home/`, then "
            "`deepcuts ope --log home/uniform_log.parquet --policy epsilon-greedy`"
        )
    return feedback_from_frame(frame, source=f"store {store.path}"), frame


def export_impressions(
    store: Store, path: str | Path, policy_id: str | None = None, rewarded_only: bool = False
) -> int:
    """Write the impressions as a Parquet or CSV logged table; returns rows written."""
    frame = impressions_frame(store, policy_id, rewarded_only)
    write_table(frame, path)
    return len(frame)


# -- learning from the store -----------------------------------------------------------------
VectorOf = Callable[[str], "np.ndarray | None"]


def pending_impressions(store: Store) -> list[str]:
    """Ids of the impressions whose reward is not known yet."""
    rows = store.conn.execute(
        "SELECT impression_id FROM impressions WHERE reward IS NULL"
    ).fetchall()
    return [r[0] for r in rows]


def rewarded_impressions(
    store: Store,
    *,
    ids: Iterable[str] = (),
    rewarded_after: datetime | None = None,
    user_vector: VectorOf | None = None,
    card_vector: VectorOf | None = None,
) -> list[Impression]:
    """Impressions with a reward, rebuilt from the store, in the order they were served.

    Selected are those among ``ids`` and, with ``rewarded_after``, every one whose ``reward_at``
    is later than it (a watermark: rewards joined by another process are not missed). The
    table keeps features but not vectors: ``user_vector(user_id)`` and ``card_vector(item_id)``
    give them back (the same vectors that were served, when the models have not changed), so the
    reward model sees the features it scored with. Rows of one page share one `Context` and rows
    of one shelf of a page one `Shelf`, as when served.
    """
    wanted = sorted(set(ids))
    conn = store.conn
    clauses = []
    if wanted:
        conn.register("_wanted_ids", pd.DataFrame({"impression_id": pd.Series(wanted, dtype=str)}))
        clauses.append("impression_id IN (SELECT impression_id FROM _wanted_ids)")
    params: list[object] = []
    if rewarded_after is not None:
        clauses.append("reward_at > ?")
        params.append(_utc(rewarded_after))
    if not clauses:
        return []
    try:
        cur = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM impressions WHERE reward IS NOT NULL AND ("
            + " OR ".join(clauses)
            + ") ORDER BY served_at, page_id, shelf_position, card_position",
            params,
        )
        rows = cur.fetchall()
    finally:
        if wanted:
            conn.unregister("_wanted_ids")
    return _rebuild(rows, user_vector, card_vector)


def _rebuild(
    rows: list[tuple], user_vector: VectorOf | None, card_vector: VectorOf | None
) -> list[Impression]:
    col = {name: k for k, name in enumerate(COLUMNS)}
    contexts: dict[str, Context] = {}
    cards: dict[tuple[str, str], Card] = {}
    shelf_cards: dict[tuple[str, str], list[Card]] = {}
    for r in rows:
        page = r[col["page_id"]]
        if page not in contexts:
            user = r[col["user_id"]]
            contexts[page] = Context(
                user_id=user,
                hour=int(r[col["hour"]]),
                weekday=int(r[col["weekday"]]),
                device=r[col["device"]] or "unknown",
                country=r[col["country"]] or "unknown",
                user_vector=None if user_vector is None else user_vector(user),
                features=json.loads(r[col["context"]] or "{}"),
            )
        key = (r[col["item_id"]], r[col["card_features"]] or "{}")
        if key not in cards:
            cards[key] = Card(
                r[col["item_id"]],
                kind=r[col["item_kind"]] or "track",
                content_type=r[col["content_type"]] or "",
                features=json.loads(key[1]),
                vector=None if card_vector is None else card_vector(key[0]),
            )
        members = shelf_cards.setdefault((page, r[col["shelf_id"]]), [])
        if all(c.item_id != key[0] for c in members):
            members.append(cards[key])
    shelves: dict[tuple[str, str], Shelf] = {}
    out = []
    for r in rows:
        page, shelf_id = r[col["page_id"]], r[col["shelf_id"]]
        shelf = shelves.get((page, shelf_id))
        if shelf is None:
            shelf = Shelf(
                shelf_id,
                r[col["shelf_type"]] or "-",
                r[col["shelf_title"]] or shelf_id,
                tuple(shelf_cards[(page, shelf_id)]),
            )
            shelves[(page, shelf_id)] = shelf
        card = next(c for c in shelf.cards if c.item_id == r[col["item_id"]])
        out.append(
            Impression(
                page_id=page,
                context=contexts[page],
                shelf=shelf,
                card=card,
                shelf_position=int(r[col["shelf_position"]]),
                card_position=int(r[col["card_position"]]),
                shelf_propensity=float(r[col["shelf_propensity"]]),
                card_propensity=float(r[col["card_propensity"]]),
                propensity_given_earlier=float(r[col["propensity_given_earlier"]]),
                policy_id=r[col["policy_id"]],
                policy_version=r[col["policy_version"]] or "",
                served_at=r[col["served_at"]].replace(tzinfo=UTC),
                reward=float(r[col["reward"]]),
                reward_at=None
                if r[col["reward_at"]] is None
                else r[col["reward_at"]].replace(tzinfo=UTC),
                n_shelf_candidates=r[col["n_shelf_candidates"]],
                n_card_candidates=r[col["n_card_candidates"]],
                impression_id=r[col["impression_id"]],
            )
        )
    return out
