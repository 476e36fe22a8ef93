"""Item vectors learned like word vectors: playlists and listening sessions as sentences of items.

As Spotify learns track vectors from playlists: items that appear near each other in the same
playlists and sessions get similar vectors (word2vec, skip-gram with negative sampling, by
gensim). A sentence is a playlist in its order, or a listening session (a listener's streams
with no gap over ``session_gap_s``); for sources with play counts only (no times), a listener's
whole history, most played first, is one sentence.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepcuts.models.base import ModelFormatError
from deepcuts.store import Store

FORMAT_VERSION = 1
MIN_STREAM_MS = 30_000  # a stream shorter than this is a skip, not a play


def item_sentences(
    store: Store, session_gap_s: int = 1800, max_length: int = 200
) -> list[list[str]]:
    """Playlists and listening sessions as lists of item ids (only sentences of 2 or more)."""
    conn = store.conn
    sentences: list[list[str]] = []
    rows = conn.execute(
        "SELECT list(item_id ORDER BY position) FROM playlist_items GROUP BY playlist_id ORDER BY playlist_id"
    ).fetchall()
    sentences.extend(r[0] for r in rows)
    rows = conn.execute(
        f"""
        WITH plays AS (
            SELECT user_id, item_id, played_at,
                   epoch(played_at) - lag(epoch(played_at)) OVER (PARTITION BY user_id ORDER BY played_at) AS gap
            FROM listens
            WHERE played_at IS NOT NULL AND (ms_played IS NULL OR ms_played >= {MIN_STREAM_MS})
        ), sessions AS (
            SELECT user_id, item_id, played_at,
                   sum(CASE WHEN gap IS NULL OR gap > {int(session_gap_s)} THEN 1 ELSE 0 END)
                       OVER (PARTITION BY user_id ORDER BY played_at ROWS UNBOUNDED PRECEDING) AS session
            FROM plays
        )
        SELECT list(item_id ORDER BY played_at) FROM sessions GROUP BY user_id, session
        ORDER BY user_id, session
        """
    ).fetchall()
    sentences.extend(r[0] for r in rows)
    rows = conn.execute(
        """
        SELECT list(item_id ORDER BY plays DESC, item_id) FROM (
            SELECT user_id, item_id, sum(coalesce(play_count, 1)) AS plays FROM listens
            WHERE played_at IS NULL GROUP BY user_id, item_id)
        GROUP BY user_id ORDER BY user_id
        """
    ).fetchall()
    sentences.extend(r[0] for r in rows)
    out = []
    for s in sentences:
        for start in range(0, len(s), max_length):
            chunk = s[start : start + max_length]
            if len(chunk) >= 2:
                out.append(chunk)
    return out


def _stable_hash(text: str) -> int:
    """gensim seeds each vector with a hash of its key; Python's hash() changes per process."""
    return zlib.crc32(text.encode())


class Item2Vec:
    """word2vec over sentences of item ids.

    Parameters
    ----------
    vector_size, window, min_count, negative, epochs, sample : as in gensim's Word2Vec
        (skip-gram); ``window`` is large because a playlist is a bag more than a sequence.
    workers : threads; 1 makes the result deterministic for a ``random_state``.

    Attributes (after `fit`)
    ------------------------
    keys_ : str array (n,) item ids; vectors_ : float32 (n, vector_size).
    """

    name = "item2vec"
    params = (
        "vector_size",
        "window",
        "min_count",
        "negative",
        "epochs",
        "sample",
        "workers",
        "random_state",
    )

    def __init__(
        self,
        vector_size: int = 64,
        window: int = 10,
        min_count: int = 1,
        negative: int = 10,
        epochs: int = 10,
        sample: float = 1e-3,
        workers: int = 1,
        random_state: int = 0,
    ):
        self.vector_size = vector_size
        self.window = window
        self.min_count = min_count
        self.negative = negative
        self.epochs = epochs
        self.sample = sample
        self.workers = workers
        self.random_state = random_state

    def fit(self, sentences: Sequence[Sequence[str]]) -> Item2Vec:
        from gensim.models import Word2Vec

        sentences = [list(map(str, s)) for s in sentences if len(s) >= 2]
        if not sentences:
            raise ValueError("Item2Vec needs at least one sentence of two or more items")
        model = Word2Vec(
            sentences,
            vector_size=self.vector_size,
            window=self.window,
            min_count=self.min_count,
            sg=1,
            negative=self.negative,
            epochs=self.epochs,
            sample=self.sample,
            workers=self.workers,
            seed=self.random_state,
            hashfxn=_stable_hash,
        )
        self.keys_ = np.array(model.wv.index_to_key, dtype=np.str_)
        self.vectors_ = np.asarray(model.wv.vectors, np.float32)
        return self

    def vectors_for(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors float32 (n, d) with zero rows for unknown items, known bool (n,))."""
        index = {k: i for i, k in enumerate(self.keys_)}
        rows = np.array([index.get(str(i), -1) for i in item_ids])
        known = rows >= 0
        out = np.zeros((len(rows), self.vectors_.shape[1]), np.float32)
        out[known] = self.vectors_[rows[known]]
        return out, known

    def save(self, path: str | Path) -> None:
        meta = {"format_version": FORMAT_VERSION, "model": self.name,
                "params": {p: getattr(self, p) for p in self.params}}  # fmt: skip
        np.savez(Path(path), __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 keys=self.keys_, vectors=self.vectors_)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> Item2Vec:
        with np.load(Path(path), allow_pickle=False) as data:
            try:
                meta = json.loads(bytes(data["__meta__"]).decode())
            except KeyError as exc:
                raise ModelFormatError(f"{path}: not a deepcuts model file") from exc
            if meta.get("model") != cls.name or meta.get("format_version") != FORMAT_VERSION:
                raise ModelFormatError(
                    f"{path}: not an {cls.name} model of format {FORMAT_VERSION}"
                )
            model = cls(**meta["params"])
            model.keys_, model.vectors_ = data["keys"], data["vectors"]
        return model
