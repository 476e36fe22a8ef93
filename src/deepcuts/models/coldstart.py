"""Cold start: collaborative-filtering vectors for items nobody has played, from text and audio.

The mapping from content into the CF space is learnt on items that have plays (their CF
vectors are the targets) and applied to items that have none, so that a new track can be
scored against every listener like any other (and fill a "fresh finds" shelf).

- `ContentToCF`: ridge regression from one modality's features (TF-IDF rows, MiniLM embeddings,
  audio summaries; sparse or dense) to CF item vectors.
- `NeighbourToCF`: the mean CF vector of the most similar warm items, by one view or several
  (text and audio together: the hybrid).
- `ColdStartRecommender`: a CF model's user and item vectors, with the vectors of cold items
  predicted from each modality they have and averaged (the hybrid).
- `ItemSimilarity`: similar items by CF, text, audio or all three, for `deepcuts similar`.

A modality predicts either the CF vector itself (its norm then carries the item's expected
popularity) or, as in van den Oord et al. (2013), its unit-normalised direction; unit
predictions are scaled to the mean norm of the warm items before modalities are averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender, top_n
from deepcuts.signals.ids import IdMap
from deepcuts.store import Store

MIN_STREAM_MS = 30_000  # a stream shorter than this is a skip, not a play


def play_matrix(store: Store) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(user ids, item ids, users x items log(1 + plays)) from the listens table.

    A play is a listen of at least 30 s (or of unknown length) not marked skipped; a play-count
    row counts ``play_count`` times. (A stand-in for the signals layer's confidence matrix.)
    """
    rows = store.conn.execute(
        f"""
        SELECT user_id, item_id, sum(coalesce(play_count, 1)) AS plays FROM listens
        WHERE (ms_played IS NULL OR ms_played >= {MIN_STREAM_MS}) AND NOT coalesce(skipped, false)
        GROUP BY user_id, item_id ORDER BY user_id, item_id
        """
    ).fetchall()
    if not rows:
        raise ValueError("the store has no plays to evaluate on")
    users, items, counts = zip(*rows, strict=True)
    user_ids, u = np.unique(np.array(users), return_inverse=True)
    item_ids, i = np.unique(np.array(items), return_inverse=True)
    matrix = sp.csr_matrix(
        (np.log1p(np.array(counts, np.float64)).astype(np.float32), (u, i)),
        shape=(len(user_ids), len(item_ids)),
    )
    return user_ids, item_ids, matrix


def fit_item_factors(
    train: sp.csr_matrix,
    factors: int,
    iterations: int,
    regularization: float,
    confidence: float,
    seed: int,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors of the project's ALS (`deepcuts.models.cf.ALS`) fitted on
    ``train`` with ``alpha = confidence``; float32 (n_users, factors), (n_items, factors)."""
    from threadpoolctl import threadpool_limits

    from deepcuts.models.cf import ALS

    with threadpool_limits(1):
        als = ALS(
            factors=factors,
            regularization=regularization,
            alpha=confidence,
            iterations=iterations,
            random_state=seed,
            num_threads=max(1, threads),
        ).fit(sp.csr_matrix(train, dtype=np.float32))
    return np.asarray(als.user_factors_, np.float32), np.asarray(als.item_factors_, np.float32)


class ContentToCF:
    """Ridge regression from content features to CF vectors.

    Parameters
    ----------
    alpha : L2 penalty.
    unit_targets : learn the direction of each CF vector (unit rows) instead of the vector.

    Attributes (after `fit`)
    ------------------------
    coef_ : float32 (n_features, d); intercept_ : float32 (d,).

    Example
    -------
    >>> mapping = ContentToCF(alpha=1.0).fit(text_rows[warm], item_factors[warm])  # doctest: +SKIP
    >>> predicted = mapping.predict(text_rows[cold])                                # (n_cold, d)
    """

    def __init__(self, alpha: float = 1.0, unit_targets: bool = False):
        self.alpha = alpha
        self.unit_targets = unit_targets

    def fit(self, features, targets: np.ndarray) -> ContentToCF:
        from sklearn.linear_model import Ridge

        targets = np.asarray(targets, np.float64)
        if features.shape[0] != targets.shape[0]:
            raise ValueError(f"{features.shape[0]} feature rows for {targets.shape[0]} target rows")
        if self.alpha < 0:
            raise ValueError(f"alpha must be non-negative, not {self.alpha}")
        if self.unit_targets:
            norms = np.linalg.norm(targets, axis=1, keepdims=True)
            targets = targets / np.where(norms > 0, norms, 1.0)
        solver = "sparse_cg" if sp.issparse(features) else "auto"
        ridge = Ridge(alpha=self.alpha, fit_intercept=True, solver=solver).fit(features, targets)
        self.coef_ = np.asarray(ridge.coef_.T, np.float32)
        self.intercept_ = np.asarray(ridge.intercept_, np.float32)
        return self

    def predict(self, features) -> np.ndarray:
        """float32 (n, d)."""
        out = features @ self.coef_
        return np.asarray(out, np.float32) + self.intercept_


class NeighbourToCF:
    """k-nearest-neighbour regression from content to CF vectors.

    A query item's vector is the weighted mean of the CF vectors of its ``k`` most similar
    warm items, weights ``max(similarity, 0) ** power``. Similarity is the mean, over the
    views given, of the dot products of their rows (so unit rows give the mean cosine): with
    a text view and an audio view, neighbours must be alike in words and in sound.

    Where a linear map blurs an item's identity (a new track of a known artist reads almost
    like the artist's other tracks), neighbours keep it.

    Parameters
    ----------
    k : neighbours. power : sharpening of the weights. weights : one per view (equal by
    default): the similarity is their weighted mean. chunk : query rows per block.
    """

    def __init__(
        self,
        k: int = 30,
        power: float = 4.0,
        weights: tuple[float, ...] | None = None,
        chunk: int = 512,
    ):
        self.k = k
        self.power = power
        self.weights = weights
        self.chunk = chunk

    def fit(self, views: list, targets: np.ndarray) -> NeighbourToCF:
        """``views``: one (n_warm, d_v) matrix per view (dense or sparse), rows aligned with
        ``targets`` (n_warm, d)."""
        if not views:
            raise ValueError("give at least one view")
        for v in views:
            if v.shape[0] != len(targets):
                raise ValueError(f"a view has {v.shape[0]} rows for {len(targets)} targets")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, not {self.k}")
        weights = (
            np.ones(len(views)) if self.weights is None else np.asarray(self.weights, np.float64)
        )
        if len(weights) != len(views) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {len(views)} non-negative numbers, not all zero")
        self.weights_ = weights / weights.sum()
        self.views_ = [
            sp.csr_matrix(v).T.tocsr() if sp.issparse(v) else np.asarray(v, np.float32).T
            for v in views
        ]
        self.targets_ = np.asarray(targets, np.float32)
        return self

    def similarity(self, views: list) -> np.ndarray:
        """(n_query, n_warm) mean similarity of query rows to the warm items."""
        if len(views) != len(self.views_):
            raise ValueError(f"{len(views)} views given, fitted on {len(self.views_)}")
        total = None
        for query, warm, weight in zip(views, self.views_, self.weights_, strict=True):
            if weight == 0:
                continue
            part = query @ warm
            part = float(weight) * np.asarray(
                part.todense() if sp.issparse(part) else part, np.float32
            )
            total = part if total is None else total + part
        return total

    def predict(self, views: list) -> np.ndarray:
        """float32 (n_query, d); rows with no positive similarity get zeros."""
        n = views[0].shape[0]
        out = np.zeros((n, self.targets_.shape[1]), np.float32)
        k = min(self.k, self.targets_.shape[0])
        for start in range(0, n, self.chunk):
            block = [v[start : start + self.chunk] for v in views]
            sims = self.similarity(block)
            top = (
                np.argpartition(-sims, k - 1, axis=1)[:, :k]
                if k < sims.shape[1]
                else np.tile(np.arange(sims.shape[1]), (len(sims), 1))
            )
            weights = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0) ** self.power
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(total > 0, total, 1.0)
            out[start : start + len(sims)] = np.einsum("qk,qkd->qd", weights, self.targets_[top])
        return out


class ColdStartRecommender(Recommender):
    """CF vectors for warm items, content-predicted vectors for cold ones.

    Parameters
    ----------
    alpha : ridge penalty of every modality's `ContentToCF`.
    unit_modalities : comma-separated modalities whose mapping learns unit directions.
    neighbours : k of a `NeighbourToCF` over all feature modalities together (their rows should
        be unit vectors: TF-IDF rows, embeddings), added as the prediction ``knn``; 0 for none.

    `fit` takes, besides the users x items matrix (whose empty columns are the cold items),
    the CF model's ``user_factors`` (n_users, d) and ``item_factors`` (n_items, d) and
    ``features``: modality name -> (n_items, n_features) array or sparse matrix, with all-zero
    rows for items that lack that modality. Precomputed predictions (say, from the audio CNN)
    can be passed as ``predictions``: modality -> (n_items, d). A cold item's vector is the
    mean of the predictions it has.

    Attributes (after `fit`)
    ------------------------
    user_factors_ : (n_users, d); item_factors_ : (n_items, d), cold rows predicted;
    is_cold_ : bool (n_items,); predicted_ : (n_modalities, n_items, d); modalities_ : names.
    """

    name = "coldstart"
    params = ("alpha", "unit_modalities", "neighbours")
    fitted = ("user_factors_", "item_factors_", "is_cold_", "predicted_", "modalities_")

    def __init__(self, alpha: float = 1.0, unit_modalities: str = "audio", neighbours: int = 30):
        self.alpha = alpha
        self.unit_modalities = unit_modalities
        self.neighbours = neighbours

    def fit(
        self,
        user_items: sp.csr_matrix,
        *,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        features: dict[str, object] | None = None,
        predictions: dict[str, np.ndarray] | None = None,
    ) -> ColdStartRecommender:
        n_items = user_items.shape[1]
        item_factors = np.asarray(item_factors, np.float32)
        if item_factors.shape[0] != n_items:
            raise ValueError(f"item_factors has {item_factors.shape[0]} rows for {n_items} items")
        if not features and not predictions:
            raise ValueError(
                "ColdStartRecommender needs at least one modality's features or predictions"
            )
        warm = np.asarray((user_items != 0).sum(axis=0)).ravel() > 0
        unit = set(filter(None, self.unit_modalities.split(",")))
        warm_norm = float(np.linalg.norm(item_factors[warm], axis=1).mean()) if warm.any() else 1.0
        names, stacked, present = [], [], []
        for modality, matrix in (features or {}).items():
            has = _nonzero_rows(matrix)
            train = warm & has
            if train.sum() < 2:
                continue
            mapping = ContentToCF(self.alpha, unit_targets=modality in unit)
            mapping.fit(matrix[np.flatnonzero(train)], item_factors[train])
            names.append(modality)
            stacked.append(mapping.predict(matrix))
            present.append(has)
        views = [m for m in (features or {}).values()]
        if self.neighbours > 0 and views and warm.sum() >= 2:
            knn = NeighbourToCF(self.neighbours).fit(
                [_rows(v, warm) for v in views], item_factors[warm]
            )
            names.append("knn")
            stacked.append(knn.predict(views))
            present.append(np.any([_nonzero_rows(v) for v in views], axis=0))
        for modality, pred in (predictions or {}).items():
            pred = np.asarray(pred, np.float32)
            names.append(modality)
            stacked.append(pred)
            present.append(np.linalg.norm(pred, axis=1) > 0)
        if not names:
            raise ValueError("no modality has two or more warm items with content to learn from")
        vectors = np.zeros((len(names), n_items, item_factors.shape[1]), np.float32)
        for k, (modality, pred, has) in enumerate(zip(names, stacked, present, strict=True)):
            if modality in unit:
                norms = np.linalg.norm(pred, axis=1, keepdims=True)
                pred = warm_norm * pred / np.where(norms > 0, norms, 1.0)
            vectors[k] = np.where(has[:, None], pred, 0.0)
        counts = np.stack(present).sum(axis=0)
        hybrid = vectors.sum(axis=0) / np.maximum(counts, 1)[:, None]
        self.user_factors_ = np.asarray(user_factors, np.float32)
        self.item_factors_ = np.where(warm[:, None], item_factors, hybrid).astype(np.float32)
        self.is_cold_ = ~warm
        self.predicted_ = vectors
        self.modalities_ = np.array(names, dtype=np.str_)
        return self

    def predicted(self, modality: str) -> np.ndarray:
        """One modality's predicted vectors (n_items, d); zero rows where it had no content."""
        names = [str(m) for m in self.modalities_]
        if modality not in names:
            raise KeyError(f"no {modality!r} predictions; have {', '.join(names)}")
        return self.predicted_[names.index(modality)]

    def score(self, userids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return self.user_factors_[np.asarray(userids)] @ self.item_factors_.T

    def item_vectors(self) -> np.ndarray:
        return self.item_factors_


def _rows(matrix, mask: np.ndarray):
    return matrix[np.flatnonzero(mask)]


def _nonzero_rows(matrix) -> np.ndarray:
    if sp.issparse(matrix):
        m = sp.csr_matrix(matrix)
        return np.diff(m.indptr) > 0
    return np.abs(np.asarray(matrix)).sum(axis=1) > 0


# -- similar items ------------------------------------------------------------------------
SIMILAR_BY = ("cf", "text", "audio", "hybrid")


@dataclass(frozen=True)
class SimilarItem:
    item_id: str
    kind: str
    name: str
    score: float


class ItemSimilarity:
    """Items like a given one, by CF vectors, text, audio, or all three (``hybrid``).

    Built lazily from a store, one view at a time:

    - ``text``: TF-IDF (or MiniLM, or both: ``text_by``) cosine of item documents;
    - ``audio``: cosine of standardised audio summaries (tracks with an audio file);
    - ``cf``: cosine of CF vectors (ALS on the plays); items nobody has played get vectors
      predicted from their text and audio (`ColdStartRecommender`), so a new track has CF
      neighbours too;
    - ``hybrid``: the mean of the cosines of the views an item pair has.

    Parameters
    ----------
    store : the store.
    audio_cache : feature cache folder for audio extraction.
    text_by : "tfidf", "minilm" or "hybrid" for the text view.
    encoder : sentence encoder (or `EmbeddingCache`) for MiniLM.
    factors, seed : of the ALS.
    progress : ``progress(stage, done, total)``.
    """

    def __init__(
        self,
        store: Store,
        *,
        audio_cache: str | Path | None = None,
        text_by: str = "tfidf",
        encoder=None,
        factors: int = 64,
        seed: int = 0,
        progress: Callable[[str, int, int], None] | None = None,
    ):
        from deepcuts.models.text.documents import load_item_texts

        self.store = store
        self.audio_cache = audio_cache
        self.text_by = text_by
        self.encoder = encoder
        self.factors = factors
        self.seed = seed
        self.progress = progress
        played = [
            r[0]
            for r in store.conn.execute(
                "SELECT DISTINCT item_id FROM listens ORDER BY 1"
            ).fetchall()
        ]
        self.texts = load_item_texts(store)
        known = set(self.texts.item_ids)
        extra = [i for i in played if i not in known]
        if extra:
            self.texts = load_item_texts(store, self.texts.item_ids + extra)
        self.item_ids = list(self.texts.item_ids)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.kinds = np.array(self.texts.kinds)
        self._views: dict[str, np.ndarray | None] = {}

    def resolve(self, item: str) -> str:
        """An item id from an id or an exact (case-insensitive) name."""
        if item in self.index:
            return item
        matches = [
            i
            for i, name in zip(self.item_ids, self.texts.names, strict=True)
            if name.lower() == item.lower()
        ]
        if not matches:
            base = [
                i
                for i, name in zip(self.item_ids, self.texts.names, strict=True)
                if name.split(" - ")[0].lower() == item.lower()
            ]
            matches = base
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise KeyError(f"no item with id or name {item!r}")
        raise KeyError(
            f"{len(matches)} items are named {item!r}: {', '.join(matches[:10])}; give an id"
        )

    # views: unit rows (n_items, d), zero rows where the view has nothing -------------------
    def view(self, by: str) -> np.ndarray:
        if by not in self._views:
            self._views[by] = {"text": self._text, "audio": self._audio, "cf": self._cf}[by]()
        return self._views[by]

    def _text(self) -> np.ndarray:
        from deepcuts.models.text.search import TextSearch

        report = (lambda d, t: self.progress("text embeddings", d, t)) if self.progress else None
        search = TextSearch(self.text_by, self.encoder).fit(self.texts, report)
        parts = []
        if search.matrix_ is not None:
            parts.append(search.matrix_)
        if search.embeddings_ is not None:
            parts.append(sp.csr_matrix(search.embeddings_))
        # Concatenated unit blocks, scaled so the dot product is the mean of the cosines.
        return sp.csr_matrix(sp.hstack(parts) / np.sqrt(len(parts)))

    def _audio(self) -> np.ndarray | None:
        from deepcuts.models.audio.extract import extract, track_audio_paths
        from deepcuts.models.audio.features import summary_embedding

        paths = track_audio_paths(self.store)
        wanted = [(self.index[t], p) for t, p in paths.items() if t in self.index]
        if not wanted:
            return None
        report = (lambda d, t: self.progress("audio features", d, t)) if self.progress else None
        result = extract([p for _, p in wanted], cache_dir=self.audio_cache, progress=report)
        if not result.features:
            return None
        rows = {f.path: n for n, f in enumerate(result.features)}
        emb = summary_embedding(result.summaries)
        out = np.zeros((len(self.item_ids), emb.shape[1]), np.float32)
        for i, path in wanted:
            if path in rows:
                out[i] = emb[rows[path]]
        return out

    def _cf(self) -> np.ndarray | None:
        try:
            user_ids, played, plays = play_matrix(self.store)
        except ValueError:
            return None
        cols = np.array([self.index[i] for i in played.tolist()])
        n = len(self.item_ids)
        user_items = sp.csr_matrix(
            (plays.data, plays.indices, plays.indptr), shape=(len(user_ids), len(played))
        )
        user_items = sp.csr_matrix(user_items @ sp.csr_matrix(
            (np.ones(len(cols), np.float32), (np.arange(len(cols)), cols)), shape=(len(cols), n)))  # fmt: skip
        user_factors, item_factors = fit_item_factors(
            user_items, self.factors, 15, 0.05, 5.0, self.seed, threads=1
        )
        features = {"text": self.view("text")}
        audio = self.view("audio")
        if audio is not None:
            features["audio"] = audio
        model = ColdStartRecommender().fit(
            user_items, user_factors=user_factors, item_factors=item_factors, features=features
        )
        vectors = model.item_vectors()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def similar(
        self, item: str, by: str = "hybrid", n: int = 10, kind: str | None = "same"
    ) -> list[SimilarItem]:
        """The ``n`` items most like ``item`` (an id or a name), the item itself left out.

        ``kind``: "same" (the item's own kind), "track", "artist" or ``None`` (any).
        """
        if by not in SIMILAR_BY:
            raise ValueError(f"by must be one of {', '.join(SIMILAR_BY)}, not {by!r}")
        item_id = self.resolve(item)
        i = self.index[item_id]
        views = ["cf", "text", "audio"] if by == "hybrid" else [by]
        total = np.zeros(len(self.item_ids))
        count = np.zeros(len(self.item_ids))
        for name in views:
            vectors = self.view(name)
            if vectors is None:
                continue
            row = vectors[i]
            present = _nonzero_rows(vectors)
            if not present[i]:
                continue
            sims = (
                np.asarray((vectors @ row.T).todense()).ravel()
                if sp.issparse(vectors)
                else vectors @ row
            )
            total[present] += sims[present]
            count[present] += 1
        if count.sum() == 0:
            raise LookupError(
                f"{item_id} has no {by if by != 'hybrid' else 'plays, text or audio'} to compare"
            )
        scores = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
        scores[i] = -np.inf
        want = self.kinds[i] if kind == "same" else kind
        if want is not None:
            scores[self.kinds != want] = -np.inf
        ids, vals = top_n(scores[None, :], n)
        return [
            SimilarItem(self.item_ids[j], str(self.kinds[j]), self.texts.names[j], float(v))
            for j, v in zip(ids[0], vals[0], strict=True)
            if j >= 0
        ]


def content_vectors(
    store: Store, items: IdMap, *, audio_cache: str | Path | None = None, dims: int = 64
) -> np.ndarray | None:
    """(n_items, d) unit content vectors of `items`: the text and audio views side by side.

    Each view's rows are unit vectors (zero where the item has no such content; the sparse
    TF-IDF view reduced to its `dims` main directions first), scaled so that the dot product of
    two items is the mean of their per-view cosines. None where the store
    has neither text nor audio. Surfaces use it for "sounds like" neighbours and fresh tracks.
    """
    similarity = ItemSimilarity(store, audio_cache=audio_cache)
    views = []
    for view in (similarity.view("text"), similarity.view("audio")):
        if view is None or view.shape[1] == 0:
            continue
        if sp.issparse(view):  # TF-IDF over the whole vocabulary: keep its main directions
            from sklearn.decomposition import TruncatedSVD

            k = min(dims, view.shape[1] - 1, view.shape[0] - 1)
            if k < 1:
                continue
            view = TruncatedSVD(k, random_state=0).fit_transform(view)
        norms = np.linalg.norm(view, axis=1, keepdims=True)
        views.append(np.asarray(view, np.float32) / np.where(norms == 0, 1, norms))
    if not views:
        return None
    stacked = np.hstack(views) / np.sqrt(len(views))
    out = np.zeros((len(items), stacked.shape[1]), np.float32)
    rows = np.array([similarity.index.get(i, -1) for i in items.ids])
    out[rows >= 0] = stacked[rows[rows >= 0]]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


# -- the registered content model ---------------------------------------------------------------
CONTENT_FORMAT_VERSION = 1


class ContentModel:
    """What the surfaces know of items' content, learnt once and saved: each item's unit
    content vector (`content_vectors`: text and audio side by side) and the cold-start mapping
    from it into the CF model's item space (`ContentToCF`, ridge, fitted on items with plays),
    with the CF vectors it predicts for the items that have none.

    Registered as kind ``content`` by `deepcuts train`; surfaces read the vectors instead of
    extracting text and audio features on every run.

    Attributes (after `fit` or `load`)
    ----------------------------------
    items_ : str (n_items,): the item ids, in the CF model's order.
    vectors_ : float32 (n_items, d): unit content vectors (zero rows: no content).
    coef_, intercept_ : float32 (d, k), (k,): the mapping into the CF space.
    cold_ : bool (n_items,): items without a CF vector (no plays) whose vector was predicted.
    predicted_ : float32 (n_items, k): the CF vectors predicted from content (zeros where none).
    """

    name = "content"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(
        self, items: IdMap, vectors: np.ndarray | None, item_factors: np.ndarray | None
    ) -> ContentModel:
        """``vectors``: (n_items, d) content vectors of ``items`` or None (no text or audio);
        ``item_factors``: the CF model's (n_items, k) item vectors, or None (a model without)."""
        n = len(items)
        self.items_ = np.asarray(items.ids).astype(np.str_)
        self.vectors_ = (
            np.zeros((n, 0), np.float32) if vectors is None else np.asarray(vectors, np.float32)
        )
        k = 0 if item_factors is None else item_factors.shape[1]
        self.coef_ = np.zeros((self.vectors_.shape[1], k), np.float32)
        self.intercept_ = np.zeros(k, np.float32)
        self.predicted_ = np.zeros((n, k), np.float32)
        has_content = _nonzero_rows(self.vectors_) if self.vectors_.shape[1] else np.zeros(n, bool)
        warm = (
            np.zeros(n, bool) if item_factors is None else np.linalg.norm(item_factors, axis=1) > 0
        )
        train = warm & has_content
        if train.sum() >= 2:
            mapping = ContentToCF(self.alpha).fit(
                self.vectors_[train], np.asarray(item_factors)[train]
            )
            self.coef_, self.intercept_ = mapping.coef_, mapping.intercept_
            self.predicted_[has_content] = mapping.predict(self.vectors_[has_content])
        self.cold_ = has_content & ~warm
        return self

    @property
    def vectors(self) -> np.ndarray | None:
        """The content vectors, or None where the store had neither text nor audio."""
        return self.vectors_ if self.vectors_.shape[1] else None

    def vectors_for(self, items: IdMap) -> np.ndarray | None:
        """The content vectors in another item order (zero rows for items not known)."""
        if self.vectors is None:
            return None
        if np.array_equal(self.items_, np.asarray(items.ids).astype(np.str_)):
            return self.vectors_
        rows = IdMap(self.items_).indices(items.ids)
        out = np.zeros((len(items), self.vectors_.shape[1]), np.float32)
        out[rows >= 0] = self.vectors_[rows[rows >= 0]]
        return out

    def save(self, path: str | Path) -> None:
        import json

        meta = {
            "format_version": CONTENT_FORMAT_VERSION,
            "model": self.name,
            "params": {"alpha": self.alpha},
        }
        with open(path, "wb") as fh:
            np.savez(
                fh,
                __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                items=self.items_,
                vectors=self.vectors_,
                coef=self.coef_,
                intercept=self.intercept_,
                cold=self.cold_,
                predicted=self.predicted_,
            )

    @classmethod
    def load(cls, path: str | Path) -> ContentModel:
        import json

        from deepcuts.models.base import ModelFormatError

        try:
            data = np.load(Path(path), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"{path}: not a deepcuts model file ({exc})") from exc
        with data:
            meta = json.loads(bytes(data["__meta__"]).decode()) if "__meta__" in data.files else {}
            if (
                meta.get("model") != cls.name
                or meta.get("format_version") != CONTENT_FORMAT_VERSION
            ):
                raise ModelFormatError(
                    f"{path}: not a {cls.name} model of format {CONTENT_FORMAT_VERSION} "
                    f"(holds {meta.get('model')!r}, format {meta.get('format_version')!r})"
                )
            model = cls(**meta["params"])
            model.items_, model.vectors_ = data["items"], data["vectors"]
            model.coef_, model.intercept_ = data["coef"], data["intercept"]
            model.cold_, model.predicted_ = data["cold"], data["predicted"]
        return model
