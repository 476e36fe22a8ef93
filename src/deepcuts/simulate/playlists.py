"""Playlists listeners make from what they streamed, one genre per playlist."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import Catalogue
from .people import DAY_MS, Population

MAKER_SHARE = 0.35  # of listeners, those who make playlists
MIN_ITEMS, MEAN_ITEMS, MAX_ITEMS = 5, 18, 80


@dataclass(frozen=True)
class Playlists:
    """Playlists by index with their owner, genre and times (ms since the epoch), and their
    items as rows (playlist, position, track, added_at)."""

    owner: np.ndarray
    genre: np.ndarray
    created_at: np.ndarray
    modified_at: np.ndarray
    collaborative: np.ndarray
    followers: np.ndarray
    item_playlist: np.ndarray
    item_position: np.ndarray
    item_track: np.ndarray
    item_added_at: np.ndarray


def make_playlists(
    rng: np.random.Generator,
    catalogue: Catalogue,
    people: Population,
    streamed: np.ndarray,
    last_week_ms: int,
) -> Playlists:
    """Some listeners make 1-3 playlists, each from tracks of one genre they streamed (a genre
    chosen by how much of it they streamed), during the last simulated week.

    ``streamed`` holds the distinct keys ``user * n_tracks + track`` of streams.
    """
    n_tracks, n_genres = catalogue.n_tracks, len(catalogue.centroids)
    user, track = streamed // n_tracks, streamed % n_tracks
    group = user * n_genres + catalogue.track_genre[track]
    count = np.bincount(group, minlength=people.n_users * n_genres)

    # Which (user, genre) groups become playlists: a weighted draw without replacement per
    # user (exponential races), as many as the user makes.
    wanted = np.where(
        rng.random(people.n_users) < MAKER_SHARE, rng.integers(1, 4, people.n_users), 0
    )
    eligible = np.flatnonzero(count >= MIN_ITEMS)
    race = rng.exponential(size=len(eligible)) / count[eligible]
    owner_of = eligible // n_genres
    order = np.lexsort((race, owner_of))
    rank = np.arange(len(order)) - np.searchsorted(owner_of[order], owner_of[order])
    chosen = np.sort(eligible[order][rank < wanted[owner_of[order]]])

    n = len(chosen)
    owner = chosen // n_genres
    wished = np.clip(rng.lognormal(np.log(MEAN_ITEMS), 0.5, n), MIN_ITEMS, MAX_ITEMS)
    size = np.minimum(count[chosen], wished).astype(np.int64)
    created_at = last_week_ms + (rng.random(n) * 6 * DAY_MS).astype(np.int64)
    gap = rng.integers(20_000, 300_000, n)  # time between adding one track and the next
    # Friends follow a playlist now and then; a few playlists catch on far beyond them.
    followers = rng.poisson(0.3 * people.degree[owner]) + np.minimum(rng.zipf(2.5, n) - 1, 10_000)

    # Items: a chosen group's streamed tracks in random order, the first `size` of them.
    shuffled = np.lexsort((rng.random(len(group)), group))
    g_sorted = group[shuffled]
    position = np.arange(len(g_sorted)) - np.searchsorted(g_sorted, g_sorted)
    rows = np.flatnonzero(np.isin(g_sorted, chosen))
    playlist = np.searchsorted(chosen, g_sorted[rows])
    keep = position[rows] < size[playlist]
    rows, item_playlist = rows[keep], playlist[keep]
    item_position = position[rows]

    return Playlists(
        owner=owner,
        genre=chosen % n_genres,
        created_at=created_at,
        modified_at=created_at + (size - 1) * gap,
        collaborative=rng.random(n) < 0.05,
        followers=followers,
        item_playlist=item_playlist,
        item_position=item_position,
        item_track=track[shuffled[rows]],
        item_added_at=created_at[item_playlist] + item_position * gap[item_playlist],
    )
