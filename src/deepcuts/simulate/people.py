"""The simulated listeners: home region, latent taste and habits, and who their friends are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import genre_weights, noise, region_genre_bias
from .genres import PLATFORM_SHARE, REGIONS

DAY_MS = 86_400_000
TASTE_CONCENTRATION = 1.8  # Dirichlet total: small, so a listener loves a few genres
USER_NOISE = 0.8  # personal taste beyond genres, as a norm in the latent space
MEAN_WEEKLY_PLAYS = 50.0
ACTIVITY_SIGMA = 0.9  # lognormal spread of how much people listen: a heavy tail
MAX_WEEKLY_PLAYS = 800.0
MEAN_FRIENDS = 10
# How a friendship forms: through a shared favourite genre, a shared country, or by chance.
FRIEND_BY_GENRE, FRIEND_BY_COUNTRY = 0.6, 0.2

CITIES: tuple[str, ...] = tuple(c for r in REGIONS for c in r.cities)
CITY_COUNT = np.array([len(r.cities) for r in REGIONS])
CITY_START = np.r_[0, np.cumsum(CITY_COUNT)[:-1]]


def city_in(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    """A random city (index into ``CITIES``) in each given country."""
    return CITY_START[country] + (rng.random(len(country)) * CITY_COUNT[country]).astype(int)


@dataclass(frozen=True)
class Population:
    """Listeners by index, and the friendship graph.

    ``taste`` (U, G) are genre weights summing to 1, ``vectors`` (U, LATENT_DIM) float32 the
    latent tastes, ``activity`` the expected plays per week, ``platform`` the usual device
    (index into ``PLATFORMS``), ``session_mean`` the mean plays per session. Friendships are
    undirected pairs (i < j) with the time they began (ms since the epoch), and as a CSR
    adjacency (``friend_indptr``, ``friend_indices``) holding both directions.
    """

    country: np.ndarray
    city: np.ndarray
    taste: np.ndarray
    vectors: np.ndarray
    activity: np.ndarray
    platform: np.ndarray
    session_mean: np.ndarray
    created_at: np.ndarray
    friend_pairs: np.ndarray
    friend_since: np.ndarray
    friend_indptr: np.ndarray
    friend_indices: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.country)

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.friend_indptr)

    def random_friend(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """One friend drawn uniformly for each user given; every one must have a friend."""
        offset = (rng.random(len(users)) * self.degree[users]).astype(np.int64)
        return self.friend_indices[self.friend_indptr[users] + offset]


def build_population(
    rng: np.random.Generator, n_users: int, centroids: np.ndarray, start_ms: int
) -> Population:
    """``n_users`` listeners whose taste leans to their region's genres, and their friends."""
    shares = np.array([r.share for r in REGIONS])
    country = rng.choice(len(REGIONS), n_users, p=shares / shares.sum())
    city = city_in(rng, country)

    prior = genre_weights() * region_genre_bias()
    alpha = TASTE_CONCENTRATION * prior / prior.sum(axis=1, keepdims=True)
    # The tiny floor keeps a row from being all zeros when every gamma draw underflows.
    taste = rng.gamma(alpha[country]) + 1e-12
    taste /= taste.sum(axis=1, keepdims=True)
    vectors = taste @ centroids + noise(rng, n_users, USER_NOISE)

    mu = np.log(MEAN_WEEKLY_PLAYS) - ACTIVITY_SIGMA**2 / 2
    activity = np.clip(rng.lognormal(mu, ACTIVITY_SIGMA, n_users), 1.0, MAX_WEEKLY_PLAYS)
    platform = rng.choice(len(PLATFORM_SHARE), n_users, p=PLATFORM_SHARE)
    session_mean = rng.uniform(4.0, 14.0, n_users)
    created_at = start_ms - (rng.uniform(1.0, 5 * 365.0, n_users) * DAY_MS).astype(np.int64)

    pairs, since = build_friendships(rng, country, taste.argmax(axis=1), created_at, start_ms)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    indptr = np.searchsorted(both[:, 0], np.arange(n_users + 1))

    return Population(
        country=country,
        city=city,
        taste=taste,
        vectors=vectors.astype(np.float32),
        activity=activity,
        platform=platform,
        session_mean=session_mean,
        created_at=created_at,
        friend_pairs=pairs,
        friend_since=since,
        friend_indptr=indptr,
        friend_indices=both[:, 1],
    )


def build_friendships(
    rng: np.random.Generator,
    country: np.ndarray,
    dominant_genre: np.ndarray,
    created_at: np.ndarray,
    start_ms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Undirected friendships with homophily: most link people who love the same genre.

    Returns pairs (E, 2) with the smaller index first, sorted, and when each began.
    """
    n = len(country)
    n_draws = n * MEAN_FRIENDS // 2
    sociability = rng.lognormal(0.0, 0.7, n)
    src = rng.choice(n, n_draws, p=sociability / sociability.sum())
    how = rng.random(n_draws)
    tgt = rng.integers(0, n, n_draws)
    for group, chosen in (
        (dominant_genre, how < FRIEND_BY_GENRE),
        (country, (how >= FRIEND_BY_GENRE) & (how < FRIEND_BY_GENRE + FRIEND_BY_COUNTRY)),
    ):
        # A uniform member of the source's group: members are contiguous once sorted by group.
        members = np.argsort(group, kind="stable")
        first = np.searchsorted(group[members], np.arange(group.max() + 1))
        size = np.bincount(group)
        g = group[src[chosen]]
        tgt[chosen] = members[first[g] + (rng.random(len(g)) * size[g]).astype(np.int64)]

    lo, hi = np.minimum(src, tgt), np.maximum(src, tgt)
    keep = lo != hi
    key = np.unique(lo[keep] * n + hi[keep])
    pairs = np.stack([key // n, key % n], axis=1)
    known = np.maximum(created_at[pairs[:, 0]], created_at[pairs[:, 1]])
    since = known + (rng.random(len(pairs)) * (start_ms - known)).astype(np.int64)
    return pairs, since
