"""Playlist titles to tracks: playlists named like this one, by TF-IDF and MiniLM.

Training titles are normalised (`normalize_title`) and grouped: each distinct name keeps how
many of its playlists hold each track. A query title is compared with every distinct name in
two views, averaged:

- TF-IDF over the name's words and their 5-letter prefixes (so "chillout" meets "chill"),
  with the project's `TfidfEncoder`;
- the cosine of MiniLM sentence vectors (so "rainy day" meets "cozy rainy afternoon"), from the
  packaged model (`deepcuts.models.text.sentence`); optional.

The ``neighbours`` most similar names vote with ``similarity ** power``, each name's track
counts divided by ``playlists ** beta``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender, top_n
from deepcuts.models.cf._util import check_int, check_matrix, check_positive, positives
from deepcuts.models.text.documents import Vocabulary
from deepcuts.models.text.tfidf import TfidfEncoder
from deepcuts.signals.playlists import normalize_title
from deepcuts.signals.side import SideInfo

Embed = Callable[[Sequence[str]], np.ndarray]


def title_terms(title: str) -> list[str]:
    """The TF-IDF terms of a normalised title: its words and, for words of 5 letters or more,
    their first 5 letters (so "chillout" meets "chill", "relaxing" meets "relax"; character
    trigrams were tried first and made "workout" meet "chillout" through "out").

    >>> title_terms("chillout mix")
    ['chillout', 'chill~', 'mix']
    """
    terms = []
    for word in title.split():
        terms.append(word)
        if len(word) >= 5:
            terms.append(word[:5] + "~")
    return terms


class PlaylistTitle(Recommender):
    """Tracks for a playlist title (see the module docstring).

    `fit` takes the training titles (one per row of the matrix); `score_titles` scores any
    titles, `score` the training playlists by their own titles (new playlists, whose titles
    the model does not know, score zero: use `score_titles`).

    Parameters
    ----------
    neighbours : how many distinct training names vote.
    power : sharpening of the name similarities.
    beta : a name's counts are divided by its number of playlists to this power.
    minilm_weight : share of the MiniLM view in the similarity (0: TF-IDF only, and no
        sentence model is ever loaded).

    Attributes
    ----------
    names_ : str array (n_names,), distinct normalised training titles.
    name_items_ : CSR float32 (n_names, n_items).
    playlist_name_ : int64 (n_playlists,), each training playlist's name (-1: no title).
    terms_, idf_ : the TF-IDF vocabulary and weights.
    name_vectors_ : float32 (n_names, 384) MiniLM vectors, or None.
    """

    name = "playlist-title"
    params = ("neighbours", "power", "beta", "minilm_weight")
    fitted = ("names_", "name_items_", "playlist_name_", "terms_", "idf_", "name_vectors_")

    def __init__(
        self,
        neighbours: int = 50,
        power: float = 2.0,
        beta: float = 0.5,
        minilm_weight: float = 0.5,
    ):
        self.neighbours = neighbours
        self.power = power
        self.beta = beta
        self.minilm_weight = minilm_weight
        self.embed: Embed | None = None

    def fit(
        self,
        user_items: sp.csr_matrix,
        side: SideInfo | None = None,
        *,
        titles: Sequence[str] | None = None,
        embed: Embed | None = None,
    ) -> PlaylistTitle:
        """``titles``: one per row of ``user_items``; ``embed``: texts -> unit vectors (default
        the packaged MiniLM, loaded only when ``minilm_weight > 0``)."""
        check_int("neighbours", self.neighbours)
        check_positive("power", self.power)
        check_positive("beta", self.beta, allow_zero=True)
        if not 0 <= self.minilm_weight <= 1:
            raise ValueError(f"minilm_weight must be in [0, 1], not {self.minilm_weight!r}")
        matrix = positives(check_matrix(user_items))
        if titles is None or len(titles) != matrix.shape[0]:
            raise ValueError(
                f"give one title per playlist: {matrix.shape[0]} rows, "
                f"{'no' if titles is None else len(titles)} titles"
            )
        normal = [normalize_title(t) for t in titles]
        names = sorted({t for t in normal if t})
        if not names:
            raise ValueError("no playlist has a title to learn from")
        index = {t: i for i, t in enumerate(names)}
        self.playlist_name_ = np.array([index.get(t, -1) for t in normal], np.int64)
        has = np.flatnonzero(self.playlist_name_ >= 0)
        group = sp.csr_matrix(
            (np.ones(len(has), np.float32), (self.playlist_name_[has], has)),
            shape=(len(names), matrix.shape[0]),
        )
        counts = sp.csr_matrix(group @ matrix)
        sizes = np.asarray(group.sum(axis=1)).ravel()
        self.name_items_ = sp.csr_matrix(
            sp.diags(np.power(sizes, -self.beta).astype(np.float32)) @ counts
        )
        self.names_ = np.array(names, dtype=np.str_)
        encoder = TfidfEncoder(sublinear_tf=True).fit([title_terms(t) for t in names])
        self.terms_ = np.array(encoder.vocabulary_.terms, dtype=np.str_)
        self.idf_ = encoder.idf_
        self.embed = embed or self.embed
        self.name_vectors_ = self._embed(names) if self.minilm_weight > 0 else None
        self.n_users_, self.n_items_ = matrix.shape
        self._after_load()
        return self

    def _after_load(self) -> None:
        self._tfidf = TfidfEncoder(sublinear_tf=True)
        self._tfidf.vocabulary_ = Vocabulary(self.terms_.tolist())
        self._tfidf.idf_ = self.idf_
        self._tfidf.components_ = None
        self._name_tfidf = self._tfidf.transform(
            [title_terms(t) for t in self.names_.tolist()]
        ).T.tocsr()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embed is None:
            from deepcuts.models.text.sentence import SentenceEncoder

            self.embed = SentenceEncoder().encode
        return np.asarray(self.embed(list(texts)), np.float32)

    def similarity(self, titles: Sequence[str], minilm: np.ndarray | None = None) -> np.ndarray:
        """(len(titles), n_names): similarity of each (raw) title to each training name.

        ``minilm``: bool per title, whether to use the MiniLM view for it (default: all);
        titles without it are compared by TF-IDF alone."""
        self._check_fitted()
        normal = [normalize_title(t) for t in titles]
        sims = np.asarray(
            (self._tfidf.transform([title_terms(t) for t in normal]) @ self._name_tfidf).todense(),
            np.float32,
        )
        if self.name_vectors_ is not None and self.minilm_weight > 0:
            use = np.ones(len(normal), bool) if minilm is None else np.asarray(minilm, bool)
            wanted = [i for i, t in enumerate(normal) if t and use[i]]
            if wanted:
                vectors = self._embed([normal[i] for i in wanted])
                sims[wanted] = (1 - self.minilm_weight) * sims[wanted] + self.minilm_weight * (
                    vectors @ self.name_vectors_.T
                )
        sims[[i for i, t in enumerate(normal) if not t]] = 0
        return np.maximum(sims, 0)

    def name_votes(self, titles: Sequence[str], minilm: np.ndarray | None = None) -> sp.csr_matrix:
        """(len(titles), n_names): the voting weight of each name (its ``neighbours`` best)."""
        sims = self.similarity(titles, minilm)
        k = min(self.neighbours, sims.shape[1])
        ids, vals = top_n(sims, k)
        keep = (ids >= 0) & (vals > 0)
        rows = np.repeat(np.arange(len(titles)), k).reshape(len(titles), k)[keep]
        return sp.csr_matrix(
            (np.power(vals[keep], self.power).astype(np.float32), (rows, ids[keep])),
            shape=sims.shape,
        )

    def score_titles(self, titles: Sequence[str], minilm: np.ndarray | None = None) -> np.ndarray:
        """(len(titles), n_items) float32 (``minilm``: see `similarity`)."""
        return self.score_votes(self.name_votes(titles, minilm))

    def score_votes(self, votes: sp.csr_matrix) -> np.ndarray:
        """(n, n_items) float32: the tracks of the names that `name_votes` gave."""
        return np.asarray((votes @ self.name_items_).todense(), np.float32)

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        self._check_fitted()
        userids = np.atleast_1d(np.asarray(userids, np.int64))
        known = self.known_users(userids)
        titles = ["" for _ in userids]
        for n, u in enumerate(userids):
            if known[n] and self.playlist_name_[u] >= 0:
                titles[n] = str(self.names_[self.playlist_name_[u]])
        return self.score_titles(titles)

    def closest_name(self, title: str, minilm: bool = True) -> str | None:
        """The training name most like ``title`` (None when nothing is alike)."""
        sims = self.similarity([title], np.array([minilm]))[0]
        return str(self.names_[int(np.argmax(sims))]) if sims.size and sims.max() > 0 else None
