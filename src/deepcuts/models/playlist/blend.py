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
  what playlists named alike hold;
- ``named``: a playlist titled with an artist's name (normalised as titles are: "T-Pain",
  "j cole"), that artist's tracks, the more playlists hold them the higher. 14% of the MPD
  sample's playlists have such a title (many are words that are also a name: "Nostalgia",
  "prom"; the learnt weights and the ranker judge how far to trust it), and where the artist
  is meant a playlist is mostly theirs (T-Pain 97%, Atmosphere 93%). On 500 title-only
  development cuts a seed (seeds 0-2) R-precision went 0.0720 -> 0.0781 (each seed up by
  0.005-0.008) and NDCG@500 0.1396 -> 0.1490.

The title part compares titles by MiniLM too only for playlists of fewer than 10 seed tracks:
with more, the tracks say much more than the title, and encoding a title costs more than all
the rest of a continuation. Each part's row is divided by its largest value for a track it
may suggest, not a seed (negative ALS scores are dropped first), and the blend is their
weighted sum. Scaled by every track instead, a stored playlist (which the model was fitted
with) lost part of its co-occurrence and similar-playlist scores: its own row lifts its seeds
above any candidate (10 whole playlists, a model fitted on the MPD sample's first 300: the
item part's best candidate at 0.004-0.40 of the row's scale). On development cuts (seeds 0-2, 100 per category), with the
cut playlists' seeds among the training rows as a stored playlist's are, R-precision title +
first 1, first 5, first 25 and 25 at random went 0.1072, 0.1247, 0.1361, 0.1626 -> 0.1077,
0.1267, 0.1379, 0.1673; without them (a new playlist) 0.1100, 0.1274, 0.1358, 0.1678 -> 0.1095,
0.1265, 0.1373, 0.1674, within what refitting moves. The weights depend on how many
seed tracks a playlist has (0, 1, 2-9, 10 or more: a title alone needs the title model, 25
tracks need it much less) and are learnt in `fit`: ``validation`` training playlists are held
out, the parts are fitted on the others, the held-out playlists are cut into seeds and hidden tracks as the RecSys Challenge 2018 cut its playlists (title only,
title and first track, first 5 with and without title, first 10, first 25, 25 at random), and
coordinate ascent over a grid finds the weights with the best NDCG@500 of the hidden tracks
per seed-count bucket (a bucket with fewer than 30 held-out playlists keeps default weights).
Every held-out playlist with a title and seed tracks is cut a second time as a title alone
(the hardest case, and the cheapest cut). ``cuts_per_playlist`` > 1 cuts each held-out
playlist that many of the challenge's ways (the next scenarios in turn), more lists to learn
from without holding out more playlists. Three cuts were measured and not made the default:
on development cuts (`benchmarks/continuation_dev.py`, seeds 0-2) first 25 R-precision
0.1285 -> 0.1299 (500 cuts a seed, up on each), and over 100 cuts of each category a seed
+0.0012 on average (25 at random +0.0040, first 5 -0.0003); on the test playlists of seeds 0-2
+0.0006 on average and first 25 0.1454 -> 0.1452; for one seed's fit and evaluation in 101.4 s
instead of 54.3 s (the blend learning from one cut a playlist and the ranker from all three:
+0.0006 on the development cuts, 71-84 s a fit).

A second stage reorders the blend's best ``candidates`` (600) tracks: gradient-boosted trees
(`rerank`) on `FEATURES` (each part's score and rank among the candidates, the blend's score
and rank, the share of seed tracks by the candidate's artist, the share of training playlists
named exactly like this one that hold it, and the playlist's `CONTEXT`: seed count, title,
how well the title matches training names, each part's raw best score), learnt with the hidden
tracks as labels on ``ranker_folds`` (2) disjoint held-out sets, the parts fitted without each,
each held-out playlist's candidates one list to rank (LightGBM's listwise ``rank_xendcg``; it
replaced scikit-learn's pointwise log loss, chosen on playlists held out of the training
playlists, see `rerank`: MPD sample, test playlists of seeds 0-2, R-precision / NDCG@500 title +
first 1 0.1071 / 0.1991 -> 0.1089 / 0.2003, first 5 0.1326 / 0.2395 -> 0.1334 / 0.2391, first 25
0.1434 / 0.2825 -> 0.1454 / 0.2836 (1.159x -> 1.175x implicit ALS), 25 at random 0.1946 /
0.3554 -> 0.1964 / 0.3567; clicks 6.24, 5.93, 2.79, 2.03 -> 6.27, 5.70, 2.94, 2.24).
The trees are 120 at a learning rate of 0.1 (60 at 0.15 before; chosen on playlists held out
of the training playlists, see `rerank`): MPD sample, seeds 0-2, R-precision / NDCG@500 title +
first 1 0.1067 / 0.1983 -> 0.1082 / 0.1988, first 5 0.1313 / 0.2384 -> 0.1321 / 0.2389, first 25
0.1432 / 0.2814 -> 0.1436 / 0.2844 (1.155x -> 1.158x implicit ALS), 25 at random 0.1949 /
0.3540 -> 0.1949 / 0.3549; a 25-track continuation 13.3 -> 15.1 ms median on a busy machine.
The parts are then fitted again on every training playlist. A playlist with a title and no
tracks keeps the blend's order: the ranker did not help there (MPD sample, title-only test
playlists, seeds 0-2: blend order 0.0827 R-precision and 0.1575 NDCG@500 against the ranker's
0.0817 and 0.1568), though its title-only cuts still train it with the rest. Letting a title
alone hear 100 training names instead of 50 did better on held-out training playlists (1,500
title-only cuts: R-precision 0.0824 -> 0.0833) but worse on the test playlists of seeds 0-2
(0.0827 -> 0.0820, NDCG@500 0.1575 -> 0.1556), and was not kept. The reasons stay
the blend's: the part that gave most to a suggestion's blend score (`Ranked.contributions`).

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
from deepcuts.models.playlist.rerank import fit_trees, predict_trees, unpack_trees
from deepcuts.models.playlist.sequence import PlaylistSequence
from deepcuts.models.playlist.title import Embed, PlaylistTitle
from deepcuts.signals.playlists import normalize_title, ordered_row
from deepcuts.signals.side import SideInfo

log = logging.getLogger(__name__)

PARTS = ("item", "playlist", "sequence", "title", "artist", "popularity", "als", "named")
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
DEFAULT_WEIGHTS = np.array([1.0, 1.0, 0.3, 1.0, 0.3, 0.01, 0.3, 0.3], np.float32)
# the parts whose row maximum the ranker is told (`CONTEXT`)
RAW = ("item", "playlist", "sequence", "title", "artist", "als", "named")
CONTEXT = (  # what the ranker knows of a playlist (`_parts`)
    *(f"{p} max" for p in RAW), "seeds", "has title", "title best", "title votes", "same name"
)  # fmt: skip
FEATURES = (  # what the ranker knows of a candidate (`_rank_features`)
    *PARTS, *(f"{p} rank" for p in PARTS if p != "popularity"), "blend", "blend rank",
    "artist share", "same name share", *CONTEXT,
)  # fmt: skip


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


@dataclass
class Pool:
    """Held-out playlists' candidates (`PlaylistContinuation._held_out_pool`): per playlist its
    candidate ids, each part's score of them, which are hidden tracks and how many are hidden;
    per chunk of playlists their `CONTEXT` and same-name names."""

    ids: list[np.ndarray]
    feats: list[np.ndarray]
    hits: list[np.ndarray]
    sizes: list[int]
    context: list[np.ndarray]
    same: list[np.ndarray]


@dataclass
class Ranked:
    """`PlaylistContinuation.rank`'s answer: ids (n, k) int32 (-1: none), scores (n, k) float32
    (-inf: none) and contributions (n, len(PARTS) + 1, k): each part's weighted blend score of
    each suggestion, the last row what the cold-track mapping added (the reasons' evidence)."""

    ids: np.ndarray
    scores: np.ndarray
    contributions: np.ndarray


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
    rerank : learn the second stage (gradient-boosted trees over the blend's best
        ``candidates``) on the held-out playlists; False: the blend's order.
    candidates : how many of the blend's best tracks the ranker reorders.
    ranker_folds : disjoint sets of ``validation`` held-out playlists the ranker learns from
        (the first also learns the blend); each fits the parts once more.
    cuts_per_playlist : how many of the challenge's ways (`SCENARIOS`) each held-out playlist
        is cut, each a list to learn from (1 to 7).
    random_state : seeds the held-out choice, the random cuts and the ranker.

    Attributes
    ----------
    item_, playlist_, sequence_, title_, als_ : the fitted parts (``als_`` None when
        ``als_factors=0``).
    weights_ : float32 (4, 8), the blend weights per seed bucket (rows) and part (`PARTS`).
    popularity_ : float32 (n_items,), playlists per track.
    artists_ : int64 (n_items,), each track's artist (-1: unknown), or None.
    artist_names_ : str (n_artists,), each artist's name normalised as titles are, or None.
    cold_map_ : CSR float32 (n_items, n_items) or None, each cold track's warm neighbours.
    validation_ndcg_ : float32 (4,), the held-out NDCG@500 the learnt weights reached.
    ranker_nodes_, ranker_roots_ : the ranker's trees (`rerank.fit_trees`), or None (no
        held-out playlists, or ``rerank=False``).
    """

    name = "playlist-continuation"
    # What a fitted model learnt from, beyond its params: bumped when scoring changes under the
    # blend and the ranker, so that a model kept by an earlier version is fitted again
    # (`surfaces.continuation` names kept models by it). 2: parts scaled by their candidates;
    # 3: the "named" part.
    revision = 3
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
        "rerank",
        "candidates",
        "ranker_folds",
        "cuts_per_playlist",
        "random_state",
    )
    fitted = (
        "weights_", "popularity_", "artists_", "artist_names_", "cold_map_", "validation_ndcg_",
        "ranker_nodes_", "ranker_roots_",
    )  # fmt: skip
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
        rerank: bool = True,
        candidates: int = 600,
        ranker_folds: int = 2,
        cuts_per_playlist: int = 1,
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
        self.rerank = rerank
        self.candidates = candidates
        self.ranker_folds = ranker_folds
        self.cuts_per_playlist = cuts_per_playlist
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
        artist_names: Sequence[str] | None = None,
        embed: Embed | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> PlaylistContinuation:
        """``user_items``: a `playlist_matrix` (values: 1 + position); ``titles``: one per
        row; ``content``: (n_items, d) unit content vectors, zero rows where none;
        ``artists``: (n_items,) each track's artist number, -1 where unknown;
        ``artist_names``: the name of each artist number (`PlaylistData.artist_names`)."""
        check_int("validation", self.validation, minimum=0)
        check_int("cold_neighbours", self.cold_neighbours)
        check_int("als_factors", self.als_factors, minimum=0)
        check_int("candidates", self.candidates)
        check_int("ranker_folds", self.ranker_folds)
        check_int("cuts_per_playlist", self.cuts_per_playlist)
        if self.cuts_per_playlist > len(SCENARIOS):
            raise ValueError(
                f"cuts_per_playlist must be at most the {len(SCENARIOS)} ways to cut a playlist, "
                f"not {self.cuts_per_playlist}"
            )
        matrix = check_matrix(user_items)
        titles = list(titles) if titles is not None else [""] * matrix.shape[0]
        if len(titles) != matrix.shape[0]:
            raise ValueError(f"{len(titles)} titles for {matrix.shape[0]} playlists")
        embed = _memo(embed) if embed is not None or self.minilm_weight > 0 else None
        say = progress or (lambda _: None)
        if artists is not None and len(artists) != matrix.shape[1]:
            raise ValueError(f"{len(artists)} artists for {matrix.shape[1]} tracks")
        self.artists_ = None if artists is None else np.asarray(artists, np.int64)
        self.artist_names_ = None
        if artist_names is not None:
            if self.artists_ is None:
                raise ValueError("artist_names need artists: the number of each track's artist")
            if len(artist_names) <= self.artists_.max():
                raise ValueError(
                    f"{len(artist_names)} artist names for artist numbers up to "
                    f"{self.artists_.max()}"
                )
            self.artist_names_ = np.array([normalize_title(n) for n in artist_names], dtype=np.str_)
        self.weights_ = np.tile(DEFAULT_WEIGHTS, (len(BUCKETS), 1))
        self.validation_ndcg_ = np.full(len(BUCKETS), np.nan, np.float32)
        self.ranker_nodes_ = self.ranker_roots_ = None
        folds = self._held_out(matrix, titles) if self.validation else []
        learnt = []
        for f, (keep, val) in enumerate(folds[: self.ranker_folds if self.rerank else 1]):
            say(f"held-out playlists, set {f + 1} of {len(folds)}: fitting the parts on the others")
            self._fit_parts(matrix[keep], [titles[i] for i in keep], embed)
            pool = self._held_out_pool(val)
            if f == 0:
                say(f"learning the blend on {len(val.titles)} held-out cuts")
                self._learn_weights(pool)
            if self.rerank:
                learnt.append(self._ranker_data(val, pool))
        if learnt:
            say("learning the ranker")
            self._fit_ranker(learnt)
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

    @classmethod
    def _from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> PlaylistContinuation:
        missing = [
            f for f in ("ranker_nodes_", "ranker_roots_", "artist_names_") if f not in arrays
        ]
        if missing:  # saved before the ranker (the blend's order) or the artists' names
            meta = {**meta, "none": sorted({*meta.get("none", ()), *missing})}
        return super()._from_state(meta, arrays)  # type: ignore[return-value]

    def _after_load(self) -> None:
        nodes = getattr(self, "ranker_nodes_", None)
        self._trees = None if nodes is None else unpack_trees(nodes, self.ranker_roots_)
        self._names: dict[str, int] = {}
        self._name_sizes = np.zeros(0, np.float32)
        if getattr(self, "title_", None) is not None:
            self._names = {str(t): i for i, t in enumerate(self.title_.names_.tolist())}
            named = self.title_.playlist_name_[self.title_.playlist_name_ >= 0]
            self._name_sizes = np.bincount(named, minlength=len(self._names)).astype(np.float32)
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
        self._named: dict[str, list[int]] = {}  # a normalised name: its artists' numbers
        if getattr(self, "artist_names_", None) is not None and self._artist_map is not None:
            for code, name in enumerate(self.artist_names_.tolist()):
                if name:
                    self._named.setdefault(name, []).append(code)

    def _held_out(
        self, matrix: sp.csr_matrix, titles: list[str]
    ) -> list[tuple[np.ndarray, HeldOut]]:
        """Disjoint sets of ``validation`` long training playlists (as many as the ranker
        learns from, fewer where the long playlists run out), each with the rows the parts
        fit on without it. Each playlist is cut as `SCENARIOS` says (in turn), and one with a
        title and seed tracks is cut a second time as a title alone: titles alone are the
        hardest case and the cheapest cut."""
        lengths = np.diff(matrix.indptr)
        eligible = np.flatnonzero(lengths >= self.min_length)
        n_val = min(self.validation, len(eligible) // 2)
        if n_val < len(SCENARIOS):
            log.info(
                "too few long playlists (%d) to learn the blend: default weights", len(eligible)
            )
            return []
        asked = self.ranker_folds if self.rerank else 1
        n_sets = max(1, min(asked, len(eligible) // n_val))
        if n_sets < asked:  # say so: a setting that asked for more sets would otherwise look tried
            log.info(
                "%d playlists of at least %d tracks: %d held-out sets of %d, not %d",
                len(eligible), self.min_length, n_sets, n_val, asked,
            )  # fmt: skip
        rng = np.random.default_rng(self.random_state)
        drawn = rng.choice(eligible, n_val * n_sets, replace=False)
        out = []
        for f in range(n_sets):
            chosen = np.sort(drawn[f * n_val : (f + 1) * n_val])
            keep = np.setdiff1d(np.arange(matrix.shape[0]), chosen)
            cuts = [(p, *SCENARIOS[n % len(SCENARIOS)]) for n, p in enumerate(chosen)] + [
                (p, 0, "first", True)
                for n, p in enumerate(chosen)
                if SCENARIOS[n % len(SCENARIOS)][0] and titles[p].strip()
            ]
            cuts += [
                (p, *SCENARIOS[(n + j) % len(SCENARIOS)])
                for j in range(1, self.cuts_per_playlist)
                for n, p in enumerate(chosen)
            ]
            out.append((keep, self._cut(matrix, titles, cuts, rng)))
        return out

    @staticmethod
    def _cut(
        matrix: sp.csr_matrix, titles: list[str], cuts: list[tuple], rng: np.random.Generator
    ) -> HeldOut:
        """``cuts``: (playlist, seed tracks, where, with title) each."""
        rows, cols, vals, val_titles, truth = [], [], [], [], []
        for n, (p, n_seeds, where, with_title) in enumerate(cuts):
            seq = ordered_row(matrix[p])
            positions, hidden = cut_playlist(seq, n_seeds, where, rng)
            rows.append(np.full(len(positions), n))
            cols.append(seq[positions])
            vals.append(positions.astype(np.float32) + 1)
            val_titles.append(titles[p] if with_title else "")
            truth.append(hidden)
        seeds = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(cuts), matrix.shape[1]),
            dtype=np.float32,
        )
        return HeldOut(seeds, val_titles, truth)

    def _held_out_pool(self, val: HeldOut, per_part: int = 1000, chunk: int = 64) -> Pool:
        """Each held-out playlist's candidates: the union of every part's best ``per_part``."""
        pool = Pool([], [], [], [], [], [])
        for start in range(0, val.rows.shape[0], chunk):
            stop = min(start + chunk, val.rows.shape[0])
            parts, context, same = self._parts(val.rows[start:stop], val.titles[start:stop])
            pool.context.append(context)
            pool.same.append(same)
            seeds = val.rows[start:stop]
            for r in range(stop - start):
                stack = np.stack([p[r] for p in parts])
                stack[:, seeds.indices[seeds.indptr[r] : seeds.indptr[r + 1]]] = 0
                k = min(per_part, stack.shape[1] - 1)
                top = np.unique(np.argpartition(-stack, k, axis=1)[:, :k])
                top = top[stack[:, top].max(axis=0) > 0]
                pool.ids.append(top)
                pool.feats.append(stack[:, top].T)
                pool.hits.append(np.isin(top, val.truth[start + r]))
                pool.sizes.append(len(val.truth[start + r]))
        return pool

    def _learn_weights(self, pool: Pool, n: int = 500) -> None:
        """Coordinate ascent over `GRID` per bucket, on the held-out playlists' candidates."""
        feats, hits, sizes = pool.feats, pool.hits, pool.sizes
        buckets = seed_bucket(np.concatenate(pool.context)[:, CONTEXT.index("seeds")])
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

    def _ranker_data(self, val: HeldOut, pool: Pool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, labels, groups) of the held-out playlists' blend candidates (the best
        ``candidates`` of the learnt blend among the pool's), labelled by the hidden tracks;
        groups: how many consecutive rows each held-out playlist has (its list to rank)."""
        context, same = np.concatenate(pool.context), np.concatenate(pool.same)
        weights = self.weights_[seed_bucket(context[:, CONTEXT.index("seeds")])]
        n_val, k = len(pool.ids), self.candidates
        cand = np.full((n_val, k), -1, np.int64)
        vals = np.zeros((n_val, k, len(PARTS)), np.float32)
        blend = np.zeros((n_val, k), np.float32)
        labels = np.zeros((n_val, k), bool)
        for i in range(n_val):
            b = pool.feats[i] @ weights[i]
            order = np.argsort(-b, kind="stable")[:k]
            order = order[b[order] > 0]
            m = len(order)
            cand[i, :m], vals[i, :m] = pool.ids[i][order], pool.feats[i][order]
            blend[i, :m] = b[order]
            labels[i, :m] = pool.hits[i][order]
        features = self._rank_features(cand, vals, blend, context, val.rows, same)
        use = (cand >= 0) & (np.asarray(pool.sizes) > 0)[:, None]
        return features[use], labels[use], use.sum(axis=1)

    def _fit_ranker(self, learnt: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Gradient-boosted trees (`rerank.fit_trees`) on every held-out set's candidates, each
        held-out playlist's candidates one list."""
        features = np.concatenate([f for f, _, _ in learnt])
        labels = np.concatenate([y for _, y, _ in learnt])
        groups = np.concatenate([g for _, _, g in learnt])
        if labels.sum() < MIN_BUCKET or labels.all():
            log.info("too few hidden tracks among the candidates to learn the ranker")
            return
        self.ranker_nodes_, self.ranker_roots_ = fit_trees(
            features, labels, groups, random_state=self.random_state
        )
        self._trees = unpack_trees(self.ranker_nodes_, self.ranker_roots_)
        log.info(
            "ranker: %d trees on %d candidates (%.1f%% hidden tracks)",
            len(self.ranker_roots_), len(labels), 100 * labels.mean(),
        )  # fmt: skip

    def _rank_features(
        self,
        cand: np.ndarray,
        vals: np.ndarray,
        blend: np.ndarray,
        context: np.ndarray,
        seeds: sp.csr_matrix,
        same: np.ndarray,
    ) -> np.ndarray:
        """(n, k, len(FEATURES)) float32: the `FEATURES` of each playlist's candidates ``cand``
        (n, k; -1: none, in blend order), given each part's score of them ``vals`` (n, k,
        parts), their blend scores, the playlists' `CONTEXT`, seed rows and same-name names."""
        n, k = cand.shape
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        out = np.zeros((n, k, len(FEATURES)), np.float32)
        out[:, :, : len(PARTS)] = vals
        col = len(PARTS)
        positions = np.broadcast_to(np.arange(k, dtype=np.float32), (n, k))
        for p, name in enumerate(PARTS):
            if name == "popularity":
                continue
            order = np.argsort(-np.where(valid, vals[:, :, p], -1), axis=1, kind="stable")
            np.put_along_axis(out[:, :, col], order, positions, axis=1)
            col += 1
        top = blend[:, :1]
        out[:, :, col] = np.divide(blend, top, out=np.zeros_like(blend), where=top > 0)
        out[:, :, col + 1] = positions
        col += 2
        if self.artists_ is not None:  # the share of seed tracks by the candidate's artist
            for r in range(n):
                mine = self.artists_[seeds.indices[seeds.indptr[r] : seeds.indptr[r + 1]]]
                if not (mine >= 0).any():
                    continue
                names, counts = np.unique(mine[mine >= 0], return_counts=True)
                theirs = self.artists_[safe[r]]
                at = np.minimum(np.searchsorted(names, theirs), len(names) - 1)
                out[r, :, col] = np.where(names[at] == theirs, counts[at], 0) / len(mine)
        col += 1
        if self.title_ is not None:  # the share of same-name training playlists holding it
            beta = self.title_.beta
            for r in np.flatnonzero(same >= 0):
                row = self.title_.name_items_[int(same[r])]
                dense = np.zeros(self.title_.name_items_.shape[1], np.float32)
                dense[row.indices] = row.data
                out[r, :, col] = dense[safe[r]] * self._name_sizes[same[r]] ** (beta - 1)
        col += 1
        out[:, :, col:] = context[:, None, :]
        out[~valid] = 0
        return out

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
        """Each part's scores (n, n_items), each row divided by its largest value for a track
        that may be suggested (not a seed; a row that scores only its seeds, by theirs)."""
        return self._parts(rows, titles)[0]

    def _parts(
        self, rows: sp.csr_matrix, titles: Sequence[str]
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """`parts`, with each playlist's `CONTEXT` (n, len(CONTEXT)) float32 and the training
        name equal to its normalised title (n,) int64 (-1: none)."""
        rows = rows.tocsr()
        n = rows.shape[0]
        empty = np.diff(rows.indptr) == 0
        context = np.zeros((n, len(CONTEXT)), np.float32)
        context[:, CONTEXT.index("seeds")] = np.diff(rows.indptr)
        context[:, CONTEXT.index("has title")] = [bool(str(t).strip()) for t in titles]
        same = np.full(n, -1, np.int64)
        # each title normalised once, for the title and named parts (None: no title)
        names = [normalize_title(t) if t else None for t in titles]
        seed_at = np.repeat(np.arange(n), np.diff(rows.indptr)), rows.indices
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
            elif name == "named":
                s = self._named_scores(names, rows.shape[1])
            elif name == "title":
                if self.title_ is None:
                    s = np.zeros((n, rows.shape[1]), np.float32)
                else:  # MiniLM only where the title matters: short playlists (see MINILM_BELOW)
                    votes = self.title_.name_votes(
                        list(titles), np.diff(rows.indptr) < MINILM_BELOW
                    )
                    s = self.title_.score_votes(votes)
                    best = np.asarray(votes.max(axis=1).todense()).ravel()
                    context[:, CONTEXT.index("title best")] = best ** (1 / self.title_.power)
                    context[:, CONTEXT.index("title votes")] = np.asarray(votes.sum(axis=1)).ravel()
                    for r, name in enumerate(names):
                        same[r] = self._names.get(name, -1) if name is not None else -1
                    known = same >= 0
                    context[known, CONTEXT.index("same name")] = self._name_sizes[same[known]]
            else:
                part = getattr(self, name + "_")
                s = np.zeros((n, rows.shape[1]), np.float32)
                if name == "als" and part is not None:
                    s = self._als_scores(rows, out[PARTS.index("title")])
                elif part is not None and (~empty).any():
                    s[~empty] = part.score(
                        np.full((~empty).sum(), -1), rows[np.flatnonzero(~empty)]
                    )
            # Each row's scale is its best track that may be suggested: seeds never are, and
            # where the model was fitted with the playlist itself (a stored one), its own row
            # lifts its seeds far above any candidate and would shrink the part in the blend.
            # A row that scores only its seeds keeps their scale: cold tracks like the seeds
            # borrow their scores (`blend`).
            held = s[seed_at]
            s[seed_at] = -np.inf
            top = s.max(axis=1, keepdims=True)
            s[seed_at] = held
            only_seeds = top[:, 0] <= 0
            if only_seeds.any():
                top[only_seeds] = s[only_seeds].max(axis=1, keepdims=True)
            if name in RAW:
                context[:, CONTEXT.index(f"{name} max")] = top[:, 0]
            out.append(np.divide(s, top, out=np.zeros_like(s), where=top > 0))
        return out, context, same

    def _named_scores(self, names: Sequence[str | None], n_items: int) -> np.ndarray:
        """The ``named`` part: for a title (``names``: normalised, None for none) that is an
        artist's name, the artist's tracks weighed by ``log(1 + playlists holding them)`` (as
        the artist part weighs them)."""
        s = np.zeros((len(names), n_items), np.float32)
        if not self._named:
            return s
        spread = self._artist_map[1]  # type: ignore[index]
        for r, name in enumerate(names):
            codes = self._named.get(name) if name else None
            if codes:
                s[r] = np.asarray(spread[codes].sum(axis=0)).ravel()
        return s

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

    def rank(self, rows: sp.csr_matrix, titles: Sequence[str], n: int = 500) -> Ranked:
        """The ``n`` best tracks of each playlist, seed tracks excluded: the blend's best
        ``candidates`` reordered by the ranker (by the blend where there is none, and for a
        playlist with a title alone: see the module docstring); a cold candidate takes
        ``cold_weight`` times the ranker scores of its warm neighbours among the candidates,
        as it takes their blend scores in `blend`. The ranker's score of a candidate is
        ``exp(raw - best raw)`` of the playlist's candidates: 1 for the best."""
        self._check_fitted()
        rows = positive_rows(rows)
        parts, context, same = self._parts(rows, titles)
        n_seeds = np.diff(rows.indptr)
        total = self.blend(parts, n_seeds)
        coo = rows.tocoo()
        total[coo.row, coo.col] = -np.inf
        total[total <= 0] = -np.inf
        if self._trees is None:
            ids, scores = top_n(total, n)
            blended = scores
        else:
            cand, blended = top_n(total, max(self.candidates, n))
            valid = cand >= 0
            safe = np.where(valid, cand, 0)
            at = np.arange(len(cand))[:, None]
            vals = np.stack([p[at, safe] for p in parts], axis=2)
            blended = np.where(valid, blended, 0)
            scores = blended.copy()  # a title alone keeps the blend's order (see the docstring)
            tracks = np.flatnonzero(n_seeds > 0)
            if len(tracks):
                features = self._rank_features(
                    cand[tracks], vals[tracks], blended[tracks], context[tracks],
                    rows[tracks], same[tracks],
                )  # fmt: skip
                raw = predict_trees(self._trees, features.reshape(-1, len(FEATURES)))
                raw = np.where(valid[tracks], raw.reshape(len(tracks), -1), -np.inf)
                # relative to the playlist's best candidate: its softmax share (rank_xendcg) or
                # odds (log loss) over the best one's, so that a cold track borrowing
                # cold_weight times its neighbours' ranks as a share cold_weight times theirs
                top = raw.max(axis=1, keepdims=True)
                ranked = np.exp(raw - np.where(np.isfinite(top), top, 0)).astype(np.float32)
                self._cold_scores(cand[tracks], ranked)
                scores[tracks] = ranked
            scores[~valid] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
            ids = np.take_along_axis(cand, order, axis=1).astype(np.int32)
            scores = np.take_along_axis(scores, order, axis=1)
            blended = np.take_along_axis(blended, order, axis=1)
        found = ids >= 0
        weights = self.weights_[seed_bucket(n_seeds)]
        at, safe = np.arange(len(ids))[:, None], np.where(found, ids, 0)
        contrib = np.stack(
            [weights[:, k : k + 1] * part[at, safe] for k, part in enumerate(parts)], axis=1
        )
        cold = np.where(found, blended, 0) - contrib.sum(axis=1)
        contrib = np.concatenate([contrib, cold[:, None, :]], axis=1)
        contrib[np.broadcast_to(~found[:, None, :], contrib.shape)] = 0
        return Ranked(ids, scores, contrib)

    def _cold_scores(self, cand: np.ndarray, scores: np.ndarray) -> None:
        """Cold candidates' scores, in place, from their warm neighbours' (see `rank`)."""
        if self.cold_map_ is None:
            return
        cold = (cand >= 0) & (self.popularity_[np.maximum(cand, 0)] == 0)
        for r in np.flatnonzero(cold.any(axis=1)):
            warm = (cand[r] >= 0) & ~cold[r]
            dense = np.zeros(self.cold_map_.shape[1], np.float32)
            dense[cand[r, warm]] = scores[r, warm]
            got = self.cold_weight * (self.cold_map_[cand[r, cold[r]]] @ dense)
            scores[r, cold[r]] = np.maximum(got, 1e-9)  # below every warm one it is like

    def score_playlists(self, rows: sp.csr_matrix, titles: Sequence[str]) -> np.ndarray:
        """(n, n_items) scores of playlists given as seed rows and titles: the blend, or,
        with a ranker, the ranker's scores of the ``candidates`` of `rank` (their blend scores
        for a playlist with a title alone; 0 elsewhere)."""
        self._check_fitted()
        rows = positive_rows(rows)
        if self._trees is None:
            return self.blend(self.parts(rows, titles), np.diff(rows.indptr))
        ranked = self.rank(rows, titles, self.candidates)
        out = np.zeros(rows.shape, np.float32)
        r, c = np.nonzero(ranked.ids >= 0)
        out[r, ranked.ids[r, c]] = ranked.scores[r, c]
        return out

    def recommend_playlists(
        self, rows: sp.csr_matrix, titles: Sequence[str], n: int = 500, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), (len(rows), n): the best tracks per playlist (`rank`), seed tracks
        excluded; padded with -1 where fewer score."""
        rows = positive_rows(rows)
        ids_out, scores_out = [], []
        for start in range(0, rows.shape[0], batch_size):
            ranked = self.rank(
                rows[start : start + batch_size], titles[start : start + batch_size], n
            )
            ids_out.append(ranked.ids)
            scores_out.append(ranked.scores)
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
