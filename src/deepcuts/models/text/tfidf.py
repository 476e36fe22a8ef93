"""TF-IDF over item documents, with an optional low-rank reduction (LSA). No torch.

Term frequencies are sublinear (1 + log tf) by default, inverse document frequencies smoothed
(``log((1 + n) / (1 + df)) + 1``) and rows L2-normalised, so the dot product of two rows is
their cosine. `weigh` applies the fitted weighting to a raw count matrix, which lets callers
edit counts (leave out one listener's tags) and weigh them again without refitting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import ModelFormatError
from deepcuts.models.text.documents import Vocabulary, words

FORMAT_VERSION = 1


def _as_terms(docs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    return [words(d) if isinstance(d, str) else list(d) for d in docs]


class TfidfEncoder:
    """TF-IDF vectors of documents (strings, or lists of terms from `ItemTexts.terms`).

    Parameters
    ----------
    min_df : a term must occur in at least this many documents.
    max_df : and in at most this share of them.
    max_features : keep the most frequent terms only.
    sublinear_tf : 1 + log(tf) instead of tf.
    n_components : if set, reduce to this many dimensions (truncated SVD) in `transform`.
    random_state : seeds the SVD.

    Attributes (after `fit`)
    ------------------------
    vocabulary_ : `Vocabulary`; idf_ : float64 (n_terms,);
    components_ : float32 (n_components, n_terms) when reducing.

    Example
    -------
    >>> enc = TfidfEncoder().fit(["rainy sunday acoustic", "loud fast punk"])
    >>> enc.transform(["acoustic sunday"]).shape
    (1, 5)
    """

    name = "tfidf"
    params = ("min_df", "max_df", "max_features", "sublinear_tf", "n_components", "random_state")

    def __init__(
        self,
        min_df: int = 1,
        max_df: float = 1.0,
        max_features: int | None = None,
        sublinear_tf: bool = True,
        n_components: int | None = None,
        random_state: int = 0,
    ):
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, docs: Sequence[str] | Sequence[Sequence[str]]) -> TfidfEncoder:
        terms = _as_terms(docs)
        seen: dict[str, int] = {}
        for doc in terms:
            for term in set(doc):
                seen[term] = seen.get(term, 0) + 1
        vocab = Vocabulary(sorted(seen))
        return self.fit_counts(vocab.counts(terms), vocab)

    def fit_counts(self, counts: sp.spmatrix, vocabulary: Vocabulary) -> TfidfEncoder:
        """Fit from a (documents x terms) count matrix over ``vocabulary``."""
        if self.min_df < 1:
            raise ValueError(f"min_df must be at least 1, not {self.min_df}")
        if not 0 < self.max_df <= 1:
            raise ValueError(f"max_df must be in (0, 1], not {self.max_df}")
        counts = sp.csr_matrix(counts)
        n_docs = counts.shape[0]
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        keep = (df >= self.min_df) & (df <= self.max_df * n_docs)
        if self.max_features is not None and keep.sum() > self.max_features:
            order = np.argsort(-np.where(keep, df, -1), kind="stable")[: self.max_features]
            keep = np.zeros_like(keep)
            keep[order] = True
        cols = np.flatnonzero(keep)
        if len(cols) == 0:
            raise ValueError(
                "no term is left to weigh: the documents are empty or min_df/max_df exclude all"
            )
        self.vocabulary_ = Vocabulary(vocabulary.terms[c] for c in cols)
        self.idf_ = np.log((1.0 + n_docs) / (1.0 + df[cols])) + 1.0
        self.components_ = None
        if self.n_components:
            from sklearn.decomposition import TruncatedSVD

            weighted = self._weigh_sparse(counts[:, cols])
            k = min(self.n_components, min(weighted.shape) - 1)
            if k < 1:
                raise ValueError("too few documents or terms for the low-rank reduction")
            svd = TruncatedSVD(k, algorithm="randomized", random_state=self.random_state)
            svd.fit(weighted)
            self.components_ = svd.components_.astype(np.float32)
        return self

    # -- applying -----------------------------------------------------------------------
    def counts(self, docs: Sequence[str] | Sequence[Sequence[str]]) -> sp.csr_matrix:
        """Raw term counts over the fitted vocabulary, (n_docs, n_terms)."""
        return self._fitted().counts(_as_terms(docs))

    def _weigh_sparse(self, counts: sp.spmatrix) -> sp.csr_matrix:
        m = sp.csr_matrix(counts, dtype=np.float64, copy=True)
        m.data = np.where(m.data > 0, m.data, 0.0)
        if self.sublinear_tf:
            m.data = np.where(m.data > 0, 1.0 + np.log(np.maximum(m.data, 1e-12)), 0.0)
        m = sp.csr_matrix(m.multiply(self.idf_[None, :]))
        m.eliminate_zeros()
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        return sp.csr_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m)

    def weigh(self, counts: sp.spmatrix) -> sp.csr_matrix | np.ndarray:
        """The fitted weighting of a count matrix: sparse rows, or dense reduced unit rows."""
        self._fitted()
        m = self._weigh_sparse(counts)
        if self.components_ is None:
            return m
        z = np.asarray(m @ self.components_.T, np.float32)
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return z / np.where(norms > 0, norms, 1.0)

    def transform(
        self, docs: Sequence[str] | Sequence[Sequence[str]]
    ) -> sp.csr_matrix | np.ndarray:
        """Unit rows, (n_docs, n_terms) sparse or (n_docs, n_components) dense."""
        return self.weigh(self.counts(docs))

    def _fitted(self) -> Vocabulary:
        vocab = getattr(self, "vocabulary_", None)
        if vocab is None:
            raise RuntimeError("TfidfEncoder is not fitted: call fit() or load() first")
        return vocab

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        vocab = self._fitted()
        meta = {"format_version": FORMAT_VERSION, "model": self.name,
                "params": {p: getattr(self, p) for p in self.params}}  # fmt: skip
        arrays: dict[str, Any] = {"terms": np.array(vocab.terms, dtype=np.str_), "idf": self.idf_}
        if self.components_ is not None:
            arrays["components"] = self.components_
        np.savez(Path(path), __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> TfidfEncoder:
        with np.load(Path(path), allow_pickle=False) as data:
            try:
                meta = json.loads(bytes(data["__meta__"]).decode())
            except KeyError as exc:
                raise ModelFormatError(f"{path}: not a deepcuts model file") from exc
            if meta.get("model") != cls.name or meta.get("format_version") != FORMAT_VERSION:
                raise ModelFormatError(
                    f"{path}: holds {meta.get('model')} format {meta.get('format_version')}, "
                    f"this deepcuts reads {cls.name} format {FORMAT_VERSION}"
                )
            enc = cls(**meta["params"])
            enc.vocabulary_ = Vocabulary(str(t) for t in data["terms"])
            enc.idf_ = data["idf"]
            enc.components_ = data["components"] if "components" in data.files else None
        return enc
