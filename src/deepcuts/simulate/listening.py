"""A week of listening: sessions of plays that stream or skip, and the saves and bans they cause.

Every user's week is drawn at once for all users, as flat arrays of events; nothing loops over
events or users in Python.

Each session has one context, and its tracks come from it:
- album, artist, radio, search: the listener picks a genre by taste, then tracks in it by
  popularity, preferring those close to their taste (the best of a few candidates by affinity);
  an album session plays one album in order, an artist session one artist's tracks;
- collection: the listener's own heavy rotation (favourites drawn once, by taste);
- user: a friend's heavy rotation, so friends spread what they love;
- chart: what is popular in the country the listener is in, local artists first.
Whether a play streams (>= 30 s) or is skipped follows the true stream model (see ``truth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .catalogue import Catalogue, region_genre_bias
from .draws import block_cdf, categorical, draw_in_blocks
from .genres import HOUR_WEIGHTS, PLATFORMS, REGIONS
from .people import DAY_MS, Population, city_in
from .truth import StreamModel

CONTEXT_TYPES = ("album", "artist", "radio", "search", "collection", "user", "chart")
ALBUM, ARTIST, RADIO, SEARCH, COLLECTION, USER, CHART = range(len(CONTEXT_TYPES))
CONTEXT_SHARE = np.array([0.17, 0.14, 0.16, 0.08, 0.20, 0.12, 0.13])
SHUFFLE_SHARE = np.array([0.1, 0.3, 0.0, 0.0, 0.6, 0.4, 0.3])

REASONS = ("clickrow", "playbtn", "trackdone", "fwdbtn", "backbtn", "endplay")
CLICKROW, PLAYBTN, TRACKDONE, FWDBTN, BACKBTN, ENDPLAY = range(len(REASONS))

FAVOURITES = 30  # tracks in each listener's heavy rotation
CANDIDATES = 4  # tracks weighed against each other when a listener picks by taste
AFFINITY_SHARPNESS = 5.0  # how strongly that pick prefers the closest track
FRESH_DAYS = 28
FRESH_BOOST = 4.0  # new releases get attention for a few weeks
LOCAL_BOOST = 3.0  # a country's chart favours its own artists
FULL_PLAY_SHARE = 0.7  # of streams, those played to the end
TRAVEL_SHARE = 0.03  # of listeners, abroad in a given week
SESSION_GAP_MS = 60_000
SAVE_MAX, BAN_MAX = 0.25, 0.05
USUAL_PLATFORM_SHARE = 0.85  # of sessions, those on the listener's usual device
OFFLINE_SHARE, INCOGNITO_SHARE = 0.02, 0.005


class TrackSampler:
    """Draws tracks by popularity within a genre, within an artist, or from a country's chart.

    ``weights`` is each track's weight this week: popularity, boosted when fresh, zero when not
    yet released.
    """

    def __init__(self, catalogue: Catalogue, weights: np.ndarray):
        cat = catalogue
        self._cat = cat
        self._by_genre = np.argsort(cat.track_genre, kind="stable")
        genre_sorted = cat.track_genre[self._by_genre]
        self._genre_cdf = genre_sorted + block_cdf(weights[self._by_genre], genre_sorted)
        self._artist_cdf = cat.track_artist + block_cdf(weights, cat.track_artist)
        n_regions = len(REGIONS)
        local = cat.artist_country[cat.track_artist][None, :] == np.arange(n_regions)[:, None]
        chart = weights * region_genre_bias()[:, cat.track_genre] * np.where(local, LOCAL_BOOST, 1)
        rows = np.repeat(np.arange(n_regions), cat.n_tracks)
        self._chart_cdf = rows + block_cdf(chart.ravel(), rows)

    def in_genre(self, rng: np.random.Generator, genres: np.ndarray) -> np.ndarray:
        return self._by_genre[draw_in_blocks(rng, self._genre_cdf, genres)]

    def by_artist(self, rng: np.random.Generator, artists: np.ndarray) -> np.ndarray:
        return draw_in_blocks(rng, self._artist_cdf, artists)

    def on_chart(self, rng: np.random.Generator, countries: np.ndarray) -> np.ndarray:
        return draw_in_blocks(rng, self._chart_cdf, countries) - countries * self._cat.n_tracks

    def by_taste(
        self,
        rng: np.random.Generator,
        user_vectors: np.ndarray,
        genres: np.ndarray,
        candidates: int = CANDIDATES,
    ) -> np.ndarray:
        """For each (user vector, genre): the best of a few popular tracks of the genre, by
        affinity with noise (a Gumbel-max draw from softmax(sharpness * affinity))."""
        cand = self.in_genre(rng, np.repeat(genres[:, None], candidates, axis=1))
        affinity = np.einsum("nd,nkd->nk", user_vectors, self._cat.track_vectors[cand])
        score = AFFINITY_SHARPNESS * affinity + rng.gumbel(size=affinity.shape)
        return cand[np.arange(len(cand)), score.argmax(axis=1)]


def week_weights(catalogue: Catalogue, week_start_day: int) -> np.ndarray:
    """Track weights for a week: released before the week began, fresh releases boosted."""
    age = week_start_day - catalogue.track_release
    fresh = np.where(age <= FRESH_DAYS, FRESH_BOOST, 1.0)
    return np.where(age > 0, catalogue.track_popularity * fresh, 0.0)


def favourites(
    rng: np.random.Generator, catalogue: Catalogue, people: Population, start_day: int
) -> np.ndarray:
    """(U, FAVOURITES) track indices: each listener's heavy rotation, drawn by taste."""
    sampler = TrackSampler(catalogue, week_weights(catalogue, start_day))
    users = np.repeat(np.arange(people.n_users), FAVOURITES)
    genres = categorical(rng, people.taste[users])
    picks = sampler.by_taste(rng, people.vectors[users], genres, candidates=2 * CANDIDATES)
    return picks.reshape(people.n_users, FAVOURITES)


@dataclass
class Plays:
    """One week's plays, in order of user then time. Categorical columns are codes into
    ``CONTEXT_TYPES``, ``REASONS``, ``PLATFORMS``, ``REGIONS`` and ``CITIES``;
    ``context_ref`` indexes the context's own kind (album, artist, seed track, friend,
    chart country) and is -1 where a context has no id (search, collection)."""

    user: np.ndarray
    track: np.ndarray
    played_at: np.ndarray
    ms_played: np.ndarray
    skipped: np.ndarray
    reason_start: np.ndarray
    reason_end: np.ndarray
    shuffle: np.ndarray
    offline: np.ndarray
    incognito: np.ndarray
    platform: np.ndarray
    country: np.ndarray
    city: np.ndarray
    context_type: np.ndarray
    context_ref: np.ndarray

    def subset(self, rows) -> Plays:
        return Plays(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass
class Acts:
    """Saves or bans: who, which track, when (ms since the epoch)."""

    user: np.ndarray
    track: np.ndarray
    at: np.ndarray


@dataclass
class ListeningState:
    """What carries from one week to the next, keyed by ``user * n_tracks + track``."""

    last_end: np.ndarray  # per user: when their last play ended, so sessions never overlap
    saved: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    banned: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    streamed: list[np.ndarray] = field(default_factory=list)


@dataclass
class Week:
    plays: Plays
    saves: Acts
    bans: Acts


@dataclass
class _Sessions:
    """Per session: whose it is, its context, and what it draws from."""

    user: np.ndarray
    context: np.ndarray  # code into CONTEXT_TYPES
    shuffle: np.ndarray
    genre: np.ndarray  # the genre a taste-driven session is in
    seed: np.ndarray  # a track picked by taste: the album, artist or station the session plays
    friend: np.ndarray  # whose heavy rotation a "user" session plays; -1 for other contexts


def simulate_week(
    rng: np.random.Generator,
    catalogue: Catalogue,
    people: Population,
    favourite: np.ndarray,
    model: StreamModel,
    state: ListeningState,
    week_start_day: int,
) -> Week:
    """Draw one week of sessions for every listener and update ``state``."""
    cat = catalogue
    n_users = people.n_users
    sampler = TrackSampler(cat, week_weights(cat, week_start_day))

    # How much each listener plays this week, and where they are.
    n_plays = rng.poisson(people.activity * rng.gamma(2.0, 0.5, n_users))
    user = np.repeat(np.arange(n_users), n_plays)
    country = people.country.copy()
    city = people.city.copy()
    abroad = np.flatnonzero(rng.random(n_users) < TRAVEL_SHARE)
    country[abroad] = (country[abroad] + rng.integers(1, len(REGIONS), len(abroad))) % len(REGIONS)
    city[abroad] = city_in(rng, country[abroad])

    # Sessions: a listener's plays split at random points (geometric session lengths).
    new = rng.random(len(user)) < 1.0 / people.session_mean[user]
    new[np.r_[0, np.cumsum(n_plays)[:-1]][n_plays > 0]] = True
    session = np.cumsum(new) - 1
    first_play = np.flatnonzero(new)
    sessions = _draw_sessions(rng, people, sampler, user[first_play])
    position = np.arange(len(user)) - first_play[session]
    track = _session_tracks(
        rng, cat, people, sampler, favourite, sessions, session, position, country
    )

    # A banned track never plays for that listener again.
    keep = ~np.isin(user * cat.n_tracks + track, state.banned)
    user, track, session = user[keep], track[keep], session[keep]
    first = np.r_[True, session[1:] != session[:-1]]
    last = np.r_[session[1:] != session[:-1], True]

    # Stream or skip, by the true model.
    affinity = np.einsum("nd,nd->n", people.vectors[user], cat.track_vectors[track])
    stream = rng.random(len(user)) < model.probability(affinity, cat.track_popularity[track])
    duration = cat.track_duration[track]
    full = stream & (rng.random(len(user)) < FULL_PLAY_SHARE)
    partial = 30_000 + rng.random(len(user)) * (duration - 30_000)
    early = 1_000 + rng.beta(0.7, 1.5, len(user)) * 28_999
    ms_played = np.where(full, duration, np.where(stream, partial, early)).astype(np.int64)
    reason_end = np.where(full, TRACKDONE, np.where(rng.random(len(user)) < 0.1, BACKBTN, FWDBTN))
    reason_end[last & ~full] = ENDPLAY
    # A play starts the way the one before it ended, or by a click where a session begins.
    reason_start = np.r_[CLICKROW, reason_end[:-1]]
    reason_start[first] = np.where(rng.random(first.sum()) < 0.3, PLAYBTN, CLICKROW)

    utc_offset = np.array([r.utc_offset for r in REGIONS])[country[sessions.user]]
    played_at = _timestamps(
        rng, state, sessions.user, utc_offset, session, ms_played, week_start_day
    )

    n_sessions = len(sessions.user)
    s_platform = np.where(
        rng.random(n_sessions) < USUAL_PLATFORM_SHARE,
        people.platform[sessions.user],
        rng.integers(0, len(PLATFORMS), n_sessions),
    )
    s_offline = rng.random(n_sessions) < OFFLINE_SHARE
    s_incognito = rng.random(n_sessions) < INCOGNITO_SHARE
    context = sessions.context[session]
    seed = sessions.seed[session]
    ref = np.select(
        [context == ALBUM, context == ARTIST, context == RADIO, context == USER, context == CHART],
        [
            cat.track_album[seed],
            cat.track_artist[seed],
            seed,
            sessions.friend[session],
            country[user],
        ],
        -1,
    )
    plays = Plays(
        user=user,
        track=track,
        played_at=played_at,
        ms_played=ms_played,
        skipped=~stream,
        reason_start=reason_start,
        reason_end=reason_end,
        shuffle=sessions.shuffle[session],
        offline=s_offline[session],
        incognito=s_incognito[session],
        platform=s_platform[session],
        country=country[user],
        city=city[user],
        context_type=context,
        context_ref=ref,
    )

    # Bans are rare and come from skips of distant tracks; a ban takes effect at once, so the
    # listener's later plays of the track this week are dropped.
    key = user * cat.n_tracks + track
    bans, state.banned = _new_acts(
        rng, key, played_at, ~stream, BAN_MAX / (1 + np.exp(5 * affinity)), state.banned
    )
    ban_key, ban_at = bans
    banned = np.isin(key, ban_key)
    later = np.zeros(len(key), dtype=bool)
    later[banned] = played_at[banned] > ban_at[np.searchsorted(ban_key, key[banned])]
    plays = plays.subset(~later)
    key, stream, affinity = key[~later], stream[~later], affinity[~later]

    state.streamed.append(np.unique(key[stream]))
    # Saves grow likelier with affinity.
    save_probability = SAVE_MAX / (1 + np.exp(-8 * (affinity - 0.7)))
    saves, state.saved = _new_acts(rng, key, plays.played_at, stream, save_probability, state.saved)
    return Week(plays, _acts(saves, cat.n_tracks), _acts(bans, cat.n_tracks))


def _draw_sessions(
    rng: np.random.Generator, people: Population, sampler: TrackSampler, user: np.ndarray
) -> _Sessions:
    n = len(user)
    context = rng.choice(len(CONTEXT_TYPES), n, p=CONTEXT_SHARE)
    context[(context == USER) & (people.degree[user] == 0)] = SEARCH
    genre = categorical(rng, people.taste[user])
    friend = np.full(n, -1)
    with_friend = context == USER
    friend[with_friend] = people.random_friend(rng, user[with_friend])
    return _Sessions(
        user=user,
        context=context,
        shuffle=rng.random(n) < SHUFFLE_SHARE[context],
        genre=genre,
        seed=sampler.by_taste(rng, people.vectors[user], genre),
        friend=friend,
    )


def _session_tracks(
    rng: np.random.Generator,
    cat: Catalogue,
    people: Population,
    sampler: TrackSampler,
    favourite: np.ndarray,
    sessions: _Sessions,
    session: np.ndarray,
    position: np.ndarray,
    country: np.ndarray,
) -> np.ndarray:
    """The track of every play, drawn from its session's context. ``session`` and
    ``position`` give each play's session and place in it; ``country`` where each user is."""
    user = sessions.user[session]
    context = sessions.context[session]
    seed = sessions.seed[session]
    track = np.empty(len(session), dtype=np.int64)

    m = (context == SEARCH) | (context == RADIO)
    track[m] = sampler.by_taste(rng, people.vectors[user[m]], sessions.genre[session[m]])
    radio_start = (context == RADIO) & (position == 0)  # a station starts from its seed
    track[radio_start] = seed[radio_start]

    m = context == ALBUM
    album = cat.track_album[seed[m]]
    size = cat.album_size[album]
    in_order = position[m] % size
    track[m] = cat.album_first[album] + np.where(
        sessions.shuffle[session[m]], rng.integers(0, size), in_order
    )

    m = context == ARTIST
    track[m] = sampler.by_artist(rng, cat.track_artist[seed[m]])

    m = context == COLLECTION
    track[m] = favourite[user[m], rng.integers(0, favourite.shape[1], m.sum())]

    m = context == USER
    friend = sessions.friend[session[m]]
    track[m] = favourite[friend, rng.integers(0, favourite.shape[1], m.sum())]

    m = context == CHART
    track[m] = sampler.on_chart(rng, country[user[m]])
    return track


def _timestamps(
    rng: np.random.Generator,
    state: ListeningState,
    s_user: np.ndarray,
    s_utc_offset: np.ndarray,
    session: np.ndarray,
    ms_played: np.ndarray,
    week_start_day: int,
) -> np.ndarray:
    """When each play ended (ms since the epoch), given each session's user and UTC offset.

    Sessions start at a local hour drawn from a daily rhythm; a listener's sessions are put in
    order and pushed back where they would overlap the previous one, so one listener's plays
    never overlap and their end times strictly increase, across weeks too.
    """
    n_sessions = len(s_user)
    length = np.bincount(session, weights=ms_played, minlength=n_sessions).astype(np.int64)
    day = rng.integers(0, 7, n_sessions)
    hour = rng.choice(24, n_sessions, p=np.array(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS))
    # The local hour in UTC, wrapped round the week so every session starts within it.
    hour_of_week = (day * 24 + hour - s_utc_offset) % (7 * 24)
    start = week_start_day * DAY_MS + hour_of_week * 3_600_000
    start += rng.integers(0, 3_600_000, n_sessions)
    # Adding user * 2**42 (more than any time in ms until 2109) keeps users apart in one
    # sorted array: a sort puts each user's sessions in order, a running max stays per user.
    apart = s_user * (1 << 42)
    start = np.sort(start + apart) - apart
    start = np.maximum(start, state.last_end[s_user] + SESSION_GAP_MS)
    # start'[j] = max(start[j], start'[j-1] + span[j-1]) for all sessions at once:
    # start'[j] = before[j] + max over i <= j of (start[i] - before[i]), per user.
    span = length + SESSION_GAP_MS
    before = np.cumsum(span) - span
    before -= before[np.searchsorted(s_user, s_user)]
    start = before + np.maximum.accumulate(start - before + apart) - apart

    ends = np.cumsum(ms_played)
    played_at = start[session] + ends - (ends - ms_played)[np.searchsorted(session, session)]
    if len(played_at):
        last_of_user = np.r_[s_user[session[1:]] != s_user[session[:-1]], True]
        state.last_end[s_user[session[last_of_user]]] = played_at[last_of_user]
    return played_at


def _new_acts(rng, key, at, eligible, probability, done):
    """Acts drawn with ``probability`` among ``eligible`` plays: the first per key this week
    whose key was not ``done`` before. Returns (keys, times) sorted by key, and the keys done."""
    drawn = np.flatnonzero(eligible & (rng.random(len(key)) < probability))
    _, first = np.unique(key[drawn], return_index=True)
    drawn = drawn[first]
    drawn = drawn[~np.isin(key[drawn], done)]
    return (key[drawn], at[drawn]), np.union1d(done, key[drawn])


def _acts(keyed: tuple[np.ndarray, np.ndarray], n_tracks: int) -> Acts:
    key, at = keyed
    return Acts(user=key // n_tracks, track=key % n_tracks, at=at)
