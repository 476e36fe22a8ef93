"""Playlist continuation: the playlist models blended, with weights learnt on held-out playlists.

The parts, each scoring every track for a playlist (its seed tracks in order, and its title):

- ``item``: track-track co-occurrence (`PlaylistCF` kind "item");
- ``playlist``: similar playlists (`PlaylistCF` kind "playlist");
- ``sequence``: what follows the last tracks (`PlaylistSequence`);
- ``title``: playlists named like this one (`PlaylistTitle`);
- ``artist``: the seed tracks' artists' other tracks, the more playlists hold them the higher;
- ``popularity``: how many playlists hold the track (fills lists that nothing else fills);
- ``als``: matrix factorisation (the project's `ALS` on the binary playlist x track matrix,
  64 factors, λ = 1, confidence 10, chosen on held-out training playlists), the playlist folded
  in from its seed tracks; a playlist with a title alone is folded in from the ``TITLE_SEEDS``
  best tracks of its title part, weighed by their title score, so that the factors generalise
  what playlists named alike hold.

The title part compares titles by MiniLM too only for playlists of fewer than 10 seed tracks:
with more, the tracks say much more than the title, and encoding a title costs more than all
the rest of a continuation. Each part's row is divided by its largest value (negative ALS
scores are dropped first), and the blend is their weighted sum. The weights depend on how many
seed tracks a playlist has (0, 1, 2-9, 10 or more: a title alone needs the title model, 25
tracks need it much less) and are learnt in `fit`: ``validation`` training playlists are held
out, the parts are fitted on the others, the held-out playlists are cut into seeds and hidden tracks as the RecSys Challenge 2018 cut its playlists (title only,
title and first track, first 5 with and without title, first 10, first 25, 25 at random), and
coordinate ascent over a grid finds the weights with the best NDCG@500 of the hidden tracks
per seed-count bucket (a bucket with fewer than 30 held-out playlists keeps default weights).
The parts are then fitted again on every training playlist.

Tracks on no training playlist (cold tracks: new releases in the catalogue) come in through
content vectors (text and audio, `deepcuts.models.coldstart.content_vectors`): a cold track
takes the blended score of its ``cold_neighbours`` most similar warm tracks (weights
``similarity ** 4``), times ``cold_weight`` and its best similarity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepcuts.models.base import Recommender, top_n
from deepcuts.models.cf._util import check_int, check_matrix, positives
from deepcuts.models.cf.als import ALS
from deepcuts.models.playlist.cf import PlaylistCF
from deepcuts.models.playlist.sequence import PlaylistSequence
from deepcuts.models.playlist.title import Embed, PlaylistTitle
from deepcuts.signals.side import SideInfo

log = logging.getLogger(__name__)

PARTS = ("item", "playlist", "sequence", "title", "artist", "popularity", "als")
BUCKETS = ("0 tracks", "1 track", "2-9 tracks", "10+ tracks")
GRID = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SCENARIOS = (  # (seed tracks, where, with title): the challenge's ways of cutting a playlist
    (0, "first", True),
    (1, "first", True),
    (5, "first", False),
    (5, "first", True),
    (10, "first", True),
    (25, "first", True),
    (25, "random", True),
)
MINILM_BELOW = 10  # playlists with this many seed tracks compare titles by TF-IDF alone
TITLE_SEEDS = 50  # a title-only playlist is folded into the ALS part from its title's best tracks
MIN_BUCKET = 30  # held-out playlists a bucket needs to learn its own weights
DEFAULT_WEIGHTS = np.array([1.0, 1.0, 0.3, 1.0, 0.3, 0.01, 0.3], np.float32)


def seed_bucket(n_seeds: int | np.ndarray) -> np.ndarray:
    """The weight bucket of a number of seed tracks: 0, 1, 2-9, 10+ -> 0, 1, 2, 3."""
    n = np.asarray(n_seeds)
    return np.select([n <= 0, n == 1, n < 10], [0, 1, 2], 3).astype(np.int64)


@dataclass
class HeldOut:
    """Playlists cut into seeds (a `playlist_matrix` of the seeds), titles and hidden tracks."""

    rows: sp.csr_matrix
    titles: list[str]
    truth: list[np.ndarray]


def cut_playlist(
    seq: np.ndarray, n_seeds: int, where: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(seed positions, hidden tracks) of a playlist: its first ``n_seeds`` tracks or
    ``n_seeds`` at random positions (where a track repeats among them, its first position
    only); the hidden tracks are the distinct others."""
    if where == "random":
        positions = np.sort(rng.choice(len(seq), size=min(n_seeds, len(seq)), replace=False))
    else:
        positions = np.arange(min(n_seeds, len(seq)))
    _, first = np.unique(seq[positions], return_index=True)
    positions = positions[np.sort(first)]
    seeds = set(seq[positions].tolist())
    hidden = np.array([t for t in dict.fromkeys(seq.tolist()) if t not in seeds], np.int64)
    return positions, hidden


class PlaylistContinuation(Recommender):
    """Continues playlists from their tracks and titles (see the module docstring).

    Parameters
    ----------
    validation : training playlists held out to learn the blend (0: fixed default weights).
    min_length : a held-out playlist has at least this many tracks.
    cold_weight : scale of the scores of cold tracks.
    cold_neighbours : warm tracks each cold track borrows its score from.
    minilm_weight : share of MiniLM in the title model (0: TF-IDF only).
    als_factors, als_regularization, als_alpha, als_iterations : the ALS part (`ALS`'s
        factors, regularization, alpha and iterations; ``als_factors=0``: no ALS part).
    random_state : seeds the held-out choice and the random cuts.

    Attributes
    ----------
    item_, playlist_, sequence_, title_, als_ : the fitted parts (``als_`` None when
        ``als_factors=0``).
    weights_ : float32 (4, 7), the blend weights per seed bucket (rows) and part (`PARTS`).
    popularity_ : float32 (n_items,), playlists per track.
    artists_ : int64 (n_items,), each track's artist (-1: unknown), or None.
    cold_map_ : CSR float32 (n_items, n_items) or None, each cold track's warm neighbours.
    validation_ndcg_ : float32 (4,), the held-out NDCG@500 the learnt weights reached.
    """

    name = "playlist-continuation"
    params = (
        "validation",
        "min_length",
        "cold_weight",
        "cold_neighbours",
        "minilm_weight",
        "als_factors",
        "als_regularization",
        "als_alpha",
        "als_iterations",
        "random_state",
    )
    fitted = ("weights_", "popularity_", "artists_", "cold_map_", "validation_ndcg_")
    components = ("item_", "playlist_", "sequence_", "title_", "als_")

    def __init__(
        self,
        validation: int = 500,
        min_length: int = 30,
        cold_weight: float = 0.5,
        cold_neighbours: int = 20,
        minilm_weight: float = 0.5,
        als_factors: int = 64,
        als_regularization: float = 1.0,
        als_alpha: float = 10.0,
        als_iterations: int = 15,
        random_state: int = 0,
    ):
        self.validation = validation
        self.min_length = min_length
        self.cold_weight = cold_weight
        self.cold_neighbours = cold_neighbours
        self.minilm_weight = minilm_weight
        self.als_factors = als_factors
        self.als_regularization = als_regularization
        self.als_alpha = als_alpha
        self.als_iterations = als_iterations
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        user_items: sp.csr_matrix,
        side: SideInfo | None = None,
        *,
        titles: Sequence[str] | None = None,
        content: np.ndarray | None = None,
        artists: np.ndarray | None = None,
        embed: Embed | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> PlaylistContinuation:
        """``user_items``: a `playlist_matrix` (values: 1 + position); ``titles``: one per
        row; ``content``: (n_items, d) unit content vectors, zero rows where none;
        ``artists``: (n_items,) each track's artist number, -1 where unknown."""
        check_int("validation", self.validation, minimum=0)
        check_int("cold_neighbours", self.cold_neighbours)
        check_int("als_factors", self.als_factors, minimum=0)
        matrix = check_matrix(user_items)
        titles = list(titles) if titles is not None else [""] * matrix.shape[0]
        if len(titles) != matrix.shape[0]:
            raise ValueError(f"{len(titles)} titles for {matrix.shape[0]} playlists")
        embed = _memo(embed) if embed is not None or self.minilm_weight > 0 else None
        say = progress or (lambda _: None)
        if artists is not None and len(artists) != matrix.shape[1]:
            raise ValueError(f"{len(artists)} artists for {matrix.shape[1]} tracks")
        self.artists_ = None if artists is None else np.asarray(artists, np.int64)
        self.weights_ = np.tile(DEFAULT_WEIGHTS, (len(BUCKETS), 1))
        self.validation_ndcg_ = np.full(len(BUCKETS), np.nan, np.float32)
        held = self._held_out(matrix, titles) if self.validation else None
        if held is not None:
            keep, val = held
            say(f"learning the blend on {len(val.titles)} held-out playlists")
            self._fit_parts(matrix[keep], [titles[i] for i in keep], embed)
            self._learn_weights(val)
        say("fitting the playlist models")
        self._fit_parts(matrix, titles, embed)
        self.cold_map_ = self._cold_map(content) if content is not None else None
        self.n_users_, self.n_items_ = matrix.shape
        return self

    def _fit_parts(self, matrix: sp.csr_matrix, titles: list[str], embed: Embed | None) -> None:
        self.item_ = PlaylistCF("item").fit(matrix)
        self.playlist_ = PlaylistCF("playlist").fit(matrix)
        self.sequence_ = PlaylistSequence().fit(matrix)
        if self.als_factors > 0:
            self.als_ = ALS(
                factors=self.als_factors,
                regularization=self.als_regularization,
                alpha=self.als_alpha,
                iterations=self.als_iterations,
                random_state=self.random_state,
            ).fit(positives(matrix))
        else:
            self.als_ = None
        if any(t.strip() for t in titles):
            self.title_ = PlaylistTitle(minilm_weight=self.minilm_weight).fit(
                matrix, titles=titles, embed=embed
            )
        else:
            self.title_ = None
        counts = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float32)
        self.popularity_ = counts
        self._after_load()

    def _after_load(self) -> None:
        self._artist_map = None
        if self.artists_ is not None and (self.artists_ >= 0).any():
            known = np.flatnonzero(self.artists_ >= 0)
            n_artists = int(self.artists_.max()) + 1
            member = sp.csr_matrix(
                (np.ones(len(known), np.float32), (known, self.artists_[known])),
                shape=(len(self.artists_), n_artists),
            )
            weight = np.log1p(self.popularity_).astype(np.float32)
            self._artist_map = (member, sp.csr_matrix(member.T @ sp.diags(weight)))

    def _held_out(
        self, matrix: sp.csr_matrix, titles: list[str]
    ) -> tuple[np.ndarray, HeldOut] | None:
        lengths = np.diff(matrix.indptr)
        eligible = np.flatnonzero(lengths >= self.min_length)
        n_val = min(self.validation, len(eligible) // 2)
        if n_val < len(SCENARIOS):
            log.info(
                "too few long playlists (%d) to learn the blend: default weights", len(eligible)
            )
            return None
        rng = np.random.default_rng(self.random_state)
        chosen = np.sort(rng.choice(eligible, n_val, replace=False))
        keep = np.setdiff1d(np.arange(matrix.shape[0]), chosen)
        rows, cols, vals, val_titles, truth = [], [], [], [], []
        from deepcuts.signals.playlists import ordered_row

        for n, p in enumerate(chosen):
            n_seeds, where, with_title = SCENARIOS[n % len(SCENARIOS)]
            seq = ordered_row(matrix[p])
            positions, hidden = cut_playlist(seq, n_seeds, where, rng)
            rows.append(np.full(len(positions), n))
            cols.append(seq[positions])
            vals.append(positions.astype(np.float32) + 1)
            val_titles.append(titles[p] if with_title else "")
            truth.append(hidden)
        seeds = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_val, matrix.shape[1]),
            dtype=np.float32,
        )
        return keep, HeldOut(seeds, val_titles, truth)

    def _learn_weights(
        self, val: HeldOut, n: int = 500, per_part: int = 1000, chunk: int = 64
    ) -> None:
        """Coordinate ascent over `GRID` per bucket, on each held-out playlist's candidates
        (the union of every part's best ``per_part``)."""
        feats, hits, sizes = [], [], []
        for start in range(0, val.rows.shape[0], chunk):
            stop = min(start + chunk, val.rows.shape[0])
            parts = self.parts(val.rows[start:stop], val.titles[start:stop])
            seeds = val.rows[start:stop]
            for r in range(stop - start):
                stack = np.stack([p[r] for p in parts])
                stack[:, seeds.indices[seeds.indptr[r] : seeds.indptr[r + 1]]] = 0
                top = np.unique(np.argpartition(-stack, per_part, axis=1)[:, :per_part])
                top = top[stack[:, top].max(axis=0) > 0]
                feats.append(stack[:, top].T)
                hits.append(np.isin(top, val.truth[start + r]))
                sizes.append(len(val.truth[start + r]))
        buckets = seed_bucket(np.diff(val.rows.indptr))
        discount = 1.0 / np.log2(np.arange(2, n + 2))
        ideal = np.concatenate([[0.0], np.cumsum(discount)])

        def ndcg(weights: np.ndarray, members: np.ndarray) -> float:
            total = 0.0
            for i in members:
                order = np.argsort(-(feats[i] @ weights), kind="stable")[:n]
                total += (
                    float(discount[: len(order)][hits[i][order]].sum()) / ideal[min(sizes[i], n)]
                )
            return total / max(len(members), 1)

        for b in range(len(BUCKETS)):
            members = np.flatnonzero((buckets == b) & (np.array(sizes) > 0))
            if len(members) < MIN_BUCKET:  # too few to learn from without fitting noise
                log.info(
                    "blend for %s: %d held-out playlists, default weights", BUCKETS[b], len(members)
                )
                continue
            weights = self.weights_[b].astype(np.float64).copy()
            best = ndcg(weights, members)
            for _ in range(3):
                improved = False
                for part in range(len(PARTS)):
                    for value in GRID:
                        trial = weights.copy()
                        trial[part] = value
                        if not trial.any():
                            continue
                        got = ndcg(trial, members)
                        if got > best + 1e-6:
                            best, weights, improved = got, trial, True
                if not improved:
                    break
            self.weights_[b] = weights
            self.validation_ndcg_[b] = best
            log.info(
                "blend for %s: %s (held-out NDCG@%d %.4f)",
                BUCKETS[b],
                dict(zip(PARTS, weights.round(3).tolist(), strict=True)),
                n,
                best,
            )

    def _cold_map(self, content: np.ndarray) -> sp.csr_matrix | None:
        content = np.asarray(content, np.float32)
        if content.shape[0] != self.popularity_.shape[0]:
            raise ValueError(
                f"content has {content.shape[0]} rows for {self.popularity_.shape[0]} tracks"
            )
        has = np.abs(content).sum(axis=1) > 0
        warm = np.flatnonzero((self.popularity_ > 0) & has)
        cold = np.flatnonzero((self.popularity_ == 0) & has)
        if not len(cold) or not len(warm):
            return None
        sims = content[cold] @ content[warm].T
        k = min(self.cold_neighbours, len(warm))
        ids, vals = top_n(sims, k)
        vals = np.maximum(vals, 0)
        weights = np.power(vals, 4)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        weights *= vals.max(axis=1, keepdims=True)  # a cold track like nothing stays low
        rows = np.repeat(cold, k)
        n_items = len(self.popularity_)
        return sp.csr_matrix(
            (weights.ravel().astype(np.float32), (rows, warm[ids.ravel()])),
            shape=(n_items, n_items),
        )

    # -- scoring ---------------------------------------------------------------------------
    def parts(self, rows: sp.csr_matrix, titles: Sequence[str]) -> list[np.ndarray]:
        """Each part's scores (n, n_items), each row divided by its largest value."""
        rows = rows.tocsr()
        n = rows.shape[0]
        empty = np.diff(rows.indptr) == 0
        out = []
        for name in PARTS:
            if name == "popularity":
                s = np.tile(self.popularity_, (n, 1))
            elif name == "artist":
                s = np.zeros((n, rows.shape[1]), np.float32)
                if self._artist_map is not None:
                    member, spread = self._artist_map
                    share = sp.csr_matrix(
                        sp.diags(1.0 / np.maximum(np.diff(rows.indptr), 1))
                        @ positives(rows)
                        @ member
                    )
                    s = np.asarray((share @ spread).todense(), np.float32)
            elif name == "title":
                if self.title_ is None:
                    s = np.zeros((n, rows.shape[1]), np.float32)
                else:  # MiniLM only where the title matters: short playlists (see MINILM_BELOW)
                    s = self.title_.score_titles(list(titles), np.diff(rows.indptr) < MINILM_BELOW)
            else:
                part = getattr(self, name + "_")
                s = np.zeros((n, rows.shape[1]), np.float32)
                if name == "als" and part is not None:
                    s = self._als_scores(rows, out[PARTS.index("title")])
                elif part is not None and (~empty).any():
                    s[~empty] = part.score(
                        np.full((~empty).sum(), -1), rows[np.flatnonzero(~empty)]
                    )
            top = s.max(axis=1, keepdims=True)
            out.append(np.divide(s, top, out=np.zeros_like(s), where=top > 0))
        return out

    def _als_scores(self, rows: sp.csr_matrix, title: np.ndarray) -> np.ndarray:
        """The ALS part: each playlist folded in from its seed tracks (binary), or, for a
        playlist with a title alone, from the ``TITLE_SEEDS`` best tracks of its title part
        (confidence: their title score, the best 1); negative scores dropped."""
        query = positives(rows)
        empty = np.flatnonzero((np.diff(query.indptr) == 0) & (title.max(axis=1) > 0))
        if len(empty):
            ids, vals = top_n(title[empty], TITLE_SEEDS)
            keep = (ids >= 0) & (vals > 0)
            pseudo = sp.csr_matrix(
                (vals[keep], (np.repeat(empty, ids.shape[1]).reshape(ids.shape)[keep], ids[keep])),
                shape=query.shape,
                dtype=np.float32,
            )
            query = sp.csr_matrix(query + pseudo)
        s = self.als_.score(np.full(query.shape[0], -1), query)  # -1: new rows, folded in
        return np.maximum(s, 0, out=s)

    def blend(self, parts: list[np.ndarray], n_seeds: np.ndarray) -> np.ndarray:
        """The weighted sum of the parts, with cold tracks scored from their neighbours."""
        weights = self.weights_[seed_bucket(n_seeds)]  # (n, parts)
        total = np.zeros_like(parts[0])
        for k, part in enumerate(parts):
            total += weights[:, k : k + 1] * part
        if self.cold_map_ is not None:
            total += self.cold_weight * np.asarray((self.cold_map_ @ total.T).T, np.float32)
        return total

    def score_playlists(self, rows: sp.csr_matrix, titles: Sequence[str]) -> np.ndarray:
        """(n, n_items) blended scores of playlists given as seed rows and titles."""
        self._check_fitted()
        rows = positive_rows(rows)
        return self.blend(self.parts(rows, titles), np.diff(rows.indptr))

    def recommend_playlists(
        self, rows: sp.csr_matrix, titles: Sequence[str], n: int = 500, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), (len(rows), n): the best tracks per playlist, seed tracks excluded;
        padded with -1 where fewer score."""
        rows = positive_rows(rows)
        ids_out, scores_out = [], []
        for start in range(0, rows.shape[0], batch_size):
            block = rows[start : start + batch_size]
            scores = self.score_playlists(block, titles[start : start + batch_size])
            coo = block.tocoo()
            scores[coo.row, coo.col] = -np.inf
            scores[scores <= 0] = -np.inf
            ids, vals = top_n(scores, n)
            ids_out.append(ids)
            scores_out.append(vals)
        if not ids_out:
            return np.zeros((0, n), np.int32), np.zeros((0, n), np.float32)
        return np.vstack(ids_out), np.vstack(scores_out)

    def score(
        self, userids: np.ndarray, user_items: sp.csr_matrix, recalculate_user: bool = False
    ) -> np.ndarray:
        """Blended scores; the titles of known (training) playlists are used, new ones have none."""
        self._check_fitted()
        userids = np.atleast_1d(np.asarray(userids, np.int64))
        titles = [""] * len(userids)
        if self.title_ is not None:
            known = self.known_users(userids)
            for n, u in enumerate(userids):
                if known[n] and self.title_.playlist_name_[u] >= 0:
                    titles[n] = str(self.title_.names_[self.title_.playlist_name_[u]])
        return self.score_playlists(user_items, titles)


def positive_rows(rows: sp.csr_matrix) -> sp.csr_matrix:
    """Seed rows as a playlist matrix: values kept (positions), non-positive entries dropped."""
    rows = sp.csr_matrix(rows, dtype=np.float32)
    if rows.nnz and (rows.data <= 0).any():
        rows = rows.copy()
        rows.data[rows.data <= 0] = 0
        rows.eliminate_zeros()
    return rows


def _memo(embed: Embed | None) -> Embed:
    """An embedding function that encodes each text once (the parts are fitted twice)."""
    known: dict[str, np.ndarray] = {}
    state: dict[str, Embed] = {}

    def encode(texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            if embed is None and "encoder" not in state:
                from deepcuts.models.text.sentence import SentenceEncoder

                state["encoder"] = SentenceEncoder().encode
            fn = embed or state["encoder"]
            known.update(zip(missing, np.asarray(fn(missing), np.float32), strict=True))
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    return encode
