"""Generated text: names, descriptions, tags and playlist titles from each genre's vocabulary.

Random choices are drawn as integer arrays from the generator first, then strings are formatted
from them, so the text is deterministic by seed and cheap (one short format per row).
"""

from __future__ import annotations

import numpy as np

from .genres import GENRE_NAMES, GENRES, OCCASIONS, TITLE_ADJECTIVES, TITLE_NOUNS

FIRST_NAMES = tuple(
    "Ada Bo Carmen Dev Elif Finn Greta Hiro Ines Jonas Kemi Luca Maya Nils Olu Paz Quinn Rosa "
    "Sami Tove Uma Yara".split()
)
LAST_NAMES = tuple(
    "Alves Berg Castillo Dubois Eriksson Fischer Garcia Hayes Ito Jensen Kowalski Lindqvist "
    "Moreau Nakamura Okafor Price Reyes Silva Tanaka Weber".split()
)
ARTIST_KINDS = ("band", "duo", "artist", "collective", "producer", "trio")
TAG_ZIPF = 0.7  # a genre's first tags are the ones most used


def _choose(rng: np.random.Generator, words, n: int) -> list[str]:
    return [words[i] for i in rng.integers(0, len(words), n)]


def _genre_words(rng: np.random.Generator, genres: np.ndarray, attr: str) -> list[str]:
    """One word per row from the row's genre's list ``attr`` (lists are equally long)."""
    lists = [getattr(g, attr) for g in GENRES]
    picks = rng.integers(0, len(lists[0]), len(genres))
    return [lists[g][i] for g, i in zip(genres, picks, strict=True)]


def _genre_word_pairs(
    rng: np.random.Generator, genres: np.ndarray, attr: str
) -> tuple[list[str], list[str]]:
    """Two different words per row from the row's genre's list ``attr``."""
    lists = [getattr(g, attr) for g in GENRES]
    size = len(lists[0])
    first = rng.integers(0, size, len(genres))
    second = (first + rng.integers(1, size, len(genres))) % size
    return (
        [lists[g][i] for g, i in zip(genres, first, strict=True)],
        [lists[g][i] for g, i in zip(genres, second, strict=True)],
    )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def titles(rng: np.random.Generator, genres: np.ndarray) -> list[str]:
    """Names for tracks or albums, some coloured by the genre's moods."""
    n = len(genres)
    pattern = rng.integers(0, 5, n)
    adj, noun, noun2 = (
        _choose(rng, TITLE_ADJECTIVES, n),
        _choose(rng, TITLE_NOUNS, n),
        _choose(rng, TITLE_NOUNS, n),
    )
    mood = _genre_words(rng, genres, "moods")
    return [
        (
            f"{a.title()} {b.title()}",
            b.title(),
            f"{b.title()} of the {c.title()}",
            f"{m.title()} {b.title()}",
            f"{a.title()} {b.title()}s",
        )[p]
        for p, a, b, c, m in zip(pattern, adj, noun, noun2, mood, strict=True)
    ]


def artist_names(rng: np.random.Generator, n: int) -> list[str]:
    pattern = rng.integers(0, 5, n)
    adj, noun, noun2 = (
        _choose(rng, TITLE_ADJECTIVES, n),
        _choose(rng, TITLE_NOUNS, n),
        _choose(rng, TITLE_NOUNS, n),
    )
    first, last = _choose(rng, FIRST_NAMES, n), _choose(rng, LAST_NAMES, n)
    return [
        (
            f"The {a.title()} {b.title()}s",
            f"{f} {s}",
            f"{a.title()} {b.title()}",
            f"{b.title()} {c.title()}s",
            f"{f} and the {c.title()}s",
        )[p]
        for p, a, b, c, f, s in zip(pattern, adj, noun, noun2, first, last, strict=True)
    ]


def display_names(rng: np.random.Generator, n: int) -> list[str]:
    adj, noun = _choose(rng, TITLE_ADJECTIVES, n), _choose(rng, TITLE_NOUNS, n)
    return [f"{a}{b}{k}" for a, b, k in zip(adj, noun, rng.integers(1, 100, n), strict=True)]


def track_descriptions(rng: np.random.Generator, genres: np.ndarray) -> list[str]:
    n = len(genres)
    pattern = rng.integers(0, 3, n)
    d1, d2 = _genre_word_pairs(rng, genres, "descriptors")
    i1, i2 = _genre_word_pairs(rng, genres, "instruments")
    m1 = _genre_words(rng, genres, "moods")
    w = [GENRES[g].name for g in genres]
    out = []
    for p, a, b, c, d, m, g in zip(pattern, d1, d2, i1, i2, m1, w, strict=True):
        if p == 0:
            out.append(f"{a.capitalize()} {g} track built on {c} and {d}; {m} and {b}.")
        elif p == 1:
            out.append(
                f"{_article(m).capitalize()} {m}, {a} piece of {g} with {c} up front and {d} underneath."
            )
        else:
            out.append(
                f"{a.capitalize()} {c}, {d} and {_article(m)} {m} mood: {g} at its most {b}."
            )
    return out


def artist_descriptions(
    rng: np.random.Generator, genres: np.ndarray, demonyms: list[str], cities: list[str]
) -> list[str]:
    n = len(genres)
    pattern = rng.integers(0, 2, n)
    kind = _choose(rng, ARTIST_KINDS, n)
    d1 = _genre_words(rng, genres, "descriptors")
    i1, i2 = _genre_word_pairs(rng, genres, "instruments")
    m1 = _genre_words(rng, genres, "moods")
    w = [GENRES[g].name for g in genres]
    return [
        f"{dem} {g} {k} from {city}, known for {d} {i} and {m} songs."
        if p == 0
        else f"{k.capitalize()} from {city} making {d}, {m} {g} with {i} and {j}."
        for p, dem, g, k, city, d, i, j, m in zip(
            pattern, demonyms, w, kind, cities, d1, i1, i2, m1, strict=True
        )
    ]


def playlist_texts(rng: np.random.Generator, genres: np.ndarray) -> tuple[list[str], list[str]]:
    """Playlist names as listeners write them ("rainy sunday acoustic") and descriptions."""
    n = len(genres)
    pattern = rng.integers(0, 5, n)
    occasion, occasion2 = _choose(rng, OCCASIONS, n), _choose(rng, OCCASIONS, n)
    mood, mood2 = _genre_words(rng, genres, "moods"), _genre_words(rng, genres, "moods")
    word = _genre_words(rng, genres, "words")
    tag = _genre_words(rng, genres, "tags")
    names = [
        (f"{m} {o} {w}", f"{w} for {o}", f"{m} {w}", f"{o} {w}", f"my {m} {w} mix")[p]
        for p, m, o, w in zip(pattern, mood, occasion, word, strict=True)
    ]
    descriptions = [
        f"{m.capitalize()} {w} for {o}, with some {t}. Mostly {m2}."
        for m, w, o, t, m2 in zip(mood, word, occasion2, tag, mood2, strict=True)
    ]
    return names, descriptions


def _top_k(rng: np.random.Generator, n: int, size: int, k: int) -> np.ndarray:
    """(n, k) distinct indices in [0, size), the earlier ones likelier (Zipf), per row."""
    keys = -TAG_ZIPF * np.log1p(np.arange(size)) + rng.gumbel(size=(n, size))
    return np.argsort(-keys, axis=1)[:, :k]


def item_tags(
    rng: np.random.Generator, artist_genre: np.ndarray, track_artist: np.ndarray
) -> tuple[list[tuple[int, str, float]], list[tuple[int, str, float]]]:
    """Editorial tags for artists and tracks: (index, tag, weight) rows, distinct per item.

    Each artist has the genre's name and a style of 4 tags from the genre; a track has the
    genre's name, 1-3 tags of its artist's style and now and then another tag of the genre or
    of a related genre.
    """
    n_artists, n_tracks = len(artist_genre), len(track_artist)
    style = _top_k(rng, n_artists, len(GENRES[0].tags) - 1, 4) + 1  # tags[0] is the genre name
    style_weight = np.round(rng.uniform(0.4, 0.9, (n_artists, 4)), 2)
    artist_rows = []
    for a, g in enumerate(artist_genre):
        tags = GENRES[g].tags
        artist_rows.append((a, tags[0], 1.0))
        artist_rows.extend(
            (a, tags[s], float(w)) for s, w in zip(style[a], style_weight[a], strict=True)
        )

    n_style = rng.integers(1, 4, n_tracks)
    pick = _top_k(rng, n_tracks, 4, 3)
    extra = rng.integers(1, len(GENRES[0].tags), n_tracks)
    extra_kind = rng.random(n_tracks)  # < 0.25: another tag of the genre; < 0.33: a related genre
    related = rng.integers(0, 8, n_tracks)
    track_rows = []
    for t, a in enumerate(track_artist):
        genre = GENRES[artist_genre[a]]
        tags = {genre.tags[0]: 1.0}
        for j in pick[t, : n_style[t]]:
            tags.setdefault(genre.tags[style[a, j]], float(style_weight[a, j]))
        if extra_kind[t] < 0.25:
            tags.setdefault(genre.tags[extra[t]], 0.3)
        elif extra_kind[t] < 0.33:
            other = GENRES[GENRE_NAMES.index(genre.related[related[t] % len(genre.related)])]
            tags.setdefault(other.tags[extra[t]], 0.3)
        track_rows.extend((t, tag, w) for tag, w in tags.items())
    return artist_rows, track_rows
