"""A convolutional network from log-mel spectrograms to collaborative-filtering vectors.

After van den Oord, Dieleman and Schrauwen, "Deep content-based music recommendation" (NIPS
2013): convolutions over time only (the mel bands are the input channels), max-pooling between
them, global pooling over the whole excerpt by mean, max and L2 norm, then dense layers. The
network is trained to predict the unit-normalised collaborative-filtering vector of an item from
its audio, on items that have plays, so that an item nobody has played yet gets a vector in the
same space as the users (see `deepcuts.models.coldstart`).

Saved as ``.npz`` (weights and per-band input statistics) with JSON metadata; loaded with
``allow_pickle=False``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deepcuts.models.base import ModelFormatError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MIN_FRAMES = 32  # shorter spectrograms are padded (by repetition) to this many frames


def _torch():
    import torch

    return torch


def build_network(n_mels: int, n_out: int, channels: int, hidden: int, dropout: float):
    """The network: (batch, n_mels, frames) -> (batch, n_out); ``.embed`` gives the hidden layer."""
    torch = _torch()
    nn = torch.nn

    class AudioCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = channels
            self.convs = nn.Sequential(
                nn.Conv1d(n_mels, c, 4, padding=2),
                nn.BatchNorm1d(c),
                nn.ReLU(),
                nn.MaxPool1d(4),
                nn.Conv1d(c, c, 4, padding=2),
                nn.BatchNorm1d(c),
                nn.ReLU(),
                nn.MaxPool1d(2),
                nn.Conv1d(c, 2 * c, 4, padding=2),
                nn.BatchNorm1d(2 * c),
                nn.ReLU(),
            )
            self.hidden = nn.Sequential(
                nn.Linear(3 * 2 * c, hidden), nn.ReLU(), nn.Dropout(dropout)
            )
            self.out = nn.Linear(hidden, n_out)

        def pooled(self, x):
            h = self.convs(x)
            return torch.cat(
                [h.mean(dim=2), h.amax(dim=2), h.pow(2).mean(dim=2).add(1e-8).sqrt()], dim=1
            )

        def embed(self, x):
            return self.hidden(self.pooled(x))

        def forward(self, x):
            return self.out(self.embed(x))

    return AudioCNN()


@contextmanager
def _threads(n: int):
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_length(spec: np.ndarray, frames: int, rng: np.random.Generator | None) -> np.ndarray:
    """Crop (randomly with ``rng``, else centred) or repeat-pad a spectrogram to ``frames``."""
    n = spec.shape[1]
    if n < frames:
        return np.tile(spec, (1, -(-frames // n)))[:, :frames]
    start = (n - frames) // 2 if rng is None else int(rng.integers(0, n - frames + 1))
    return spec[:, start : start + frames]


class AudioToCF:
    """Predict collaborative-filtering vectors from log-mel spectrograms.

    Parameters
    ----------
    channels : filters in the first two convolutions (the third has twice as many).
    hidden : units of the dense layer (the embedding `embed` returns).
    epochs, batch_size, lr, weight_decay : Adam training.
    crop_frames : training crops this many frames at random from each excerpt (augmentation).
    dropout : before the output layer.
    validation_fraction : share of items held out to keep the weights of the best epoch.
    threads : torch threads while training and predicting. One by default: on a machine whose
        cores are busy with other work, more threads spin waiting for each other and train up to
        ten times slower; on an idle machine two are about 1.6 times faster.
    random_state : seeds the split, the crops and the initial weights.

    Attributes (after `fit`)
    ------------------------
    n_mels_, n_out_ : input bands and output dimension.
    band_mean_, band_std_ : float32 (n_mels,) input standardisation.
    history_ : list of (epoch, train loss, validation cosine).

    Example
    -------
    >>> model = AudioToCF(epochs=5).fit(spectrograms, item_factors[warm])   # doctest: +SKIP
    >>> predicted = model.predict(spectrograms_of_new_tracks)                # (n, d) unit rows
    """

    name = "audio-cnn"
    params = ("channels", "hidden", "epochs", "batch_size", "lr", "weight_decay", "crop_frames",
              "dropout", "validation_fraction", "threads", "random_state")  # fmt: skip

    def __init__(
        self,
        channels: int = 64,
        hidden: int = 256,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        crop_frames: int = 128,
        dropout: float = 0.2,
        validation_fraction: float = 0.1,
        threads: int = 1,
        random_state: int = 0,
    ):
        self.channels = channels
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.crop_frames = crop_frames
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.threads = threads
        self.random_state = random_state

    # -- training -----------------------------------------------------------------------
    def fit(self, log_mels: Sequence[np.ndarray], targets: np.ndarray) -> AudioToCF:
        """Learn from spectrograms (each (n_mels, frames)) and CF vectors (n, d), row by row."""
        torch = _torch()
        targets = np.asarray(targets, np.float32)
        if len(log_mels) != len(targets):
            raise ValueError(f"{len(log_mels)} spectrograms for {len(targets)} target vectors")
        if len(log_mels) < 2:
            raise ValueError("AudioToCF needs at least 2 items to train on")
        if self.crop_frames < MIN_FRAMES:
            raise ValueError(f"crop_frames must be at least {MIN_FRAMES}, not {self.crop_frames}")
        n_mels = {m.shape[0] for m in log_mels}
        if len(n_mels) != 1:
            raise ValueError(f"spectrograms have different numbers of mel bands: {sorted(n_mels)}")
        self.n_mels_ = n_mels.pop()
        self.n_out_ = targets.shape[1]
        frames = np.concatenate([m for m in log_mels], axis=1)
        self.band_mean_ = frames.mean(axis=1).astype(np.float32)
        self.band_std_ = np.maximum(frames.std(axis=1), 1e-3).astype(np.float32)
        norms = np.linalg.norm(targets, axis=1, keepdims=True)
        unit = targets / np.where(norms > 0, norms, 1)

        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(targets))
        n_val = int(round(self.validation_fraction * len(targets))) if len(targets) >= 20 else 0
        val, train = order[:n_val], order[n_val:]
        torch.manual_seed(self.random_state)
        with _threads(min(self.threads, 2)):
            net = build_network(self.n_mels_, self.n_out_, self.channels, self.hidden, self.dropout)
            self.network_ = net
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            y_all = torch.from_numpy(unit)
            best, best_state = -np.inf, None
            self.history_: list[tuple[int, float, float]] = []
            for epoch in range(self.epochs):
                net.train()
                total, seen = 0.0, 0
                perm = train[rng.permutation(len(train))]
                for start in range(0, len(perm), self.batch_size):
                    idx = perm[start : start + self.batch_size]
                    if len(idx) < 2:
                        continue  # batch norm needs two
                    x = self._batch([log_mels[i] for i in idx], self.crop_frames, rng)
                    pred = net(x)
                    loss = (
                        1 - torch.nn.functional.cosine_similarity(pred, y_all[idx], dim=1)
                    ).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                    seen += len(idx)
                score = float("nan")
                if len(val):
                    pred = self._predict_net([log_mels[i] for i in val])
                    score = float(np.mean(np.sum(pred * unit[val], axis=1)))
                    if score > best:
                        best = score
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                self.history_.append((epoch, total / max(seen, 1), score))
                log.debug(
                    "audio cnn epoch %d: loss %.4f, validation cosine %.4f",
                    epoch,
                    total / max(seen, 1),
                    score,
                )
            if best_state is not None:
                net.load_state_dict(best_state)
        net.eval()
        return self

    def _batch(self, specs: Sequence[np.ndarray], frames: int, rng: np.random.Generator | None):
        torch = _torch()
        x = np.stack([_fit_length(s, frames, rng) for s in specs])
        x = (x - self.band_mean_[None, :, None]) / self.band_std_[None, :, None]
        return torch.from_numpy(x.astype(np.float32))

    def _run(self, log_mels: Sequence[np.ndarray], method: str) -> np.ndarray:
        """Apply the network to every spectrogram at its own length (batched by length)."""
        torch = _torch()
        net = self._fitted()
        net.eval()
        lengths = np.array([max(m.shape[1], MIN_FRAMES) for m in log_mels])
        out: np.ndarray | None = None
        with _threads(min(self.threads, 2)), torch.no_grad():
            for length in np.unique(lengths):
                idx = np.flatnonzero(lengths == length)
                for start in range(0, len(idx), 64):
                    chunk = idx[start : start + 64]
                    x = self._batch([log_mels[i] for i in chunk], int(length), None)
                    y = getattr(net, method)(x).numpy()
                    if out is None:
                        out = np.zeros((len(log_mels), y.shape[1]), np.float32)
                    out[chunk] = y
        return out if out is not None else np.zeros((0, self.n_out_), np.float32)

    def _predict_net(self, log_mels: Sequence[np.ndarray]) -> np.ndarray:
        was_training = self._fitted().training
        pred = self._run(log_mels, "forward")
        self.network_.train(was_training)
        norms = np.linalg.norm(pred, axis=1, keepdims=True)
        return pred / np.where(norms > 0, norms, 1)

    def predict(self, log_mels: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted unit CF vectors, float32 (n, n_out_)."""
        return self._predict_net(log_mels)

    def embed(self, log_mels: Sequence[np.ndarray]) -> np.ndarray:
        """The dense layer's activations, float32 (n, hidden): an audio embedding."""
        return self._run(log_mels, "embed")

    def _fitted(self):
        net = getattr(self, "network_", None)
        if net is None:
            raise RuntimeError("AudioToCF is not fitted: call fit() or load() first")
        return net

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        net = self._fitted()
        arrays = {f"w:{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "params": {p: getattr(self, p) for p in self.params},
            "n_mels": int(self.n_mels_),
            "n_out": int(self.n_out_),
        }
        np.savez(
            Path(path),
            __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            band_mean=self.band_mean_,
            band_std=self.band_std_,
            **arrays,
        )

    @classmethod
    def load(cls, path: str | Path) -> AudioToCF:
        torch = _torch()
        with np.load(Path(path), allow_pickle=False) as data:
            try:
                meta: dict[str, Any] = json.loads(bytes(data["__meta__"]).decode())
            except KeyError as exc:
                raise ModelFormatError(f"{path}: not a deepcuts model file") from exc
            if meta.get("model") != cls.name:
                raise ModelFormatError(f"{path}: holds a {meta.get('model')} model, not {cls.name}")
            if meta.get("format_version") != FORMAT_VERSION:
                raise ModelFormatError(
                    f"{path}: {cls.name} format {meta.get('format_version')}, this deepcuts reads {FORMAT_VERSION}"
                )
            model = cls(**meta["params"])
            model.n_mels_, model.n_out_ = meta["n_mels"], meta["n_out"]
            model.band_mean_, model.band_std_ = data["band_mean"], data["band_std"]
            state = {
                k[2:]: torch.from_numpy(np.array(data[k])) for k in data.files if k.startswith("w:")
            }
        net = build_network(
            model.n_mels_, model.n_out_, model.channels, model.hidden, model.dropout
        )
        net.load_state_dict(state)
        net.eval()
        model.network_ = net
        return model
