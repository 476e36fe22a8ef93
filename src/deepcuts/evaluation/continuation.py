"""Playlist continuation measured as the RecSys Challenge 2018 measured it.

Protocol, per seed: of the playlists with at least ``min_tracks`` tracks, ``n_test`` are drawn at
random and dealt evenly to the categories (`CATEGORIES`); each is cut into its seed tracks (the
first 1, 5 or 25, or 25 at random positions; none for "title only"), its title (kept or hidden
as the category says) and its hidden tracks (the distinct tracks that are not seeds). Every
other playlist, long or short, is training data. Each model fits on the training playlists and
suggests 500 tracks per test playlist, never a seed track; the hidden tracks are the truth.

Metrics per test playlist (means per category, then mean and standard deviation over seeds):
R-precision (track level: hidden tracks found in the first ``|hidden|`` suggestions, divided by
``|hidden|``), NDCG@500 (gain 1 per hidden track, discount ``1/log2(rank + 1)``, ideal list of
``min(|hidden|, 500)`` hits, as `ranking_metrics`), and recommended-songs clicks (pages of 10
before the first hidden track, 51 when none is found). A hidden track that no training playlist
holds cannot be found by any model; it counts, as in the challenge. The challenge's R-precision
also gave partial credit to artists: ``r_precision_artist_credit`` counts, among the first
``|hidden|`` suggestions, 1 per hidden track and 0.25 per other suggestion by an artist of the
hidden tracks (each artist once), divided by ``|hidden|`` (`r_precision_artist_credit`). It is
reported beside the track-level figure, and the goals stay on the track level, the stricter.

Peers, in the same run on the same cuts: ``popularity`` (tracks on the most training playlists),
``implicit-als`` (implicit's AlternatingLeastSquares, 128 factors, its defaults otherwise, fitted
on the training playlists together with the test playlists' seeds, so that each test playlist
has its own vector), and, for "title only", ``same-name-popularity`` (the tracks most often on
training playlists with the same normalised name, then overall popularity).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepcuts.evaluation.harness import _stats
from deepcuts.evaluation.metrics import (
    r_precision,
    r_precision_artist_credit,
    ranking_metrics,
    recommended_songs_clicks,
)
from deepcuts.evaluation.splits import SplitError
from deepcuts.models.base import top_n
from deepcuts.models.playlist import PlaylistContinuation, cut_playlist
from deepcuts.signals.playlists import PlaylistData, normalize_title, playlist_matrix

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

CATEGORIES: dict[str, tuple[int, str, bool]] = {
    # name: (seed tracks, where they are, title shown)
    "title only": (0, "first", True),
    "title + first 1": (1, "first", True),
    "first 5": (5, "first", False),
    "first 25": (25, "first", True),
    "25 at random positions": (25, "random", True),
}
METRICS = ("r_precision", "r_precision_artist_credit", "ndcg@500", "clicks")
N = 500
DEEPCUTS = "deepcuts"
PEERS = ("popularity", "implicit-als", "same-name-popularity")
DESCRIPTIONS = {
    DEEPCUTS: "PlaylistContinuation: track and playlist neighbours, what follows the last tracks, "
    "titles (TF-IDF + MiniLM), blended with weights learnt on held-out training playlists",
    "popularity": "tracks on the most training playlists",
    "implicit-als": "implicit AlternatingLeastSquares(factors=128), defaults otherwise, on the binary "
    "playlist x track matrix with the test seeds",
    "same-name-popularity": "tracks most often on training playlists with the same normalised name, "
    "then overall popularity (title only)",
}


@dataclass
class ContinuationSplit:
    """One seed's cut: training playlists and test playlists with seeds, titles and truth."""

    train: sp.csr_matrix  # playlist_matrix of the training playlists
    train_titles: list[str]
    seeds: sp.csr_matrix  # (n_test, n_items): 1 + position of each seed track
    titles: list[str]  # "" where the category hides the title
    truth: sp.csr_matrix  # (n_test, n_items) binary: the hidden tracks
    category: np.ndarray  # (n_test,) index into CATEGORIES
    test_playlists: np.ndarray  # (n_test,) rows of the PlaylistData
    full_titles: list[str] = field(default_factory=list)  # the real titles, for peers by name


def split_continuation(
    data: PlaylistData,
    seed: int,
    n_test: int = 500,
    min_tracks: int = 40,
    categories: Sequence[str] = tuple(CATEGORIES),
) -> ContinuationSplit:
    """The test playlists of one seed, cut as `CATEGORIES` says (see the module docstring)."""
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
    lengths = data.lengths()
    eligible = np.flatnonzero(lengths >= min_tracks)
    if len(eligible) < n_test:
        raise SplitError(
            f"only {len(eligible)} playlists have at least {min_tracks} tracks; {n_test} test playlists asked"
        )
    if len(data) - n_test < 1:
        raise SplitError("no playlist is left to train on")
    rng = np.random.default_rng(seed)
    test = rng.choice(eligible, n_test, replace=False)
    category = np.arange(n_test) % len(categories)
    cat_index = np.array([list(CATEGORIES).index(categories[c]) for c in category])
    is_test = np.zeros(len(data), bool)
    is_test[test] = True
    train_rows = np.flatnonzero(~is_test)
    rows, cols, vals, t_rows, t_cols, titles = [], [], [], [], [], []
    for n, p in enumerate(test):
        n_seeds, where, with_title = CATEGORIES[categories[category[n]]]
        seq = data.sequences[p]
        positions, hidden = cut_playlist(seq, n_seeds, where, rng)
        rows.append(np.full(len(positions), n))
        cols.append(seq[positions])
        vals.append(positions.astype(np.float32) + 1)
        t_rows.append(np.full(len(hidden), n))
        t_cols.append(hidden)
        titles.append(data.titles[p] if with_title else "")
    shape = (n_test, data.n_items)
    seeds = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=shape,
        dtype=np.float32,
    )
    truth = sp.csr_matrix(
        (
            np.ones(sum(len(c) for c in t_cols), np.float32),
            (np.concatenate(t_rows), np.concatenate(t_cols)),
        ),
        shape=shape,
    )
    return ContinuationSplit(
        train=playlist_matrix([data.sequences[p] for p in train_rows], data.n_items),
        train_titles=[data.titles[p] for p in train_rows],
        seeds=seeds,
        titles=titles,
        truth=truth,
        category=cat_index,
        test_playlists=test,
        full_titles=[data.titles[p] for p in test],
    )


def continuation_metrics(
    recommended: np.ndarray, truth: sp.csr_matrix, artists: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per test playlist: r_precision, ndcg@500 and clicks of ``recommended`` (n, 500), and
    with ``artists`` (each track's artist number, -1 where unknown) r_precision_artist_credit."""
    out = {
        "r_precision": r_precision(recommended, truth),
        "ndcg@500": ranking_metrics(recommended, truth, recommended.shape[1])["ndcg"],
        "clicks": recommended_songs_clicks(recommended, truth),
    }
    if artists is not None:
        out["r_precision_artist_credit"] = r_precision_artist_credit(recommended, truth, artists)
    return out


def category_means(
    recommended: np.ndarray,
    truth: sp.csr_matrix,
    category: np.ndarray,
    artists: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """``{category: {metric: mean}}`` over the test playlists of each category present
    (``category``: index into `CATEGORIES` per row of ``recommended``; the metrics of
    `continuation_metrics`)."""
    return _means(continuation_metrics(recommended, truth, artists), category)


def _means(figures: dict[str, np.ndarray], category: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        cat: {m: float(np.nanmean(values[category == c])) for m, values in figures.items()}
        for c, cat in enumerate(CATEGORIES)
        if (category == c).any()
    }


def bootstrap_ratio(
    mine: Sequence[np.ndarray], theirs: Sequence[np.ndarray], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``mean over seeds of mine / mean over seeds of theirs``, the
    goals' ratio, resampling each seed's test playlists with replacement (paired: both models
    on the same resampled playlists). ``mine`` and ``theirs``: per seed, one figure per test
    playlist. It says how much the draw of test playlists moves the ratio, not refitting."""
    rng = np.random.default_rng(seed)
    num, den = np.zeros(resamples), np.zeros(resamples)
    for a, b in zip(mine, theirs, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        at = rng.integers(len(a), size=(resamples, len(a)))
        num += np.nanmean(a[at], axis=1)
        den += np.nanmean(b[at], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = np.nanpercentile(num / den, [2.5, 97.5])
    return float(lo), float(hi)


# -- the peers ------------------------------------------------------------------------------
def _top_excluding(scores: np.ndarray, seeds: sp.csr_matrix, n: int) -> np.ndarray:
    scores = np.array(scores, np.float32, copy=True)
    coo = seeds.tocoo()
    scores[coo.row, coo.col] = -np.inf
    scores[scores <= 0] = -np.inf
    return top_n(scores, n)[0]


def popularity_peer(split: ContinuationSplit, n: int = N) -> np.ndarray:
    counts = np.bincount(split.train.indices, minlength=split.train.shape[1]).astype(np.float32)
    out = np.full((split.seeds.shape[0], n), -1, np.int32)
    for start in range(0, len(out), 128):
        block = split.seeds[start : start + 128]
        out[start : start + 128] = _top_excluding(np.tile(counts, (block.shape[0], 1)), block, n)
    return out


def same_name_peer(split: ContinuationSplit, rows: np.ndarray, n: int = N) -> np.ndarray:
    """For the given test rows: the tracks of training playlists with the same normalised name
    (by how many hold each), then overall popularity."""
    counts = np.bincount(split.train.indices, minlength=split.train.shape[1]).astype(np.float32)
    names = [normalize_title(t) for t in split.train_titles]
    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name:
            by_name.setdefault(name, []).append(i)
    binary = (split.train > 0).astype(np.float32)
    out = np.full((len(rows), n), -1, np.int32)
    tie = counts / (counts.max() + 1.0)  # below one playlist: only orders tracks tied on the name
    for k, r in enumerate(rows):
        members = by_name.get(normalize_title(split.titles[r]), [])
        score = tie.copy()
        if members:
            score += np.asarray(binary[members].sum(axis=0)).ravel()
        out[k] = _top_excluding(score[None, :], split.seeds[r], n)[0]
    return out


def als_peer(split: ContinuationSplit, seed: int, n: int = N) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares

    train = (split.train > 0).astype(np.float32)
    seeds = (split.seeds > 0).astype(np.float32)
    matrix = sp.vstack([train, seeds]).tocsr()
    model = AlternatingLeastSquares(factors=128, random_state=seed)
    model.fit(matrix, show_progress=False)
    users = np.arange(train.shape[0], matrix.shape[0])
    ids, scores = model.recommend(users, matrix[users], N=n, filter_already_liked_items=True)
    ids = np.asarray(ids, np.int32)
    ids[~np.isfinite(scores)] = -1
    return ids


# -- the run --------------------------------------------------------------------------------
def evaluate_continuation(
    data: PlaylistData,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    n_test: int = 500,
    min_tracks: int = 40,
    models: Sequence[str] = (DEEPCUTS, *PEERS),
    model_params: dict[str, Any] | None = None,
    embed=None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every model on every seed's cut; returns the JSON-ready summary (see `summarise_continuation`)."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds given")
    unknown = [m for m in models if m not in (DEEPCUTS, *PEERS)]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {DEEPCUTS}, {', '.join(PEERS)}")
    per_seed: dict[str, dict[str, dict[str, list[float]]]] = {}
    # per category and model, each seed's R-precision per test playlist (for `bootstrap_ratio`)
    per_playlist: dict[str, dict[str, list[np.ndarray]]] = {}
    seconds: dict[str, list[float]] = {m: [] for m in models}
    extra: dict[str, list[Any]] = {"blend_weights": [], "unreachable_share": []}
    total, done = len(seeds) * len(models), 0
    artists, artist_names = data.artist_codes(), data.artist_names()
    for seed in seeds:
        split = split_continuation(data, seed, n_test, min_tracks)
        in_train = np.bincount(split.train.indices, minlength=data.n_items) > 0
        extra["unreachable_share"].append(float(1 - in_train[split.truth.indices].mean()))
        for name in models:
            if progress:
                progress(done, total, f"seed {seed}: {name}")
            began = time.perf_counter()
            rows = np.arange(split.seeds.shape[0])
            if name == DEEPCUTS:
                model = PlaylistContinuation(random_state=seed, **(model_params or {}))
                model.fit(split.train, titles=split.train_titles, artists=artists,
                          artist_names=artist_names, embed=embed)  # fmt: skip
                recs, _ = model.recommend_playlists(split.seeds, split.titles, N)
                extra["blend_weights"].append(model.weights_.round(3).tolist())
            elif name == "popularity":
                recs = popularity_peer(split)
            elif name == "implicit-als":
                recs = als_peer(split, seed)
            else:
                rows = np.flatnonzero(split.category == list(CATEGORIES).index("title only"))
                recs = same_name_peer(split, rows)
            seconds[name].append(time.perf_counter() - began)
            figures = continuation_metrics(recs, split.truth[rows], artists)
            category = split.category[rows]
            for c, cat in enumerate(CATEGORIES):
                if (category == c).any():
                    per_playlist.setdefault(cat, {}).setdefault(name, []).append(
                        figures["r_precision"][category == c]
                    )
            for cat, means in _means(figures, category).items():
                slot = per_seed.setdefault(cat, {}).setdefault(name, {m: [] for m in METRICS})
                for metric, value in means.items():
                    slot[metric].append(value)
            log.info("seed %d %s: %.1f s", seed, name, seconds[name][-1])
            done += 1
    if progress:
        progress(total, total, "done")
    protocol = {
        "dataset": "",
        "task": "continuation",
        "seeds": seeds,
        "test_playlists_per_seed": n_test,
        "min_tracks": min_tracks,
        "n": N,
        "categories": {
            c: {"seed_tracks": k, "positions": w, "title": t} for c, (k, w, t) in CATEGORIES.items()
        },
        "n_playlists": len(data),
        "n_tracks": data.n_items,
        "unreachable_hidden_share": extra["unreachable_share"],
    }
    return summarise_continuation(protocol, per_seed, seconds, extra["blend_weights"], per_playlist)


def summarise_continuation(
    protocol: dict[str, Any],
    per_seed: dict[str, dict[str, dict[str, list[float]]]],
    seconds: dict[str, list[float]],
    blend_weights: list[Any],
    per_playlist: dict[str, dict[str, list[np.ndarray]]] | None = None,
) -> dict[str, Any]:
    """``categories[cat][model][metric]`` = mean, std (ddof 1) and per_seed; the models'
    descriptions and seconds; the issue's goals checked on the means (with ``per_playlist``,
    each seed's R-precision per test playlist, their ratios' `bootstrap_ratio` intervals)."""
    categories = {
        cat: {
            name: {metric: _stats(values) for metric, values in figures.items()}
            for name, figures in models.items()
        }
        for cat, models in per_seed.items()
    }
    models = {
        name: {"description": DESCRIPTIONS[name], "peer": name != DEEPCUTS,
               "seconds": float(np.mean(s)) if s else None, "seconds_per_seed": s}
        for name, s in seconds.items()
    }  # fmt: skip
    out: dict[str, Any] = {"protocol": protocol, "models": models, "categories": categories}
    if blend_weights:
        out["blend_weights_per_seed"] = blend_weights
    out["goals"] = continuation_goals(categories, per_playlist)
    return out


def continuation_goals(
    categories: dict[str, Any], per_playlist: dict[str, dict[str, list[np.ndarray]]] | None = None
) -> dict[str, Any]:
    """The issue's goals on the mean figures: first 25 R-precision >= 1.2x implicit ALS's;
    title only >= 2x same-name popularity's; deepcuts >= every peer on R-precision and NDCG.
    With ``per_playlist``, each ratio also gets its ``ratio_95ci`` (`bootstrap_ratio`)."""

    def interval(cat: str, peer: str) -> dict[str, list[float]]:
        found = (per_playlist or {}).get(cat, {})
        if DEEPCUTS not in found or peer not in found:
            return {}
        return {"ratio_95ci": list(bootstrap_ratio(found[DEEPCUTS], found[peer]))}

    def mean(cat: str, model: str, metric: str) -> float | None:
        try:
            return categories[cat][model][metric]["mean"]
        except KeyError:
            return None

    goals: dict[str, Any] = {}
    mine, als = (
        mean("first 25", DEEPCUTS, "r_precision"),
        mean("first 25", "implicit-als", "r_precision"),
    )
    if mine is not None and als:
        goals["first_25_r_precision_vs_als"] = {
            "ratio": mine / als,
            "goal": 1.2,
            "met": mine / als >= 1.2,
            **interval("first 25", "implicit-als"),
            **_artist_credit_ratio(categories, "first 25", "implicit-als"),
        }
    mine, same = (
        mean("title only", DEEPCUTS, "r_precision"),
        mean("title only", "same-name-popularity", "r_precision"),
    )
    if mine is not None and same:
        goals["title_only_r_precision_vs_same_name"] = {
            "ratio": mine / same,
            "goal": 2.0,
            "met": mine / same >= 2.0,
            **interval("title only", "same-name-popularity"),
            **_artist_credit_ratio(categories, "title only", "same-name-popularity"),
        }
    every = {}
    for cat, models in categories.items():
        if DEEPCUTS not in models:
            continue
        for peer in models:
            if peer == DEEPCUTS:
                continue
            for metric in ("r_precision", "ndcg@500"):
                a, b = mean(cat, DEEPCUTS, metric), mean(cat, peer, metric)
                every[f"{cat} / {peer} / {metric}"] = bool(a >= b)
    if every:
        goals["deepcuts_at_least_every_peer"] = {"met": all(every.values()), "checks": every}
    return goals


def _artist_credit_ratio(categories: dict[str, Any], cat: str, peer: str) -> dict[str, float]:
    """The same ratio with the challenge's artist credit, where both figures are there (shown
    beside the goal, which is judged on the track level)."""
    try:
        mine, theirs = (
            categories[cat][m]["r_precision_artist_credit"]["mean"] for m in (DEEPCUTS, peer)
        )
    except KeyError:
        return {}
    return {"ratio_with_artist_credit": mine / theirs} if theirs else {}
