"""The publish job: turn what the store and the trained models know into a serving snapshot.

Everything a request needs is computed here, once, so that serving only reads: the catalogue's
names and vectors, every listener's taste vector and usual context, their candidate home
shelves (every shelf source run for them), the stored Discover Weekly lists, the text search
index and the home reward model. See `deepcuts.snapshots.published` for the parts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from deepcuts.index import EXACT_MAX_ITEMS, VoyagerIndex
from deepcuts.snapshots.published import PART_FILES
from deepcuts.snapshots.versions import Manifest, PartWriter, publish, snapshot_root
from deepcuts.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SHELF_CARDS = 20  # candidate cards kept per shelf
SCORE_BLOCK = 256  # listeners scored together (100 MB of scores at 100,000 items)


@dataclass(frozen=True)
class PublishReport:
    version: int
    root: Path
    users: int
    items: int
    shelves: int
    weekly_rows: int
    reward_version: int


def _parquet(frame: pd.DataFrame) -> PartWriter:
    return lambda path: frame.to_parquet(path, index=False)


def _npy(array: np.ndarray) -> PartWriter:
    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)

    return write


def _unit_rows(vectors: np.ndarray | None, n: int) -> np.ndarray:
    if vectors is None:
        return np.zeros((n, 1), np.float32)
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.where(norms > 0, norms, 1), 0).astype(np.float32)


def _names_at(names: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``names[index]`` as objects, None where the index is -1 (none; ``names`` may be empty)."""
    out = np.full(len(index), None, dtype=object)
    known = index >= 0
    out[known] = names[index[known]]
    return out


def _items_frame(store: Store, data) -> pd.DataFrame:  # data: HomeData
    cat = data.catalogue
    ids = [str(i) for i in data.interactions.items.ids]
    tracks = {r[0] for r in store.conn.execute("SELECT track_id FROM tracks").fetchall()}
    artists = {r[0] for r in store.conn.execute("SELECT artist_id FROM artists").fetchall()}
    artist_ids = _names_at(cat.artists, cat.artist)
    artist_names = _names_at(cat.artist_names, cat.artist)
    kinds = ["artist" if (i not in tracks and i in artists) else "track" for i in ids]
    # An artist item (HetRec) is its own artist, so "Best of" and radio by artist find it.
    for n, kind in enumerate(kinds):
        if kind == "artist" and artist_ids[n] is None:
            artist_ids[n], artist_names[n] = ids[n], cat.names[n]
    return pd.DataFrame(
        {
            "item_id": ids,
            "kind": kinds,
            "name": [str(x) for x in cat.names],
            "artist_id": pd.Series(artist_ids, dtype=object),
            "artist_name": pd.Series(artist_names, dtype=object),
            "album": pd.Series(_names_at(cat.album_names, cat.album), dtype=object),
            "duration_ms": pd.array(
                np.where(np.isfinite(cat.duration_ms), cat.duration_ms, np.nan)
            ).astype("Int64"),
            "location": pd.Series(cat.location, dtype=object),
            "genre": pd.Series(
                data.genres if data.genres is not None else [None] * len(ids), dtype=object
            ),
            "log_popularity": np.log1p(cat.plays).astype(np.float64),
        }
    )


def _with_cold_vectors(store: Store, item_ids: list[str], vectors: np.ndarray) -> np.ndarray:
    """Unit CF vectors, where an item has none (nobody played it) the one the registered content
    model predicts from its text and audio, when that model maps into the default CF model's
    space: so "similar", radio and the bandit's cards reach tracks nobody has played yet."""
    from deepcuts.models.parts import load_content
    from deepcuts.models.registry import default_model
    from deepcuts.signals.ids import IdMap

    found, cf = load_content(store), default_model(store)
    if found is None or cf is None or found[1].params.get("cf_model") != cf.model_id:
        return vectors
    content = found[0]
    if content.predicted_.shape[1] != vectors.shape[1]:
        return vectors
    rows = IdMap(content.items_).indices(item_ids)
    missing = ~np.any(vectors != 0, axis=1) & (rows >= 0)
    predicted = content.predicted_[rows[missing]]
    vectors = vectors.copy()
    vectors[missing] = _unit_rows(predicted, len(predicted))
    log.info(
        "%d items nobody played get their CF vector predicted from content",
        int(np.any(predicted != 0, axis=1).sum()),
    )
    return vectors


def _weekly_frames(store: Store, item_index: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    weekly = store.conn.execute(
        "SELECT user_id, week, position, item_id, reason, score, source FROM weekly_lists "
        "ORDER BY user_id, week, position"
    ).df()
    weekly["item"] = weekly["item_id"].map(item_index)
    missing = weekly["item"].isna()
    if missing.any():  # tracks the catalogue no longer has: the list keeps the others
        log.warning(
            "%d weekly tracks are not in the catalogue and are left out", int(missing.sum())
        )
    weekly = weekly[~missing].copy()
    weekly["item"] = weekly["item"].astype(np.int32)
    weekly = weekly.drop(columns=["item_id"])
    notes = store.conn.execute("SELECT user_id, week, note FROM weekly_notes").df()
    return weekly, notes


def _text_parts(store: Store, item_ids: list[str]) -> dict[str, tuple[str, PartWriter]]:
    from deepcuts.models.text.documents import load_item_texts
    from deepcuts.models.text.tfidf import TfidfEncoder

    texts = load_item_texts(store, item_ids)
    terms = texts.terms()
    try:
        encoder = TfidfEncoder().fit(terms)
        matrix = sp.csr_matrix(encoder.transform(terms), dtype=np.float32)
    except ValueError:  # nothing written about any item: search finds nothing
        encoder = TfidfEncoder().fit([["_"]])
        matrix = sp.csr_matrix((len(item_ids), 1), dtype=np.float32)
    return {
        "text_encoder": (PART_FILES["text_encoder"], encoder.save),
        "text_matrix": (PART_FILES["text_matrix"], lambda p: sp.save_npz(p, matrix)),
    }


def _users_and_shelves(
    data, progress: Progress | None
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    from deepcuts.surfaces.home import candidate_shelves, user_context

    item_index = data.interactions.items
    users = [str(u) for u in data.interactions.users.ids]
    data.history.prefetch()  # every listener's history in a few queries, not a few per listener
    rows: list[dict[str, object]] = []
    vectors: list[np.ndarray | None] = []
    shelf_rows: dict[str, list] = {k: [] for k in ("user", "shelf", "shelf_id", "shelf_type", "title", "rank", "item")}  # fmt: skip
    for u, user_id in enumerate(users):
        if u % SCORE_BLOCK == 0:
            data.score_listeners(range(u, min(u + SCORE_BLOCK, len(users))))
        context = user_context(data, user_id)
        f = context.features
        rows.append(
            {
                "user_id": user_id,
                "device": context.device,
                "country": context.country,
                "session_genre": f.get("session_genre"),
                "session_plays": int(f.get("session_plays", 0) or 0),
            }
        )
        vectors.append(context.user_vector)
        for s, shelf in enumerate(candidate_shelves(data, context, SHELF_CARDS)):
            for rank, card in enumerate(shelf.cards):
                shelf_rows["user"].append(u)
                shelf_rows["shelf"].append(s)
                shelf_rows["shelf_id"].append(shelf.shelf_id)
                shelf_rows["shelf_type"].append(shelf.shelf_type)
                shelf_rows["title"].append(shelf.title)
                shelf_rows["rank"].append(rank)
                shelf_rows["item"].append(item_index.get(card.item_id))
        if progress is not None and (u % 50 == 49 or u == len(users) - 1):
            progress("home shelves", u + 1, len(users))
    d = next((len(v) for v in vectors if v is not None), 1)
    user_vectors = np.zeros((len(users), d), np.float32)
    for u, v in enumerate(vectors):
        if v is not None:
            user_vectors[u] = v
    shelves = pd.DataFrame(shelf_rows)
    shelves = shelves.astype(
        {"user": np.int32, "shelf": np.int16, "rank": np.int16, "item": np.int32}
    )
    return pd.DataFrame(rows), user_vectors, shelves


def _continuation_parts(store: Store, say: Progress) -> dict[str, tuple[str, PartWriter]]:
    """The playlist continuation model and the playlists it continues, where the store has
    playlists with tracks (fitted once per playlists and catalogue: kept beside the store)."""
    from deepcuts.surfaces.continuation import ContinuationError, prepare_continuation

    say("playlist continuation", 0, 1)
    try:
        # TF-IDF titles: the service answers without loading a sentence model per worker.
        continuer = prepare_continuation(store, minilm=False)
    except ContinuationError:
        return {}
    data = continuer.data
    playlists = pd.DataFrame({
        "playlist_id": [str(p) for p in data.playlists.ids],
        "title": data.titles,
        "items": [s.astype(np.int32) for s in data.sequences],
    })  # fmt: skip
    items = pd.DataFrame({
        "item_id": [str(i) for i in data.items.ids], "name": data.item_names, "artist": data.item_artists,
        "uri": [continuer.uris.get(str(i)) for i in data.items.ids],
    })  # fmt: skip
    return {
        "continuation": (
            PART_FILES["continuation"],
            lambda path: continuer.model.save(path, items=data.items),
        ),
        "continuation_playlists": (PART_FILES["continuation_playlists"], _parquet(playlists)),
        "continuation_items": (PART_FILES["continuation_items"], _parquet(items)),
    }


def bandit_part(bandit) -> tuple[str, PartWriter]:  # bandit: HomeBandit
    """The home screen's models (`HomeBandit`: the reward model with its learning version and
    watermark, and the models of policies that keep their own) as a snapshot part."""
    return PART_FILES["reward"], lambda path: bandit.save(path)


def ann_parts(
    vectors: np.ndarray, exact_max_items: int, say: Progress
) -> dict[str, tuple[str, PartWriter]]:
    """The nearest-neighbour index of the items that have a vector, as a snapshot part, where
    there are more than ``exact_max_items`` of them: `Published.similar` answers "similar" and
    radio from it (without one, it searches exactly)."""
    rows = np.flatnonzero(np.any(vectors != 0, axis=1))
    if len(rows) <= exact_max_items:
        return {}

    def write(path: Path) -> None:
        say(f"nearest-neighbour index of {len(rows):,} items", 0, 1)
        VoyagerIndex(vectors, rows=rows).save(path)

    return {"item_ann": (PART_FILES["item_ann"], write)}


def run(
    store: Store,
    *,
    progress: Progress | None = None,
    exact_max_items: int = EXACT_MAX_ITEMS,
) -> PublishReport:
    """Publish a new snapshot version of ``store`` and make it current; the item vectors get a
    nearest-neighbour index where more than ``exact_max_items`` items have one."""
    from deepcuts.models.registry import default_model
    from deepcuts.surfaces.home import HomeBandit, HomeData

    say = progress or (lambda *_: None)
    say("loading the model and the listening data", 0, 1)
    data = HomeData.load(store)
    items = _items_frame(store, data)
    item_index = {i: n for n, i in enumerate(items["item_id"])}
    users, user_vectors, shelves = _users_and_shelves(data, progress)
    say("weekly lists and text index", 0, 1)
    weekly, notes = _weekly_frames(store, item_index)
    bandit = HomeBandit.load(store)
    item_vectors = _with_cold_vectors(
        store, list(items["item_id"]), _unit_rows(data.item_vectors, len(items))
    )
    parts = {
        "items": (PART_FILES["items"], _parquet(items)),
        "item_vectors": (PART_FILES["item_vectors"], _npy(item_vectors)),
        **ann_parts(item_vectors, exact_max_items, say),
        "users": (PART_FILES["users"], _parquet(users)),
        "user_vectors": (PART_FILES["user_vectors"], _npy(user_vectors)),
        "shelves": (PART_FILES["shelves"], _parquet(shelves)),
        "weekly": (PART_FILES["weekly"], _parquet(weekly)),
        "weekly_notes": (PART_FILES["weekly_notes"], _parquet(notes)),
        **_text_parts(store, list(items["item_id"])),
        "reward": bandit_part(bandit),
        **_continuation_parts(store, say),
    }
    record = default_model(store)
    meta = {
        "store": str(Path(store.path).resolve()),
        "model_id": getattr(record, "model_id", None),
        "data_until": None if data.interactions.now is None else data.interactions.now.isoformat(),
        "reward_version": bandit.version,
        "published_by": "publish",
        "published_at": datetime.now(UTC).isoformat(),
    }
    manifest = publish(snapshot_root(store.path), parts, meta)
    say("published", 1, 1)
    return _summary(manifest, store, len(users), len(items), shelves, weekly, bandit.version)


def _summary(manifest: Manifest, store: Store, users: int, items: int, shelves: pd.DataFrame,
             weekly: pd.DataFrame, reward_version: int) -> PublishReport:  # fmt: skip
    n_shelves = int(shelves.groupby(["user", "shelf"]).ngroups) if len(shelves) else 0
    return PublishReport(manifest.version, snapshot_root(store.path), users, items, n_shelves,
                     len(weekly), reward_version)  # fmt: skip
