"""Logged feedback as a table: the columnar form of impressions that estimators read.

`LoggedFeedback` holds one row per shown card: which page and shelf it was on, the action
(card id), its shelf and card positions, the reward and the logging propensity, plus the
context features and card features needed to replay a target policy. It is built from
`Impression` records (`from_impressions`), from the store (``impressions.read_store``) or from
a Parquet or CSV file (`read_logged_table`), so logs from elsewhere can be evaluated.

The table format (column names; only the first four are required):

``action``, ``position``, ``reward``, ``propensity``
    the card shown, its 0-based position (within its shelf), the reward (e.g. 1 for a stream of
    30 s or more) and the probability with which the logging policy showed that card at that
    position (marginal over its other choices; see ``deepcuts.bandit.types``).
``page_id`` (or ``slate_id``)
    rows served together; default: each row is its own page. Confidence intervals treat a
    page as one independent unit.
``shelf_id``, ``shelf_position``, ``shelf_type``, ``shelf_title``, ``item_kind``
    the shelf a card was on (default: one shelf ``-`` at position 0) and card metadata.
``user_id``, ``hour``, ``weekday``, ``device``, ``country``, ``ctx.<name>``
    context features; ``card.<name>``: card features. Any other column not named as a target
    column is taken as a context feature.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deepcuts.bandit.types import CARD_KINDS, BanditInputError, Card, Context, Impression, Shelf
from deepcuts.io.errors import FormatError

REQUIRED = ("action", "position", "reward", "propensity")
CONTEXT_BASE = ("user_id", "hour", "weekday", "device", "country")
STRUCTURE = ("page_id", "shelf_id", "shelf_position", "shelf_type", "shelf_title", "item_kind")
META = (
    "impression_id",
    "served_at",
    "policy_id",
    "policy_version",
    "shelf_propensity",
    "card_propensity",
    "propensity_given_earlier",
    "reward_at",
    "n_shelf_candidates",
    "n_card_candidates",
    "content_type",
)


def _finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise BanditInputError(f"{name}: row {bad} is missing or not finite")


@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """Logged bandit feedback, one row per shown card (arrays of shape (n,)).

    Parameters
    ----------
    action : card id shown.
    position : 0-based card position within its shelf.
    reward : observed reward (finite).
    propensity : P(logging policy showed this card at this slot), in (0, 1].
    page : page (slate) id; rows of a page share a context and are one unit for intervals.
    shelf : shelf id; shelf_position : 0-based shelf position.
    shelf_type, shelf_title, item_kind : metadata to rebuild shelves and cards.
    n_shelf_candidates, n_card_candidates : how many shelves, and cards of that shelf, the
        logging policy chose from (optional; tells whether pages can be replayed exactly).
    context : DataFrame (n rows) of context features; card_features : DataFrame of card features.
    candidates : cards a page could have shown but did not, one row each, with columns
        ``page_id``, ``action`` and optionally ``shelf_id``, ``shelf_type``, ``shelf_title``,
        ``item_kind`` and ``card.<name>``; with them a page's candidates are known exactly.
    """

    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    page: np.ndarray | None = None
    shelf: np.ndarray | None = None
    shelf_position: np.ndarray | None = None
    shelf_type: np.ndarray | None = None
    shelf_title: np.ndarray | None = None
    item_kind: np.ndarray | None = None
    n_shelf_candidates: np.ndarray | None = None
    n_card_candidates: np.ndarray | None = None
    context: pd.DataFrame = field(default_factory=pd.DataFrame)
    card_features: pd.DataFrame = field(default_factory=pd.DataFrame)
    candidates: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        n = len(np.asarray(self.action))
        if n == 0:
            raise BanditInputError("action: the log has no rows")
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("action", np.asarray(self.action).astype(str))
        for name in ("position", "reward", "propensity"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n,):
                raise BanditInputError(
                    f"{name}: has shape {arr.shape}, expected ({n},) like action"
                )
        try:
            reward = np.asarray(self.reward, dtype=np.float64)
            propensity = np.asarray(self.propensity, dtype=np.float64)
            position_f = np.asarray(self.position, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BanditInputError(f"reward/propensity/position: not numeric ({exc})") from exc
        _finite("reward", reward)
        _finite("propensity", propensity)
        _finite("position", position_f)
        if np.any((propensity <= 0) | (propensity > 1 + 1e-9)):
            bad = int(np.flatnonzero((propensity <= 0) | (propensity > 1 + 1e-9))[0])
            raise BanditInputError(
                f"propensity: row {bad} is {propensity[bad]!r}, must be in (0, 1]"
            )
        if np.any(position_f < 0) or np.any(position_f != np.round(position_f)):
            raise BanditInputError("position: must be non-negative integers")
        set_("reward", reward)
        set_("propensity", propensity)
        set_("position", position_f.astype(np.int64))
        defaults = {
            "page": np.arange(n).astype(str),
            "shelf": np.full(n, "-"),
            "shelf_position": np.zeros(n, dtype=np.int64),
            "shelf_type": None,
            "shelf_title": None,
            "item_kind": np.full(n, "track"),
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            if value is None:
                value = default
                if name == "shelf_type":
                    value = np.asarray(
                        self.shelf if self.shelf is not None else np.full(n, "-")
                    ).astype(str)
                if name == "shelf_title":
                    value = np.asarray(
                        self.shelf if self.shelf is not None else np.full(n, "-")
                    ).astype(str)
            arr = np.asarray(value)
            if arr.shape != (n,):
                raise BanditInputError(
                    f"{name}: has shape {arr.shape}, expected ({n},) like action"
                )
            if name == "shelf_position":
                sp = np.asarray(arr, dtype=np.float64)
                _finite(name, sp)
                if np.any(sp < 0) or np.any(sp != np.round(sp)):
                    raise BanditInputError("shelf_position: must be non-negative integers")
                arr = sp.astype(np.int64)
            else:
                arr = arr.astype(str)
            set_(name, arr)
        for name in ("n_shelf_candidates", "n_card_candidates"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != (n,):
                raise BanditInputError(
                    f"{name}: has shape {arr.shape}, expected ({n},) like action"
                )
            if np.all(np.isnan(arr)):
                set_(name, None)
                continue
            if np.any(np.isnan(arr)) or np.any(arr < 1) or np.any(arr != np.round(arr)):
                raise BanditInputError(f"{name}: must be positive integers")
            set_(name, arr.astype(np.int64))
        bad_kind = set(np.unique(self.item_kind)) - set(CARD_KINDS)
        if bad_kind:
            raise BanditInputError(
                f"item_kind: unknown kinds {sorted(bad_kind)}; use {', '.join(CARD_KINDS)}"
            )
        for name in ("context", "card_features"):
            frame = getattr(self, name)
            if not isinstance(frame, pd.DataFrame):
                raise BanditInputError(f"{name}: must be a pandas DataFrame")
            if len(frame.columns) and len(frame) != n:
                raise BanditInputError(f"{name}: has {len(frame)} rows, the log has {n}")
            set_(name, frame.reset_index(drop=True))
        if self.candidates is not None:
            if not isinstance(self.candidates, pd.DataFrame):
                raise BanditInputError("candidates: must be a pandas DataFrame")
            missing = {"page_id", "action"} - set(self.candidates.columns)
            if missing:
                raise BanditInputError(
                    f"candidates: missing column(s) {', '.join(sorted(missing))}"
                )
            if self.candidates.empty:
                set_("candidates", None)
        # a slot holds one card: (page, shelf, position) must be unique
        key = pd.DataFrame({"p": self.page, "s": self.shelf, "k": self.position})
        if key.duplicated().any():
            i = int(np.flatnonzero(key.duplicated().to_numpy())[0])
            raise BanditInputError(
                f"position: row {i} repeats page {self.page[i]!r}, shelf {self.shelf[i]!r}, position {self.position[i]}"
            )

    def __len__(self) -> int:
        return len(self.action)

    @property
    def n_pages(self) -> int:
        return len(np.unique(self.page))

    def take(self, rows: np.ndarray) -> LoggedFeedback:
        rows = np.asarray(rows)
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return LoggedFeedback(
            action=self.action[rows],
            position=self.position[rows],
            reward=self.reward[rows],
            propensity=self.propensity[rows],
            page=pick(self.page),
            shelf=pick(self.shelf),
            shelf_position=pick(self.shelf_position),
            shelf_type=pick(self.shelf_type),
            shelf_title=pick(self.shelf_title),
            item_kind=pick(self.item_kind),
            n_shelf_candidates=pick(self.n_shelf_candidates),
            n_card_candidates=pick(self.n_card_candidates),
            context=self.context.iloc[rows] if len(self.context.columns) else pd.DataFrame(),
            card_features=self.card_features.iloc[rows]
            if len(self.card_features.columns)
            else pd.DataFrame(),
            candidates=self.candidates,
        )

    # -- rebuilding the objects policies take -----------------------------------------------
    def context_of(self, row: int) -> Context:
        values = self.context.iloc[row].to_dict() if len(self.context.columns) else {}
        return context_from_values(values)

    def card_of(self, row: int) -> Card:
        feats = {}
        if len(self.card_features.columns):
            for k, v in self.card_features.iloc[row].items():
                if _present(v):
                    feats[str(k)] = _py(v)
        return Card(str(self.action[row]), kind=str(self.item_kind[row]), features=feats)

    def to_frame(self) -> pd.DataFrame:
        """The log in the table format (see the module docstring)."""
        df = pd.DataFrame(
            {
                "page_id": self.page,
                "shelf_id": self.shelf,
                "shelf_position": self.shelf_position,
                "shelf_type": self.shelf_type,
                "shelf_title": self.shelf_title,
                "action": self.action,
                "item_kind": self.item_kind,
                "position": self.position,
                "reward": self.reward,
                "propensity": self.propensity,
            }
        )
        for name in ("n_shelf_candidates", "n_card_candidates"):
            if getattr(self, name) is not None:
                df[name] = getattr(self, name)
        parts = [df]
        if len(self.context.columns):
            parts.append(self.context)
        if len(self.card_features.columns):
            parts.append(self.card_features.add_prefix("card."))
        frame = pd.concat(parts, axis=1)
        if self.candidates is not None:
            frame = pd.concat([frame, self.candidates], ignore_index=True)
        return frame


def _present(v: object) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and math.isnan(v):
        return False
    return not (v is pd.NA or v is pd.NaT)


def _py(v: object) -> str | int | float | bool:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool | int | float | str):
        return v
    return str(v)


def context_from_values(values: dict) -> Context:
    """A `Context` from a row's context columns (``ctx.`` prefixes are dropped)."""
    feats: dict[str, str | int | float | bool] = {}
    base: dict[str, object] = {}
    for k, v in values.items():
        if not _present(v):
            continue
        if k in CONTEXT_BASE:
            base[k] = _py(v)
        else:
            feats[k[4:] if k.startswith("ctx.") else k] = _py(v)
    try:
        return Context(
            user_id=str(base.get("user_id", "anonymous")),
            hour=int(base.get("hour", 12)),  # type: ignore[call-overload]
            weekday=int(base.get("weekday", 0)),  # type: ignore[call-overload]
            device=str(base.get("device", "unknown")),
            country=str(base.get("country", "unknown")),
            features=feats,
        )
    except (TypeError, ValueError) as exc:
        raise BanditInputError(f"context: cannot read context columns {values!r} ({exc})") from exc


def from_impressions(impressions: Iterable[Impression]) -> LoggedFeedback:
    """Impressions with rewards as a `LoggedFeedback` (impressions without a reward are left out)."""
    rows = [im for im in impressions if im.reward is not None]
    if not rows:
        raise BanditInputError("impressions: none has a reward yet")
    ctx = pd.DataFrame([context_columns(im.context) for im in rows])
    cards = pd.DataFrame([dict(im.card.features) for im in rows])
    return LoggedFeedback(
        action=np.array([im.card.item_id for im in rows]),
        position=np.array([im.card_position for im in rows]),
        reward=np.array([float(im.reward) for im in rows]),  # type: ignore[arg-type]
        propensity=np.array([im.propensity for im in rows]),
        page=np.array([im.page_id for im in rows]),
        shelf=np.array([im.shelf.shelf_id for im in rows]),
        shelf_position=np.array([im.shelf_position for im in rows]),
        shelf_type=np.array([im.shelf.shelf_type for im in rows]),
        shelf_title=np.array([im.shelf.title for im in rows]),
        item_kind=np.array([im.card.kind for im in rows]),
        n_shelf_candidates=None
        if any(im.n_shelf_candidates is None for im in rows)
        else np.array([im.n_shelf_candidates for im in rows]),
        n_card_candidates=None
        if any(im.n_card_candidates is None for im in rows)
        else np.array([im.n_card_candidates for im in rows]),
        context=ctx,
        card_features=cards,
    )


def context_columns(context: Context) -> dict[str, object]:
    """A context as table columns: the five base columns and ``ctx.<name>`` for the rest."""
    out: dict[str, object] = {
        "user_id": context.user_id,
        "hour": context.hour,
        "weekday": context.weekday,
        "device": context.device,
        "country": context.country,
    }
    out.update({f"ctx.{k}": v for k, v in context.features.items()})
    return out


# -- files ----------------------------------------------------------------------------------
def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file as a DataFrame (by suffix; ``.csv``, ``.tsv`` or Parquet)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pq.read_table(path).to_pandas()
    except (
        pa.ArrowException,
        pd.errors.ParserError,
        UnicodeDecodeError,
        ValueError,
        OSError,
    ) as exc:
        raise FormatError(f"{path}: cannot read as {suffix[1:]} ({exc})") from exc
    raise FormatError(f"{path}: unknown log format {suffix!r}; use .parquet or .csv")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as Parquet or CSV, by the path's suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    else:
        raise BanditInputError(f"path: unknown format {suffix!r}; use .parquet or .csv")
    return path


@dataclass(frozen=True)
class LogColumns:
    """Which columns of a logged table hold what (names as in the module docstring)."""

    action: str = "action"
    position: str = "position"
    reward: str = "reward"
    propensity: str = "propensity"
    page: str | None = None  # default: page_id, else slate_id, else none
    context: Sequence[str] | None = None  # default: every column not otherwise used
    exclude: Sequence[str] = ()  # e.g. target columns


def feedback_from_frame(
    frame: pd.DataFrame, columns: LogColumns | None = None, source: str = "log"
) -> LoggedFeedback:
    """Turn a logged table into `LoggedFeedback`; a missing required column is a FormatError."""
    c = columns or LogColumns()
    missing = [
        name for name in (c.action, c.position, c.reward, c.propensity) if name not in frame.columns
    ]
    if missing:
        raise FormatError(
            f"{source}: missing column(s) {', '.join(missing)}; a log needs action, position, reward "
            f"and propensity columns (see `deepcuts ope --help`)"
        )
    page_col = c.page or next((n for n in ("page_id", "slate_id") if n in frame.columns), None)
    if c.page and c.page not in frame.columns:
        raise FormatError(f"{source}: no page column {c.page!r}")
    unshown = frame[c.position].isna().to_numpy()
    candidate_rows = None
    if unshown.any():
        if page_col is None:
            raise FormatError(
                f"{source}: rows without a position (candidates not shown) need a page_id column"
            )
        cand = frame[unshown]
        keep = [
            k
            for k in cand.columns
            if k in ("shelf_id", "shelf_type", "shelf_title", "item_kind")
            or (isinstance(k, str) and k.startswith("card."))
        ]
        candidate_rows = cand[keep].copy()
        candidate_rows.insert(0, "action", cand[c.action].astype(str).to_numpy())
        candidate_rows.insert(0, "page_id", cand[page_col].astype(str).to_numpy())
        candidate_rows = candidate_rows.reset_index(drop=True)
        frame = frame[~unshown].reset_index(drop=True)
        if frame.empty:
            raise FormatError(f"{source}: no row has a position (nothing was shown)")
    used = {c.action, c.position, c.reward, c.propensity, page_col, *STRUCTURE, *META, *c.exclude}
    card_cols = [k for k in frame.columns if isinstance(k, str) and k.startswith("card.")]
    if c.context is not None:
        unknown = [k for k in c.context if k not in frame.columns]
        if unknown:
            raise FormatError(f"{source}: no context column(s) {', '.join(unknown)}")
        ctx_cols = list(c.context)
    else:
        ctx_cols = [k for k in frame.columns if k not in used and k not in card_cols]

    def col(name: str) -> np.ndarray | None:
        return frame[name].to_numpy() if name in frame.columns else None

    def numeric(name: str) -> np.ndarray:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        if np.any(np.isnan(values)):
            bad = int(np.flatnonzero(np.isnan(values))[0])
            raise FormatError(
                f"{source}: column {name!r} row {bad} is missing or not a number ({frame[name].iloc[bad]!r})"
            )
        return values

    try:
        return LoggedFeedback(
            action=frame[c.action].astype(str).to_numpy(),
            position=numeric(c.position),
            reward=numeric(c.reward),
            propensity=numeric(c.propensity),
            page=None if page_col is None else frame[page_col].astype(str).to_numpy(),
            shelf=col("shelf_id"),
            shelf_position=None
            if "shelf_id" not in frame.columns and "shelf_position" not in frame.columns
            else (numeric("shelf_position") if "shelf_position" in frame.columns else None),
            shelf_type=col("shelf_type"),
            shelf_title=col("shelf_title"),
            item_kind=col("item_kind"),
            n_shelf_candidates=col("n_shelf_candidates"),
            n_card_candidates=col("n_card_candidates"),
            context=frame[ctx_cols].copy() if ctx_cols else pd.DataFrame(),
            card_features=frame[card_cols].rename(columns=lambda k: k[5:])
            if card_cols
            else pd.DataFrame(),
            candidates=candidate_rows,
        )
    except BanditInputError as exc:
        raise FormatError(f"{source}: {exc}") from exc


def read_logged_table(
    path: str | Path, columns: LogColumns | None = None
) -> tuple[LoggedFeedback, pd.DataFrame]:
    """Read a Parquet or CSV log: the feedback and the raw table (for target columns)."""
    frame = read_table(path)
    return feedback_from_frame(frame, columns, source=str(path)), frame


def _records(frame: pd.DataFrame, n: int) -> list[dict]:
    return frame.to_dict("records") if len(frame.columns) else [{} for _ in range(n)]


def _card(action: str, kind: str, features: dict, cache: dict[str, Card]) -> Card:
    card = cache.get(action)
    if card is None:
        feats = {str(k): _py(v) for k, v in features.items() if _present(v)}
        card = Card(str(action), kind=str(kind) if _present(kind) else "track", features=feats)
        cache[action] = card
    return card


def rebuild_pages(
    log: LoggedFeedback, candidates: str = "page"
) -> list[tuple[Context, list[Shelf], np.ndarray, np.ndarray, np.ndarray]]:
    """Rebuild each page's context and candidate shelves from the log.

    ``candidates="page"``: a shelf's candidates are the cards logged on it in that page, shown
    or listed as not shown (exact when every candidate is logged); ``"all"``: every card ever
    logged on a shelf with that id (a fixed action set, as in logs where each round shows a few
    of a known set of items). A card's features are those of its first row.

    Returns, per page: (context, candidate shelves, the page's row indices, each row's shelf
    index into the candidate list, each row's card index into that shelf's cards).
    """
    if candidates not in ("page", "all"):
        raise BanditInputError(f"candidates: must be 'page' or 'all', not {candidates!r}")
    n = len(log)
    ctx = _records(log.context, n)
    feats = _records(log.card_features, n)
    cache: dict[str, Card] = {}
    # (page, shelf, type, title, card) of every candidate: shown rows first, then the others
    entries: list[tuple[str, str, str, str, Card]] = [
        (
            log.page[i],
            log.shelf[i],
            log.shelf_type[i],
            log.shelf_title[i],
            _card(log.action[i], log.item_kind[i], feats[i], cache),
        )
        for i in range(n)
    ]
    if log.candidates is not None:
        cand = log.candidates
        card_cols = [k for k in cand.columns if isinstance(k, str) and k.startswith("card.")]
        crec = _records(cand[card_cols].rename(columns=lambda k: k[5:]), len(cand))

        def col(name: str, default: np.ndarray) -> np.ndarray:
            return cand[name].astype(str).to_numpy() if name in cand.columns else default

        shelf = col("shelf_id", np.full(len(cand), "-"))
        kind = col("item_kind", np.full(len(cand), "track"))
        stype, title = col("shelf_type", shelf), col("shelf_title", shelf)
        pages_c, actions = col("page_id", shelf), col("action", shelf)
        entries += [
            (pages_c[k], shelf[k], stype[k], title[k], _card(actions[k], kind[k], crec[k], cache))
            for k in range(len(cand))
        ]
    spec: dict[str, dict[str, tuple[str, str, dict[str, Card]]]] = {}
    for page, shelf_id, stype_, title_, card in entries:
        shelves_of = spec.setdefault(page if candidates == "page" else "", {})
        if shelf_id not in shelves_of:
            shelves_of[shelf_id] = (stype_, title_, {})
        shelves_of[shelf_id][2].setdefault(card.item_id, card)
    built: dict[str, tuple[list[Shelf], dict[str, int], list[dict[str, int]]]] = {}

    def shelves_for(key: str) -> tuple[list[Shelf], dict[str, int], list[dict[str, int]]]:
        hit = built.get(key)
        if hit is None:
            shelves = [
                Shelf(sid, t or "-", ti or sid, tuple(cards.values()))
                for sid, (t, ti, cards) in spec[key].items()
            ]
            hit = (
                shelves,
                {s.shelf_id: k for k, s in enumerate(shelves)},
                [{c.item_id: j for j, c in enumerate(s.cards)} for s in shelves],
            )
            built[key] = hit
        return hit

    codes = pd.factorize(log.page)[0]  # pages in order of first appearance
    order = np.argsort(codes, kind="stable")
    out = []
    for rows in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        seen = set()
        for i in rows:
            slot = (log.shelf[i], log.action[i])
            if slot in seen:
                raise BanditInputError(
                    f"action: card {log.action[i]!r} appears twice on shelf {log.shelf[i]!r} of page {log.page[i]!r}"
                )
            seen.add(slot)
        shelves, index, card_index = shelves_for(log.page[rows[0]] if candidates == "page" else "")
        shelf_idx = np.array([index[log.shelf[i]] for i in rows])
        card_idx = np.array(
            [card_index[s][log.action[i]] for s, i in zip(shelf_idx, rows, strict=True)]
        )
        out.append((context_from_values(ctx[int(rows[0])]), shelves, rows, shelf_idx, card_idx))
    return out
