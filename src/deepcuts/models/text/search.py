"""Free-text search and text similarity over item documents ("rainy sunday acoustic").

Two views of the same documents, used alone or together:

- ``tfidf``: the cosine of TF-IDF vectors (exact words and tag phrases; fast, no torch);
- ``minilm``: the cosine of MiniLM sentence embeddings (meaning: "mellow" finds "chill");
- ``hybrid``: the mean of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepcuts.models.base import top_n
from deepcuts.models.text.documents import ItemTexts
from deepcuts.models.text.sentence import EmbeddingCache, SentenceEncoder
from deepcuts.models.text.tfidf import TfidfEncoder

TEXT_VIEWS = ("tfidf", "minilm", "hybrid")


@dataclass(frozen=True)
class Hit:
    item_id: str
    kind: str
    name: str
    score: float


class TextSearch:
    """Search items by free text, or find items whose text is like an item's.

    Parameters
    ----------
    by : "tfidf", "minilm" or "hybrid".
    encoder : the sentence encoder, or an `EmbeddingCache` around one (for "minilm"/"hybrid").

    Example
    -------
    >>> search = TextSearch("tfidf").fit(load_item_texts(store))     # doctest: +SKIP
    >>> search.query("rainy sunday acoustic", n=5)                    # doctest: +SKIP
    """

    def __init__(self, by: str = "hybrid", encoder: SentenceEncoder | EmbeddingCache | None = None):
        self.by = by
        self.encoder = encoder

    def fit(
        self, texts: ItemTexts, progress: Callable[[int, int], None] | None = None
    ) -> TextSearch:
        if self.by not in TEXT_VIEWS:
            raise ValueError(f"by must be one of {', '.join(TEXT_VIEWS)}, not {self.by!r}")
        if len(texts) == 0:
            raise ValueError("there are no items to search: the catalogue is empty")
        self.item_ids_ = list(texts.item_ids)
        self.kinds_ = np.array(texts.kinds)
        self.names_ = list(texts.names) if texts.names else list(texts.item_ids)
        self.tfidf_ = self.matrix_ = self.embeddings_ = None
        if self.by in ("tfidf", "hybrid"):
            terms = texts.terms()
            self.tfidf_ = TfidfEncoder().fit(terms)
            self.matrix_ = self.tfidf_.transform(terms)
        if self.by in ("minilm", "hybrid"):
            self.encoder = self.encoder or SentenceEncoder()
            self.embeddings_ = self.encoder.encode(texts.documents(), progress)
        return self

    def _scores(self, tfidf_rows, embeddings) -> np.ndarray:
        parts = []
        if self.matrix_ is not None:
            parts.append(np.asarray((tfidf_rows @ self.matrix_.T).todense(), np.float32))
        if self.embeddings_ is not None:
            parts.append(embeddings @ self.embeddings_.T)
        return np.mean(parts, axis=0)

    def _hits(
        self, scores: np.ndarray, n: int, kind: str | None, skip: int | None = None
    ) -> list[Hit]:
        scores = scores.copy()
        if kind is not None:
            scores[self.kinds_ != kind] = -np.inf
        if skip is not None:
            scores[skip] = -np.inf
        ids, vals = top_n(scores[None, :], n)
        return [
            Hit(self.item_ids_[i], str(self.kinds_[i]), self.names_[i], float(v))
            for i, v in zip(ids[0], vals[0], strict=True)
            if i >= 0 and v > 0
        ]

    def query(self, text: str, n: int = 10, kind: str | None = None) -> list[Hit]:
        """The ``n`` items (of ``kind``, if given) whose text best matches ``text``."""
        rows = self.tfidf_.transform([text]) if self.tfidf_ is not None else None
        emb = self.encoder.encode([text]) if self.embeddings_ is not None else None
        return self._hits(self._scores(rows, emb)[0], n, kind)

    def similar(self, item_id: str, n: int = 10, kind: str | None = None) -> list[Hit]:
        """The ``n`` items whose text is most like ``item_id``'s (the item itself left out)."""
        try:
            i = self.item_ids_.index(item_id)
        except ValueError:
            raise KeyError(item_id) from None
        rows = self.matrix_[i] if self.matrix_ is not None else None
        emb = self.embeddings_[i : i + 1] if self.embeddings_ is not None else None
        return self._hits(self._scores(rows, emb)[0], n, kind, skip=i)
