"""The simulated catalogue: a taste space of genres, and artists, albums and tracks in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from .draws import categorical
from .genres import GENRE_NAMES, GENRES, REGIONS

LATENT_DIM = 16
N_HARMONICS = 10
TRACKS_PER_ARTIST = 20
NEW_RELEASE_SHARE = 0.03  # of albums after an artist's first, released during the simulated weeks
ARTIST_NOISE = 0.8  # norm of an artist's offset from its genre centroid (centroids have norm 1)
TRACK_NOISE = 0.35  # norm of a track's offset from its artist
MIN_TRACKS = 4 * len(GENRES)  # every genre has an artist with up to 4 albums of at least 1 track

EPOCH = date(1970, 1, 1)


def noise(rng: np.random.Generator, n: int, norm: float) -> np.ndarray:
    """n Gaussian vectors in the latent space whose expected norm is about ``norm``."""
    return rng.normal(0.0, norm / np.sqrt(LATENT_DIM), size=(n, LATENT_DIM))


def region_genre_bias() -> np.ndarray:
    """(R, G) genre popularity multipliers per region."""
    return np.array([[r.bias.get(g, 1.0) for g in GENRE_NAMES] for r in REGIONS])


def genre_weights() -> np.ndarray:
    return np.array([g.weight for g in GENRES])


def genre_centroids(rng: np.random.Generator) -> np.ndarray:
    """(G, D) unit vectors; a genre leans towards its related genres, so neighbours overlap."""
    base = rng.normal(size=(len(GENRES), LATENT_DIM))
    index = {name: i for i, name in enumerate(GENRE_NAMES)}
    mixed = base.copy()
    for i, genre in enumerate(GENRES):
        for other in genre.related:
            mixed[i] += 0.35 * base[index[other]]
    return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


@dataclass(frozen=True)
class Catalogue:
    """Artists, albums and tracks by index; tracks are grouped by album, albums by artist.

    Dates are days since 1970-01-01. ``track_popularity`` sums to 1 and is the base rate at
    which listeners reach a track; vectors are float32 (n, LATENT_DIM).
    """

    centroids: np.ndarray
    artist_genre: np.ndarray
    artist_country: np.ndarray
    artist_vectors: np.ndarray
    artist_bpm: np.ndarray
    artist_key: np.ndarray
    artist_timbre: np.ndarray  # (A, N_HARMONICS) multipliers of the genre's harmonic profile
    album_artist: np.ndarray
    album_release: np.ndarray
    album_first: np.ndarray
    album_size: np.ndarray
    track_album: np.ndarray
    track_artist: np.ndarray
    track_genre: np.ndarray
    track_vectors: np.ndarray
    track_popularity: np.ndarray
    track_duration: np.ndarray
    track_release: np.ndarray
    track_bpm: np.ndarray
    track_key: np.ndarray

    @property
    def n_artists(self) -> int:
        return len(self.artist_genre)

    @property
    def n_albums(self) -> int:
        return len(self.album_artist)

    @property
    def n_tracks(self) -> int:
        return len(self.track_album)


def build_catalogue(rng: np.random.Generator, n_tracks: int, start: date, weeks: int) -> Catalogue:
    """Artists in genres, their albums over the years (a few released during the simulated
    weeks), and ``n_tracks`` tracks with popularity, duration and a voice for the synthesizer."""
    n_genres = len(GENRES)
    centroids = genre_centroids(rng)
    n_artists = max(n_genres, n_tracks // TRACKS_PER_ARTIST)

    # Every genre gets an artist; the rest follow the genres' weights.
    p_genre = genre_weights() / genre_weights().sum()
    artist_genre = np.concatenate(
        [np.arange(n_genres), rng.choice(n_genres, n_artists - n_genres, p=p_genre)]
    )
    rng.shuffle(artist_genre)
    # An artist's country follows where its genre is popular.
    by_genre = (np.array([r.share for r in REGIONS])[:, None] * region_genre_bias()).T
    artist_country = categorical(rng, (by_genre / by_genre.sum(1, keepdims=True))[artist_genre])
    artist_vectors = centroids[artist_genre] + noise(rng, n_artists, ARTIST_NOISE)
    # Zipf-like fame: a few artists draw most listeners.
    artist_fame = 1.0 / (1.0 + rng.permutation(n_artists)) ** 0.9

    bpm_lo = np.array([g.sound.bpm[0] for g in GENRES])[artist_genre]
    bpm_hi = np.array([g.sound.bpm[1] for g in GENRES])[artist_genre]
    artist_bpm = bpm_lo + rng.random(n_artists) * (bpm_hi - bpm_lo)
    key_choice = rng.integers(0, 4, n_artists)
    artist_key = np.array(
        [GENRES[g].sound.keys[k] for g, k in zip(artist_genre, key_choice, strict=True)]
    )
    artist_timbre = rng.lognormal(0.0, 0.3, size=(n_artists, N_HARMONICS))

    # Albums: 1-4 per artist, the first at the start of a career of up to 50 years.
    albums_per_artist = rng.integers(1, 5, n_artists)
    album_artist = np.repeat(np.arange(n_artists), albums_per_artist)
    n_albums = len(album_artist)
    start_day = (start - EPOCH).days
    career = np.clip(rng.exponential(8 * 365, n_artists), 120, 50 * 365).astype(np.int64)
    first_album = np.r_[True, album_artist[1:] != album_artist[:-1]]
    age = np.where(first_album, 1.0, rng.random(n_albums)) * career[album_artist]
    album_release = start_day - np.maximum(age, 1).astype(np.int64)
    # New releases come out on the fourth day of a simulated week (a Friday when weeks start
    # on Monday); an artist's first album is always out, so every artist can be played.
    new = ~first_album & (rng.random(n_albums) < NEW_RELEASE_SHARE)
    album_release[new] = start_day + 7 * rng.integers(0, weeks, new.sum()) + 4

    # Tracks: every album has at least one; the rest are spread by a random album size.
    album_size = 1 + rng.multinomial(n_tracks - n_albums, rng.dirichlet(np.full(n_albums, 4.0)))
    album_first = np.r_[0, np.cumsum(album_size)[:-1]]
    track_album = np.repeat(np.arange(n_albums), album_size)
    track_artist = album_artist[track_album]
    track_genre = artist_genre[track_artist]
    track_vectors = artist_vectors[track_artist] + noise(rng, n_tracks, TRACK_NOISE)
    popularity = artist_fame[track_artist] * rng.lognormal(0.0, 0.8, n_tracks)
    duration = np.clip(rng.lognormal(np.log(215_000), 0.28, n_tracks), 120_000, 420_000)

    lo, hi = bpm_lo[track_artist], bpm_hi[track_artist]
    track_bpm = np.clip(artist_bpm[track_artist] * rng.normal(1.0, 0.03, n_tracks), lo, hi)
    # Most tracks are in the artist's key; some move to the fourth or fifth.
    shift = np.where(rng.random(n_tracks) < 0.3, rng.choice([5, 7], n_tracks), 0)
    track_key = (artist_key[track_artist] + shift) % 12

    return Catalogue(
        centroids=centroids.astype(np.float32),
        artist_genre=artist_genre,
        artist_country=artist_country,
        artist_vectors=artist_vectors.astype(np.float32),
        artist_bpm=artist_bpm,
        artist_key=artist_key,
        artist_timbre=artist_timbre,
        album_artist=album_artist,
        album_release=album_release,
        album_first=album_first,
        album_size=album_size,
        track_album=track_album,
        track_artist=track_artist,
        track_genre=track_genre,
        track_vectors=track_vectors.astype(np.float32),
        track_popularity=popularity / popularity.sum(),
        track_duration=duration.astype(np.int64),
        track_release=album_release[track_album],
        track_bpm=np.round(track_bpm, 1),
        track_key=track_key,
    )
