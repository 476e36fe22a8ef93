"""Cold-items evaluation: how well are items with no plays ranked for the users who play them?

A share of the items is held out of all training interactions (every play of a cold item is
removed from training). Each content model then ranks all cold items for every user who
played at least one of them, and Recall@K is measured among the cold items:
``|top K ∩ played cold items| / |played cold items|``, averaged over those users, over one or
more seeds (each seed draws another cold set). Random ranking has an expected Recall@K of
exactly ``K / n_cold``.

Models (each alone, then combined):

- ``text-match``: cosine between the user's profile (the TF-IDF vectors of the warm items they
  played, weighted by log plays) and each cold item's TF-IDF vector;
- ``text-cf``: the cold item's TF-IDF vector mapped into the CF space (ridge regression learnt
  on warm items, `ContentToCF`), scored with the user's CF vector;
- ``text-knn``: the mean CF vector of the cold item's most similar warm items by text
  (`NeighbourToCF`), scored with the user's CF vector;
- ``audio-match``: as text-match, over standardised audio summary features;
- ``audio-cf``: the CNN's predicted unit CF vector (`deepcuts.models.audio.cnn`);
- ``audio-knn``: as text-knn, neighbours by audio summary features;
- ``hybrid-knn``: as text-knn, neighbours by the mean of the text and audio cosines;
- ``text``, ``audio``, ``hybrid``: blends (`BLENDS`), the mean of their parts' scores, each
  z-scored per user: text = match + cf + knn; audio = cf + knn; hybrid = the text blend with
  hybrid-knn as a fourth part;
- ``random``: the exact expectation.

Cold items without audio get the neutral z-score 0 from the audio models.

What a cold item's text may contain is set by ``cold_text``: ``"others"`` (everything written
about it except by the scored user: the protocol for HetRec, where every tag is a listener's)
or ``"editorial"`` (only catalogue text and editorial tags: what a new release has). The
scored user's own tags and playlists on cold items never count.

The CF vectors come from the project's ALS (`deepcuts.models.cf.ALS`) fitted on the training
interactions, log(1 + plays) from `deepcuts.models.coldstart.play_matrix` (through
`fit_item_factors`, the one place to change to use another CF model or weighting).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from deepcuts.models.audio.cnn import AudioToCF
from deepcuts.models.audio.extract import extract, track_audio_paths
from deepcuts.models.audio.features import AudioConfig, summary_embedding
from deepcuts.models.coldstart import ContentToCF, NeighbourToCF, fit_item_factors, play_matrix
from deepcuts.models.text.documents import ItemTexts, Vocabulary, load_item_texts
from deepcuts.models.text.tfidf import TfidfEncoder
from deepcuts.store import Store

log = logging.getLogger(__name__)

TEXT_MODELS = ("text-match", "text-cf", "text-knn", "text")
AUDIO_MODELS = ("audio-match", "audio-cf", "audio-knn", "audio")
HYBRID_MODELS = ("hybrid-knn", "hybrid")
ALL_MODELS = ("random", *TEXT_MODELS, *AUDIO_MODELS, *HYBRID_MODELS)
# The combined models: the mean of their parts' scores, each z-scored per user.
BLENDS = {
    "text": ("text-match", "text-cf", "text-knn"),
    "audio": ("audio-cf", "audio-knn"),
    "hybrid": ("text-match", "text-cf", "text-knn", "hybrid-knn"),
}
COLD_TEXT = ("others", "editorial")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ColdItemsConfig:
    """Settings of the cold-items evaluation (defaults are the ones reported).

    fraction : share of items held out as cold. k : the K of Recall@K. seeds : one cold set
    each. cold_text : "others" or "editorial" (see the module). factors, als_iterations,
    als_regularization, confidence : the ALS fitted on the training interactions (confidence
    scales log(1 + plays)). ridge_alpha : the content-to-CF ridge. neighbours : the k of the
    nearest-neighbour mappings. cnn_epochs : training epochs of the audio network. audio_cache : the feature cache folder. threads : for ALS and torch (one
    is fastest on a machine whose cores are shared).
    """

    fraction: float = 0.2
    k: int = 50
    seeds: tuple[int, ...] = (0,)
    cold_text: str = "others"
    factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.05
    confidence: float = 5.0
    ridge_alpha: float = 1.0
    neighbours: int = 30
    cnn_epochs: int = 20
    audio_cache: str | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(
                f"the cold fraction must be between 0 and 1 (exclusive), not {self.fraction}"
            )
        if self.k < 1:
            raise ValueError(f"k must be at least 1, not {self.k}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        if self.cold_text not in COLD_TEXT:
            raise ValueError(
                f"cold_text must be one of {', '.join(COLD_TEXT)}, not {self.cold_text!r}"
            )
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, not {self.neighbours}")


@dataclass
class ColdItemsReport:
    """Recall@K among cold items per model and seed, with the sizes of each run."""

    config: ColdItemsConfig
    n_users: int
    n_items: int
    recall: dict[str, list[float]] = field(default_factory=dict)  # model -> one value per seed
    n_cold: list[int] = field(default_factory=list)
    n_test_users: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, model: str) -> float:
        return float(np.mean(self.recall[model]))

    def std(self, model: str) -> float:
        return float(np.std(self.recall[model]))

    def to_dict(self) -> dict:
        return {
            "k": self.config.k,
            "fraction": self.config.fraction,
            "seeds": list(self.config.seeds),
            "cold_text": self.config.cold_text,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_cold": self.n_cold,
            "n_test_users": self.n_test_users,
            "recall": {
                m: {"mean": self.mean(m), "std": self.std(m), "per_seed": v}
                for m, v in self.recall.items()
            },
            "seconds": round(self.seconds, 1),
        }

    def markdown(self) -> str:
        k = self.config.k
        base = self.mean("random") if "random" in self.recall else float("nan")
        lines = [
            f"Cold items: {self.config.fraction:.0%} of {self.n_items:,} items held out of training "
            f"({np.mean(self.n_cold):,.0f} cold; {np.mean(self.n_test_users):,.0f} users played one); "
            f"seeds {', '.join(map(str, self.config.seeds))}; cold text: {self.config.cold_text}.",
            "",
            f"| model | Recall@{k} among cold items | × random |",
            "|---|---|---|",
        ]
        for model, values in self.recall.items():
            lines.append(
                f"| {model} | {np.mean(values):.4f} ± {np.std(values):.4f} | {np.mean(values) / base:.1f} |"
            )
        return "\n".join(lines)


# -- data ---------------------------------------------------------------------------------
@dataclass
class ColdData:
    """What the evaluation reads from the store, once for all seeds.

    ``plays`` is (users x items) log(1 + plays); text is kept as count matrices so that one
    user's contributions can be subtracted: ``counts`` (everything), ``editorial`` (catalogue
    text and editorial tags only) and ``user_parts``: for each user index, (items, terms,
    counts) that user wrote. Audio is per item: ``audio_rows`` (item -> row of ``summaries``
    and ``log_mels``).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    plays: sp.csr_matrix
    counts: sp.csr_matrix | None = None
    editorial: sp.csr_matrix | None = None
    vocabulary: Vocabulary | None = None
    user_parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    audio_rows: np.ndarray | None = None  # int (n_items,), -1 where no audio
    summaries: np.ndarray | None = None
    log_mels: list[np.ndarray] = field(default_factory=list)

    @property
    def has_text(self) -> bool:
        return self.counts is not None and self.counts.nnz > 0

    @property
    def has_audio(self) -> bool:
        return self.audio_rows is not None and bool((self.audio_rows >= 0).sum() >= 2)


def load_cold_data(
    store: Store,
    *,
    text: bool = True,
    audio: bool = True,
    audio_config: AudioConfig | None = None,
    audio_cache: str | None = None,
    progress: Progress | None = None,
) -> ColdData:
    """Plays, text counts and audio features of every played item."""
    user_ids, item_ids, plays = play_matrix(store)
    data = ColdData(user_ids, item_ids, plays)
    if text:
        texts = load_item_texts(store, item_ids.tolist())
        _text_counts(data, texts, {u: k for k, u in enumerate(user_ids.tolist())})
    if audio:
        paths = track_audio_paths(store)
        wanted = [(k, paths[i]) for k, i in enumerate(item_ids.tolist()) if i in paths]
        if wanted:
            report = (
                (lambda done, total: progress("audio features", done, total)) if progress else None
            )
            result = extract([p for _, p in wanted], audio_config, cache_dir=audio_cache,
                             keep_log_mel=True, progress=report)  # fmt: skip
            ok = {f.path: n for n, f in enumerate(result.features)}
            data.audio_rows = np.full(len(item_ids), -1, np.int64)
            for k, path in wanted:
                if path in ok:
                    data.audio_rows[k] = ok[path]
            data.summaries = result.summaries
            data.log_mels = [f.log_mel for f in result.features]
    return data


def _text_counts(data: ColdData, texts: ItemTexts, user_index: dict[str, int]) -> None:
    terms, items, users, weights = texts.term_rows()
    seen: dict[str, None] = {}
    for doc in terms:
        seen.update(dict.fromkeys(doc))
    vocab = Vocabulary(sorted(seen))
    n_items = len(texts)
    rows, cols, vals, owner = [], [], [], []
    for doc, item, user, weight in zip(terms, items, users, weights, strict=True):
        code = -1 if user is None else user_index.get(user, -2)
        for term in doc:
            rows.append(item)
            cols.append(vocab.index[term])
            vals.append(weight)
            owner.append(code)
    rows_a, cols_a = np.array(rows, np.int64), np.array(cols, np.int64)
    vals_a, owner_a = np.array(vals, np.float64), np.array(owner, np.int64)
    shape = (n_items, len(vocab))
    data.vocabulary = vocab
    data.counts = sp.csr_matrix((vals_a, (rows_a, cols_a)), shape=shape)
    ed = owner_a == -1
    data.editorial = sp.csr_matrix((vals_a[ed], (rows_a[ed], cols_a[ed])), shape=shape)
    mine = owner_a >= 0
    order = np.argsort(owner_a[mine], kind="stable")
    o, r, c, v = owner_a[mine][order], rows_a[mine][order], cols_a[mine][order], vals_a[mine][order]
    bounds = np.flatnonzero(np.diff(o)) + 1
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(o)], strict=True):
        if stop > start:
            data.user_parts[int(o[start])] = (r[start:stop], c[start:stop], v[start:stop])


# -- models -------------------------------------------------------------------------------
def _zscore(scores: np.ndarray) -> np.ndarray:
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return (scores - mean) / np.where(std > 1e-12, std, 1.0)


def recall_at_k(scores: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean over rows of |top k of scores ∩ relevant| / |relevant| (rows with none left out)."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    values = []
    for r in range(scores.shape[0]):
        rel = relevant.indices[relevant.indptr[r] : relevant.indptr[r + 1]]
        if len(rel) == 0:
            continue
        hits = len(rel) if top is None else np.isin(rel, top[r]).sum()
        values.append(hits / len(rel))
    return float(np.mean(values)) if values else float("nan")


class _Seed:
    """One cold split and the scores of every model on it."""

    def __init__(
        self, data: ColdData, config: ColdItemsConfig, seed: int, cold: np.ndarray | None = None
    ):
        self.data, self.config, self.seed = data, config, seed
        n_items = len(data.item_ids)
        if cold is None:
            rng = np.random.default_rng(seed)
            n_cold = max(1, int(round(config.fraction * n_items)))
            cold = np.zeros(n_items, bool)
            cold[rng.choice(n_items, n_cold, replace=False)] = True
        self.cold = np.asarray(cold, bool)
        self.cold_idx, self.warm_idx = np.flatnonzero(self.cold), np.flatnonzero(~self.cold)
        keep = sp.diags((~self.cold).astype(np.float32))
        self.train = sp.csr_matrix(data.plays @ keep)
        self.train.eliminate_zeros()
        test_part = sp.csr_matrix(data.plays[:, self.cold_idx])
        self.test_users = np.flatnonzero(np.diff(test_part.indptr) > 0)
        self.relevant = test_part[self.test_users]
        self.user_factors, self.item_factors = fit_item_factors(
            self.train,
            config.factors,
            config.als_iterations,
            config.als_regularization,
            config.confidence,
            seed,
            config.threads,
        )

    # text ----------------------------------------------------------------------------
    def text_scores(self) -> dict[str, np.ndarray]:
        """text-match, text-cf (ridge), text-knn: (n_test_users, n_cold) each."""
        data, cfg = self.data, self.config
        warm, cold = self.warm_idx, self.cold_idx
        cold_counts = data.counts if cfg.cold_text == "others" else data.editorial
        encoder = TfidfEncoder(sublinear_tf=True).fit_counts(data.counts[warm], data.vocabulary)
        keep = np.array([data.vocabulary.index[t] for t in encoder.vocabulary_.terms], np.int64)
        counts, cold_counts = data.counts[:, keep], cold_counts[:, keep]
        docs_warm = encoder.weigh(counts[warm])
        docs_cold = encoder.weigh(cold_counts[cold])
        train = self.train[self.test_users][:, warm]
        profiles = sp.csr_matrix(train @ docs_warm)
        match = np.asarray((profiles @ docs_cold.T).todense(), np.float32)
        has_text = np.diff(docs_warm.indptr) > 0
        ridge = ContentToCF(cfg.ridge_alpha).fit(
            docs_warm[np.flatnonzero(has_text)], self.item_factors[warm][has_text]
        )
        knn = NeighbourToCF(cfg.neighbours).fit([docs_warm], self.item_factors[warm])
        uf = self.user_factors[self.test_users]
        to_cf = uf @ ridge.predict(docs_cold).T
        near = uf @ knn.predict([docs_cold]).T
        # The scored user's own tags and playlists on cold items are left out of their text:
        # per user, the rows they wrote on are weighed again without their part.
        self.text_fixes: dict[int, tuple[np.ndarray, sp.csr_matrix]] = {}
        if cfg.cold_text == "others":
            position = np.full(len(self.cold), -1, np.int64)
            position[cold] = np.arange(len(cold))
            column = np.full(data.counts.shape[1], -1, np.int64)
            column[keep] = np.arange(len(keep))
            for row, user in enumerate(self.test_users):
                part = data.user_parts.get(int(user))
                if part is None:
                    continue
                items, terms, values = part
                on_cold = self.cold[items] & (column[terms] >= 0)
                if not on_cold.any():
                    continue
                touched = np.unique(items[on_cold])
                local = np.searchsorted(touched, items[on_cold])
                mine = sp.csr_matrix(
                    (values[on_cold], (local, column[terms[on_cold]])),
                    shape=(len(touched), len(keep)),
                )
                fixed = encoder.weigh(counts[touched] - mine)
                cols = position[touched]
                self.text_fixes[row] = (cols, fixed)
                match[row, cols] = np.asarray((fixed @ profiles[row].T).todense()).ravel()
                to_cf[row, cols] = ridge.predict(fixed) @ uf[row]
                near[row, cols] = knn.predict([fixed]) @ uf[row]
        self.docs_warm, self.docs_cold, self.encoder, self.keep = (
            docs_warm,
            docs_cold,
            encoder,
            keep,
        )
        return {"text-match": match, "text-cf": to_cf, "text-knn": near}

    # audio ---------------------------------------------------------------------------
    def audio_scores(self) -> dict[str, np.ndarray]:
        """audio-match, audio-cf (the CNN), audio-knn; cold items without audio score z = 0."""
        data, cfg = self.data, self.config
        rows = data.audio_rows
        warm_audio = self.warm_idx[rows[self.warm_idx] >= 0]
        cold_audio = rows[self.cold_idx] >= 0
        emb = summary_embedding(data.summaries)
        item_emb = np.zeros((len(rows), emb.shape[1]), np.float32)
        item_emb[rows >= 0] = emb[rows[rows >= 0]]
        profiles = self.train[self.test_users][:, warm_audio] @ item_emb[warm_audio]
        match = np.asarray(profiles @ item_emb[self.cold_idx].T, np.float32)
        model = AudioToCF(epochs=cfg.cnn_epochs, threads=cfg.threads, random_state=self.seed)
        model.fit([data.log_mels[rows[i]] for i in warm_audio], self.item_factors[warm_audio])
        predicted = np.zeros((len(self.cold_idx), self.item_factors.shape[1]), np.float32)
        predicted[cold_audio] = model.predict(
            [data.log_mels[rows[i]] for i in self.cold_idx[cold_audio]]
        )
        uf = self.user_factors[self.test_users]
        to_cf = uf @ predicted.T
        self.audio_warm, self.audio_cold = item_emb[self.warm_idx], item_emb[self.cold_idx]
        knn = NeighbourToCF(cfg.neighbours).fit([self.audio_warm], self.item_factors[self.warm_idx])
        near = uf @ knn.predict([self.audio_cold]).T
        return {
            "audio-match": _zscore_where(match, cold_audio),
            "audio-cf": _zscore_where(to_cf, cold_audio),
            "audio-knn": _zscore_where(near, cold_audio),
        }

    # both ----------------------------------------------------------------------------
    def hybrid_scores(self) -> dict[str, np.ndarray]:
        """hybrid-knn: neighbours by the mean of the text and audio cosines (after text_scores
        and audio_scores)."""
        uf = self.user_factors[self.test_users]
        knn = NeighbourToCF(self.config.neighbours).fit(
            [self.docs_warm, self.audio_warm], self.item_factors[self.warm_idx]
        )
        near = uf @ knn.predict([self.docs_cold, self.audio_cold]).T
        for row, (cols, fixed) in self.text_fixes.items():
            near[row, cols] = knn.predict([fixed, self.audio_cold[cols]]) @ uf[row]
        return {"hybrid-knn": near}


def _zscore_where(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.zeros_like(scores)
    if present.any():
        out[:, present] = _zscore(scores[:, present])
    return out


def evaluate_cold_items(
    store: Store | None = None,
    config: ColdItemsConfig | None = None,
    *,
    models: Sequence[str] | None = None,
    data: ColdData | None = None,
    progress: Progress | None = None,
) -> ColdItemsReport:
    """Recall@K among cold items for the random baseline and each content model.

    Parameters
    ----------
    store : where plays, text and audio come from (or pass ``data`` from `load_cold_data`).
    config : `ColdItemsConfig`.
    models : which of ``ALL_MODELS`` to run; by default every one the data allows (text models
        when items have text, audio models when two or more have audio, hybrid when both).
    progress : called as ``progress(stage, done, total)``.

    Returns
    -------
    ColdItemsReport with one Recall@K per model and seed.
    """
    config = config or ColdItemsConfig()
    began = time.perf_counter()
    if data is None:
        if store is None:
            raise ValueError("give a store or the data loaded from one")
        wanted = set(models or ALL_MODELS)
        data = load_cold_data(
            store,
            text=bool(wanted & {*TEXT_MODELS, *HYBRID_MODELS}),
            audio=bool(wanted & {*AUDIO_MODELS, *HYBRID_MODELS}),
            audio_cache=config.audio_cache,
            progress=progress,
        )
    available = ["random"]
    if data.has_text:
        available += TEXT_MODELS
    if data.has_audio:
        available += AUDIO_MODELS
    if data.has_text and data.has_audio:
        available += HYBRID_MODELS
    if models is None:
        models = available
    else:
        unknown = [m for m in models if m not in ALL_MODELS]
        if unknown:
            raise ValueError(
                f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(ALL_MODELS)}"
            )
        missing = [m for m in models if m not in available]
        if missing:
            needs = {
                n
                for m in missing
                for n in ("text", "audio")
                if m.startswith(n) or m.startswith("hybrid")
            }
            lacking = [
                n
                for n, has in (("text", data.has_text), ("audio", data.has_audio))
                if n in needs and not has
            ]
            raise ValueError(
                f"cannot run {', '.join(missing)}: the items have no {' and no '.join(lacking)} "
                "(audio needs two or more tracks with a readable audio file)"
            )
        models = ["random", *[m for m in models if m != "random"]]
    report = ColdItemsReport(
        config, len(data.user_ids), len(data.item_ids), {m: [] for m in models}
    )
    for done, seed in enumerate(config.seeds):
        run = _Seed(data, config, seed)
        scores: dict[str, np.ndarray] = {}
        if set(models) & {*TEXT_MODELS, *HYBRID_MODELS}:
            scores.update(run.text_scores())
        if set(models) & {*AUDIO_MODELS, *HYBRID_MODELS}:
            scores.update(run.audio_scores())
        if set(models) & set(HYBRID_MODELS):
            scores.update(run.hybrid_scores())
        for blend, parts in BLENDS.items():
            if blend in models:
                scores[blend] = sum(_zscore(scores[p]) for p in parts) / len(parts)
        n_cold = len(run.cold_idx)
        for model in models:
            value = (
                min(config.k, n_cold) / n_cold
                if model == "random"
                else recall_at_k(scores[model], run.relevant, config.k)
            )
            report.recall[model].append(value)
        report.n_cold.append(n_cold)
        report.n_test_users.append(len(run.test_users))
        log.info(
            "cold items, seed %d: %s",
            seed,
            ", ".join(f"{m} {report.recall[m][-1]:.4f}" for m in models),
        )
        if progress:
            progress("seeds", done + 1, len(config.seeds))
    report.seconds = time.perf_counter() - began
    return report
