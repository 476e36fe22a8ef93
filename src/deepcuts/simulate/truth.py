"""The world's ground truth: true tastes and vectors, and the true chance that a play streams.

The simulator writes these beside the native files (``<out>/truth/``) so that models and
policies trained on the simulated events can be measured against what was really going on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TRUTH_DIR = "truth"


@dataclass(frozen=True)
class StreamModel:
    """Whether a play becomes a stream (>= 30 s) or a skip.

    ``P(stream | user u, track t) = sigmoid(scale * <u, t> + bias + popularity_weight * z(t))``
    where ``<u, t>`` is the inner product of the true latent vectors and
    ``z(t) = (log popularity(t) - log_popularity_mean) / log_popularity_std`` is the track's
    standardised log popularity.
    """

    scale: float = 4.0
    bias: float = -1.0
    popularity_weight: float = 0.25
    log_popularity_mean: float = 0.0
    log_popularity_std: float = 1.0

    def probability(self, affinity: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        z = (np.log(popularity) - self.log_popularity_mean) / self.log_popularity_std
        logit = self.scale * affinity + self.bias + self.popularity_weight * z
        return 1.0 / (1.0 + np.exp(-logit))


@dataclass(frozen=True)
class Truth:
    """The ground truth of a simulated world, as arrays.

    Row i of every ``user_*`` array is user ``user_ids[i]``, row j of every ``track_*`` array
    is track ``track_ids[j]``; ids are sorted, so ``np.searchsorted(truth.user_ids, ids)`` maps
    ids to rows. Genre columns follow ``genres``.

    Attributes: ``genres`` (G,), ``centroids`` (G, D), ``user_ids`` (U,), ``user_country``
    (U,), ``user_taste`` (U, G) genre weights summing to 1, ``user_vectors`` (U, D),
    ``user_weekly_plays`` (U,) expected plays per week, ``track_ids`` (T,),
    ``track_artist_ids`` (T,), ``track_genre`` (T,) index into
    ``genres``, ``track_popularity`` (T,) summing to 1, ``track_vectors`` (T, D),
    ``track_bpm`` (T,), ``track_key`` (T,) pitch class of the root (0 = C),
    ``artist_ids`` (A,), ``artist_vectors`` (A, D), ``stream_model``, ``params`` (world.json).
    """

    genres: list[str]
    centroids: np.ndarray
    user_ids: np.ndarray
    user_country: np.ndarray
    user_taste: np.ndarray
    user_vectors: np.ndarray
    user_weekly_plays: np.ndarray
    track_ids: np.ndarray
    track_artist_ids: np.ndarray
    track_genre: np.ndarray
    track_popularity: np.ndarray
    track_vectors: np.ndarray
    track_bpm: np.ndarray
    track_key: np.ndarray
    artist_ids: np.ndarray
    artist_vectors: np.ndarray
    stream_model: StreamModel
    params: dict


def true_stream_probability(truth: Truth, user_idx, track_idx) -> np.ndarray:
    """The true probability that a play of ``track_idx`` by ``user_idx`` lasts 30 s or more.

    Indices are rows of the truth arrays and broadcast against each other: equal shapes give
    one probability per pair; ``users[:, None]`` and ``tracks[None, :]`` give a matrix.
    """
    users = truth.user_vectors[np.asarray(user_idx)]
    tracks = truth.track_vectors[np.asarray(track_idx)]
    affinity = np.sum(users.astype(np.float64) * tracks, axis=-1)
    return truth.stream_model.probability(affinity, truth.track_popularity[np.asarray(track_idx)])


def vector_column(matrix: np.ndarray) -> pa.Array:
    """A (n, d) matrix as a list<float> column, one list per row."""
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.astype(np.float32).ravel()))


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    flat = column.combine_chunks().flatten().to_numpy()
    return flat.reshape(len(column), -1)


def write_truth(out_dir: Path, tables: dict[str, pa.Table], genres: dict, world: dict) -> None:
    """Write ``<out>/truth/``: the parquet tables given, ``genres.json`` and ``world.json``."""
    truth_dir = out_dir / TRUTH_DIR
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, truth_dir / f"{name}.parquet")
    (truth_dir / "genres.json").write_text(json.dumps(genres, indent=1) + "\n")
    (truth_dir / "world.json").write_text(json.dumps(world, indent=1) + "\n")


def load_truth(out_dir: Path | str) -> Truth:
    """Read the ground truth a simulation wrote under ``out_dir``."""
    truth_dir = Path(out_dir) / TRUTH_DIR
    genres = json.loads((truth_dir / "genres.json").read_text())
    world = json.loads((truth_dir / "world.json").read_text())
    users = pq.read_table(truth_dir / "user_taste.parquet")
    tracks = pq.read_table(truth_dir / "track_truth.parquet")
    artists = pq.read_table(truth_dir / "artist_truth.parquet")
    names = genres["genres"]
    genre_index = {g: i for i, g in enumerate(names)}
    return Truth(
        genres=names,
        centroids=np.asarray(genres["centroids"], dtype=np.float32),
        user_ids=users.column("user_id").to_numpy(zero_copy_only=False),
        user_country=users.column("country").to_numpy(zero_copy_only=False),
        user_taste=_matrix(users.column("genre_taste")),
        user_vectors=_matrix(users.column("vector")),
        user_weekly_plays=users.column("weekly_plays").to_numpy(),
        track_ids=tracks.column("track_id").to_numpy(zero_copy_only=False),
        track_artist_ids=tracks.column("artist_id").to_numpy(zero_copy_only=False),
        track_genre=np.array([genre_index[g] for g in tracks.column("genre").to_pylist()]),
        track_popularity=tracks.column("popularity").to_numpy(),
        track_vectors=_matrix(tracks.column("vector")),
        track_bpm=tracks.column("bpm").to_numpy(),
        track_key=tracks.column("key").to_numpy(),
        artist_ids=artists.column("artist_id").to_numpy(zero_copy_only=False),
        artist_vectors=_matrix(artists.column("vector")),
        stream_model=StreamModel(**world["stream_model"]),
        params=world,
    )
