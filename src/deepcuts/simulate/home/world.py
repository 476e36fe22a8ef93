"""A simulated home screen over a simulated world's ground truth.

`HomeWorld` turns the simulator's `Truth` (true user and track vectors and the true chance a
play streams for 30 s) into a home-screen environment for bandit policies:

- time: the world runs in simulated days (day 0 is a Monday; a visit on day d has weekday
  d mod 7); a listener's batch-made shelves are refreshed daily and new tracks come out daily;
- contexts: a listener (drawn in proportion to how much they listen, so a few heavy listeners
  make many of the visits, as on a real service), hour, weekday, device, country and the genre
  of the current session; the context carries the user's vector *as a CF model would estimate
  it* (the true vector plus noise), never the truth; catalogue cards carry the track's
  estimated vector (noisier for tracks few people play), genre, artist and log popularity;
- releases: ``releases_per_day`` new tracks a day by existing artists, shown on "Fresh finds"
  and "New releases for you" for ``release_window`` days. A release has no plays, so no CF
  vector: its card carries a vector predicted from audio and text (the truth plus noise of
  norm ``content_noise``) and the floor popularity. Its true appeal includes a *hidden* part,
  N(``release_appeal_mean``, ``release_appeal_sd``) on the logit, that no feature reveals and
  only feedback on the release itself (its card-id feature) can teach: whether a new track
  catches on is not predictable before release (Salganik, Dodds and Watts, Science 2006).
  This is the content that keeps a real home screen exploring;
- candidate shelves from ten shelf sources (the shelf types of the home screen), each built
  from those noisy estimates, as real candidate generators would be; with ``daily_candidates``
  the batch-made shelves are drawn once per listener, day and country and reused, and only
  "Keep the vibe going" follows the session;
- the true reward of showing card c of shelf s at slot (j, l), a cascade of look, play and
  stream:

      P(reward) = examine(j, l)
                  * sigmoid(click_bias + logit(u, c) + explanation(u, type(s), moment)
                            + session_boost * [genre(c) = session genre])   # plays it
                  * sigmoid(logit(u, c))                                    # streams >= 30 s

  where sigmoid(logit(u, c)) is the world's true stream probability (``deepcuts.simulate``;
  for a release, with its hidden appeal added), examine(j, l) = shelf_decay^j * card_decay^l
  the chance the listener looks at the slot, and explanation(u, type, moment) = type effect +
  taste direction . u + per-listener noise + an effect of the part of the day and one of the
  device: how much a shelf's title draws this listener in at this moment (some like "Fresh
  finds", others "Jump back in"; "Keep the vibe going" suits some hours and devices more).
  These per-listener and per-moment effects of the explanation are learnable only by showing
  the shelf type to that listener or at that moment.

The world can change on ``change_day`` (for studies of exploration, `HomeWorldConfig`): a shelf
kind that did not exist starts being offered (``new_shelf``; a random 30% of listeners like it
best of all their shelves, the rest average), or every listener's taste drifts halfway toward
another random listener's (``drift``) while policies keep seeing the estimate made before.

Because the reward is separable in the slot, the best page is known exactly: each shelf's cards
by true probability, shelves by the examination-weighted sum of their best cards. That gives
exact regret.

`HomeWorld.from_world(dir)` uses the simulator's truth written under ``dir/truth/`` (and
artist names from ``dir/artists.parquet``); `HomeWorld.simulate(dir, users, tracks, seed)`
first simulates a small world there.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from deepcuts.bandit.policies import PageProbabilities
from deepcuts.bandit.types import BanditInputError, Card, Context, Page, PageLayout, Shelf
from deepcuts.candidates.shelves import SHELF_TYPES  # the one registry of shelf kinds
from deepcuts.simulate import REGION_CODES, Truth, load_truth, simulate_world
from deepcuts.simulate.genres import PLATFORM_SHARE, PLATFORMS


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class HomeWorldConfig:
    """Parameters of the simulated home screen (see the module docstring).

    cards_per_shelf : candidates per shelf.
    shelf_decay, card_decay : examination decay per shelf position and per card position.
    type_effect_sd : spread of each shelf type's effect on the play logit (shared by all).
    taste_effect : scale of the part of the explanation effect that follows the listener's taste.
    explanation_sd : spread of the per-listener, per-shelf-type part.
    cold_noise : extra noise on the vectors of unpopular tracks (1 doubles it for the rarest).
    session_boost : play-logit boost of tracks in the genre of the current session.
    vector_noise : norm of the noise on the vectors policies see (CF estimates, not truth).
    click_bias : base logit of playing a card the listener looked at.
    moment_effect_sd : spread of the effect of each shelf type per part of the day and per
        device (a listener on the morning commute wants other shelves than one at a desk).
    visits_by_activity : listeners open the home screen in proportion to how much they
        listen (the world's weekly plays), so a few heavy listeners make many of the visits;
        otherwise every listener equally often.
    daily_candidates : reuse batch-made shelves per listener, day and country.
    shelf_types : which shelf sources make candidates (all ten by default).
    releases_per_day : new tracks released each simulated day (0: no release stream; "Fresh
        finds" then shows cold catalogue tracks and "New releases" a fixed tenth of it).
    release_window : days a release stays on the "Fresh finds" and "New releases" shelves.
    release_appeal_sd, release_appeal_mean : spread and mean of a release's hidden appeal, the
        part of its logit that no feature reveals (whether it catches on), learnable only from
        feedback on the release itself.
    content_noise : norm of the noise on a release's vector, predicted from its audio and text
        (a release has no plays, so no CF vector).
    change_day : the simulated day on which the world changes (see ``new_shelf`` and
        ``drift``); nothing changes without one of them.
    new_shelf : a shelf type of ``shelf_types`` that does not exist before ``change_day`` and is
        offered from then on (None: none). For a random ``new_shelf_fans`` share of listeners
        its explanation effect is the highest of all their shelf types by ``new_shelf_margin``
        on the play logit; for the rest it is the mean of their other types' effects; it has no
        part-of-day or device effect. The reward model has no data on it when it arrives.
    drift : from ``change_day`` on, each listener's true taste (true vector and genre shares)
        is halfway between what it was and another random listener's. Policies still see the
        CF estimate made before (a batch model that has not caught up), so what worked before
        works less well.
    seed : seed of the world's fixed draws (estimates, explanation effects, artist names).
    """

    cards_per_shelf: int = 10
    shelf_decay: float = 0.8
    card_decay: float = 0.85
    type_effect_sd: float = 0.5
    taste_effect: float = 0.5
    explanation_sd: float = 0.3
    cold_noise: float = 1.0
    session_boost: float = 0.5
    vector_noise: float = 0.5
    click_bias: float = -2.0
    moment_effect_sd: float = 0.5
    visits_by_activity: bool = True
    daily_candidates: bool = True
    shelf_types: tuple[str, ...] = SHELF_TYPES
    releases_per_day: int = 12
    release_window: int = 7
    release_appeal_sd: float = 1.0
    release_appeal_mean: float = 0.0
    content_noise: float = 1.0
    change_day: int | None = None
    new_shelf: str | None = None
    new_shelf_fans: float = 0.3
    new_shelf_margin: float = 1.0
    drift: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.cards_per_shelf, int) or self.cards_per_shelf < 1:
            raise BanditInputError(
                f"cards_per_shelf: must be a positive integer, not {self.cards_per_shelf!r}"
            )
        for name in ("shelf_decay", "card_decay"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise BanditInputError(f"{name}: must be in (0, 1], not {v!r}")
        for name in (
            "type_effect_sd",
            "taste_effect",
            "explanation_sd",
            "moment_effect_sd",
            "cold_noise",
            "session_boost",
            "vector_noise",
            "release_appeal_sd",
            "content_noise",
        ):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v >= 0):
                raise BanditInputError(f"{name}: must be a non-negative number, not {v!r}")
        for name in ("click_bias", "release_appeal_mean"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and np.isfinite(v)):
                raise BanditInputError(f"{name}: must be a finite number, not {v!r}")
        if not isinstance(self.releases_per_day, int) or self.releases_per_day < 0:
            raise BanditInputError(
                f"releases_per_day: must be a non-negative integer, not {self.releases_per_day!r}"
            )
        if not isinstance(self.release_window, int) or self.release_window < 1:
            raise BanditInputError(
                f"release_window: must be a positive integer, not {self.release_window!r}"
            )
        unknown = set(self.shelf_types) - set(SHELF_TYPES)
        if unknown or not self.shelf_types:
            raise BanditInputError(
                f"shelf_types: must be a non-empty subset of {', '.join(SHELF_TYPES)}"
            )
        if self.new_shelf is not None and self.new_shelf not in self.shelf_types:
            raise BanditInputError(
                f"new_shelf: must be one of shelf_types ({', '.join(self.shelf_types)}), "
                f"not {self.new_shelf!r}"
            )
        if self.new_shelf is not None and len(self.shelf_types) < 2:
            raise BanditInputError("new_shelf: needs at least one other shelf type to compare with")
        if (self.new_shelf is not None or self.drift) and not (
            isinstance(self.change_day, int) and self.change_day >= 0
        ):
            raise BanditInputError(
                f"change_day: a non-negative integer is needed with new_shelf or drift, "
                f"not {self.change_day!r}"
            )
        if not 0 <= self.new_shelf_fans <= 1:
            raise BanditInputError(
                f"new_shelf_fans: must be a share in [0, 1], not {self.new_shelf_fans!r}"
            )
        if not (isinstance(self.new_shelf_margin, int | float) and self.new_shelf_margin >= 0):
            raise BanditInputError(
                f"new_shelf_margin: must be a non-negative number, not {self.new_shelf_margin!r}"
            )

    def changed(self, day: int) -> bool:
        """Whether the world has changed by simulated ``day``."""
        return self.change_day is not None and int(day) >= self.change_day


class HomeWorld:
    """The home-screen environment over a world's truth (see the module docstring)."""

    def __init__(
        self,
        truth: Truth,
        config: HomeWorldConfig | None = None,
        artist_names: dict[str, str] | None = None,
    ):
        self.truth = truth
        self.config = config or HomeWorldConfig()
        c = self.config
        rng = np.random.default_rng(c.seed)
        t = truth
        self.n_users, self.n_tracks = len(t.user_ids), len(t.track_ids)
        d = t.user_vectors.shape[1]
        self.user_index = {str(u): i for i, u in enumerate(t.user_ids)}
        self.track_index = {str(x): i for i, x in enumerate(t.track_ids)}
        # what policies see: estimates with noise
        self.user_est = (
            t.user_vectors + rng.normal(0, c.vector_noise / np.sqrt(d), t.user_vectors.shape)
        ).astype(np.float64)
        # tracks few people play have worse CF estimates
        pop_rank = np.argsort(np.argsort(-t.track_popularity)) / max(1, self.n_tracks - 1)
        track_noise = c.vector_noise * (1.0 + c.cold_noise * pop_rank)[:, None] / np.sqrt(d)
        self.track_est = (
            t.track_vectors + rng.normal(0, 1, t.track_vectors.shape) * track_noise
        ).astype(np.float64)
        # how a shelf's explanation changes the appeal of its cards: by type, by the listener's
        # taste (a hidden direction per type) and per listener
        n_types = len(SHELF_TYPES)
        self.type_effect = rng.normal(0, c.type_effect_sd, n_types)
        directions = rng.normal(0, 1 / np.sqrt(d), (n_types, d))
        self.explanation = (
            self.type_effect[None, :]
            + c.taste_effect * (t.user_vectors.astype(np.float64) @ directions.T)
            + rng.normal(0, c.explanation_sd, (self.n_users, n_types))
        )
        # and by the moment: part of the day (night, morning, afternoon, evening) and device
        moments = np.random.default_rng([c.seed, 13])
        self.daypart_effect = moments.normal(0, c.moment_effect_sd, (n_types, 4))
        self.device_effect = moments.normal(0, c.moment_effect_sd, (n_types, len(PLATFORMS)))
        self._device_index = {p: i for i, p in enumerate(PLATFORMS)}
        # the world's changes (drawn apart from the rest, so a changed world is the same before)
        self.new_shelf_fans = np.zeros(self.n_users, dtype=bool)
        if c.new_shelf is not None:
            k = list(SHELF_TYPES).index(c.new_shelf)
            others = [list(SHELF_TYPES).index(x) for x in c.shelf_types if x != c.new_shelf]
            change = np.random.default_rng([c.seed, 17])
            n_fans = int(round(c.new_shelf_fans * self.n_users))
            self.new_shelf_fans[change.choice(self.n_users, n_fans, replace=False)] = True
            rest = self.explanation[:, others]
            self.explanation[:, k] = np.where(
                self.new_shelf_fans, rest.max(axis=1) + c.new_shelf_margin, rest.mean(axis=1)
            )
            self.daypart_effect[k] = 0.0
            self.device_effect[k] = 0.0
        self.drift_partner = np.arange(self.n_users)
        self._vec_before = t.user_vectors.astype(np.float64)
        self._vec_after = self._vec_before
        self._taste_after = np.asarray(t.user_taste, dtype=np.float64)
        if c.drift:
            drift = np.random.default_rng([c.seed, 19])
            partner = drift.integers(0, self.n_users - 1, self.n_users)
            partner += partner >= np.arange(self.n_users)  # another listener, never oneself
            self.drift_partner = partner
            self._vec_after = 0.5 * (self._vec_before + self._vec_before[partner])
            self._taste_after = 0.5 * (self._taste_after + self._taste_after[partner])
        self._context_day: dict[int, tuple[Context, int]] = {}  # with drift: when a visit was
        plays = np.asarray(t.user_weekly_plays, dtype=np.float64)
        self.visit_p = (
            plays / plays.sum()
            if c.visits_by_activity and plays.sum() > 0
            else np.full(self.n_users, 1.0 / self.n_users)
        )
        # true logits of the world's stream model
        sm = t.stream_model
        z = (np.log(t.track_popularity) - sm.log_popularity_mean) / sm.log_popularity_std
        self._track_logit_bias = sm.bias + sm.popularity_weight * z
        self._scale = sm.scale
        self.log_popularity = np.log(t.track_popularity)
        artist_of = {a: i for i, a in enumerate(t.artist_ids)}
        self.track_artist = np.array([artist_of.get(a, -1) for a in t.track_artist_ids])
        self.tracks_by_genre = [np.flatnonzero(t.track_genre == g) for g in range(len(t.genres))]
        self.tracks_by_artist = {
            a: np.flatnonzero(self.track_artist == a) for a in np.unique(self.track_artist)
        }
        self.chart = np.argsort(-t.track_popularity)[: max(200, self.n_tracks // 20)]
        self.cold = np.flatnonzero(pop_rank >= 0.5)
        # "new releases": a fixed random tenth of the catalogue stands for this week's releases
        self.new = rng.choice(self.n_tracks, max(50, self.n_tracks // 10), replace=False)
        self.countries = list(REGION_CODES)
        self.artist_names = dict(artist_names or {})
        self._cards: dict[int, Card] = {}
        self._type_index = {s: i for i, s in enumerate(SHELF_TYPES)}
        self._daily: dict[tuple[int, int, str], list[Shelf]] = {}
        # every track a card can show, the catalogue's first and then the releases, row by row:
        # true vector, true logit offset, genre, artist, and the vector policies see
        self._true_vec = t.track_vectors.astype(np.float64)
        self._logit_bias = self._track_logit_bias.astype(np.float64)
        self._genre = np.asarray(t.track_genre, dtype=np.int64)
        self._artist = self.track_artist.astype(np.int64)
        self._est = self.track_est
        self._ids = [str(x) for x in t.track_ids]
        # releases: artists release in proportion to their fame (their tracks' popularity)
        fame = np.bincount(
            self.track_artist[self.track_artist >= 0],
            weights=t.track_popularity[self.track_artist >= 0],
            minlength=len(t.artist_ids),
        )
        self._release_p = fame / fame.sum()
        counts = np.bincount(self.track_artist[self.track_artist >= 0], minlength=len(fame))
        sums = np.bincount(
            self.track_artist[self.track_artist >= 0],
            weights=self.log_popularity[self.track_artist >= 0],
            minlength=len(fame),
        )
        self._artist_log_pop = np.where(
            counts > 0, sums / np.maximum(counts, 1), self.log_popularity.mean()
        )
        self._artist_genre = np.zeros(len(fame), dtype=np.int64)  # an artist's commonest genre
        for a, rows in self.tracks_by_artist.items():
            if a >= 0:
                self._artist_genre[a] = np.bincount(self._genre[rows]).argmax()
        self._releases: dict[int, np.ndarray] = {}  # day -> rows of that day's releases
        self.release_appeal: dict[str, float] = {}  # release id -> its hidden appeal (truth)

    @classmethod
    def from_world(cls, world_dir: str | Path, config: HomeWorldConfig | None = None) -> HomeWorld:
        """The home screen over a simulated world written by ``deepcuts simulate``."""
        path = Path(world_dir)
        if not (path / "truth").is_dir():
            raise BanditInputError(
                f"world: {path} has no truth/ folder (make one with `deepcuts simulate --out {path}`)"
            )
        names: dict[str, str] = {}
        artists = path / "artists.parquet"
        if artists.is_file():
            table = pq.read_table(artists, columns=["artist_id", "name"])
            names = dict(
                zip(
                    table.column("artist_id").to_pylist(),
                    table.column("name").to_pylist(),
                    strict=True,
                )
            )
        return cls(load_truth(path), config, names)

    @classmethod
    def simulate(
        cls,
        out_dir: str | Path,
        users: int = 400,
        tracks: int = 3000,
        seed: int = 0,
        config: HomeWorldConfig | None = None,
    ) -> HomeWorld:
        """Simulate a small world (one week, no audio) into ``out_dir`` and open its home screen."""
        simulate_world(out_dir, users=users, tracks=tracks, weeks=1, audio_share=0.0, seed=seed)
        return cls.from_world(out_dir, config)

    # -- contexts ---------------------------------------------------------------------------
    def sample_context(self, rng: np.random.Generator, day: int = 0) -> Context:
        """A visit to the home screen on simulated ``day`` (day 0 is a Monday): a listener drawn
        by ``visit_p``, with a random hour, platform, country (mostly their own) and session
        genre."""
        u = int(rng.choice(self.n_users, p=self.visit_p))
        taste = self.taste(u, day)
        session_genre = int(rng.choice(len(taste), p=taste / taste.sum()))
        country = (
            str(self.truth.user_country[u])
            if rng.random() < 0.9
            else self.countries[int(rng.integers(len(self.countries)))]
        )
        context = Context(
            user_id=str(self.truth.user_ids[u]),
            hour=int(rng.integers(24)),
            weekday=int(day) % 7,
            device=str(rng.choice(PLATFORMS, p=np.array(PLATFORM_SHARE) / sum(PLATFORM_SHARE))),
            country=country,
            user_vector=self.user_est[u],
            features={"session_genre": self.truth.genres[session_genre]},
        )
        if self.config.drift:  # the truth behind a visit depends on its day
            self._context_day[id(context)] = (context, int(day))
        return context

    def taste(self, user: int, day: int) -> np.ndarray:
        """A listener's true shares of genres on simulated ``day`` (drifted after a change)."""
        if self.config.drift and self.config.changed(day):
            return self._taste_after[user]
        return np.asarray(self.truth.user_taste[user], dtype=np.float64)

    def true_user_vector(self, context: Context) -> np.ndarray:
        """The listener's true vector at the visit ``context`` (drifted after a change; with
        ``drift`` the context must come from this world's `sample_context`)."""
        u = self.user_index[context.user_id]
        if not self.config.drift:
            return self.truth.user_vectors[u].astype(np.float64)
        hit = self._context_day.get(id(context))
        if hit is None or hit[0] is not context:
            raise BanditInputError(
                "context: with drift the world needs to know a visit's day; use contexts made "
                "by this world's sample_context"
            )
        return self._vec_after[u] if self.config.changed(hit[1]) else self._vec_before[u]

    def card(self, track: int) -> Card:
        hit = self._cards.get(track)
        if hit is None and track >= self.n_tracks:  # a release: no plays yet, a content vector
            t = self.truth
            a = int(self._artist[track])
            hit = Card(
                self._ids[track],
                "track",
                features={
                    "genre": t.genres[int(self._genre[track])],
                    "artist": str(t.artist_ids[a]),
                    "log_popularity": float(self.log_popularity.min() - self.log_popularity.mean())
                    / 3.0,
                    "new_release": True,
                },
                vector=self._est[track],
            )
            self._cards[track] = hit
        if hit is None:
            t = self.truth
            hit = Card(
                str(t.track_ids[track]),
                "track",
                features={
                    "genre": t.genres[int(t.track_genre[track])],
                    "artist": str(t.track_artist_ids[track]),
                    "log_popularity": float(self.log_popularity[track] - self.log_popularity.mean())
                    / 3.0,
                },
                vector=self.track_est[track],
            )
            self._cards[track] = hit
        return hit

    # -- releases ---------------------------------------------------------------------------
    def releases(self, day: int) -> np.ndarray:
        """Rows (card indices) of the tracks released on ``day``, drawn once per day and seed.

        A release is a new track by an existing artist (artists release in proportion to their
        fame): its true vector is near the artist's, as in the catalogue; its true logit offset
        is the stream model's, with a popularity drawn as the artist's tracks' are, plus its
        *hidden appeal* ~ N(release_appeal_mean, release_appeal_sd), whether it catches on,
        which nothing known at release reveals (Salganik, Dodds and Watts, "Experimental study
        of inequality and unpredictability in an artificial cultural market", Science 2006).
        Policies see the release's genre and artist, no plays, and a vector predicted from its
        audio and text (the true vector plus noise of norm ``content_noise``), never a CF one.
        """
        day = int(day)
        hit = self._releases.get(day)
        if hit is not None:
            return hit
        c = self.config
        n = c.releases_per_day
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        t = self.truth
        d = self._true_vec.shape[1]
        rng = np.random.default_rng([c.seed, 11, day + 1_000_000])
        artists = rng.choice(len(self._release_p), n, p=self._release_p)
        true_vec = t.artist_vectors[artists].astype(np.float64) + rng.normal(
            0, 0.35 / np.sqrt(d), (n, d)
        )
        sm = t.stream_model
        log_pop = self._artist_log_pop[artists] + rng.normal(0, 0.8, n)
        appeal = rng.normal(c.release_appeal_mean, c.release_appeal_sd, n)
        z = (log_pop - sm.log_popularity_mean) / sm.log_popularity_std
        bias = sm.bias + sm.popularity_weight * z
        est = true_vec + rng.normal(0, c.content_noise / np.sqrt(d), (n, d))
        start = len(self._ids)
        rows = np.arange(start, start + n)
        ids = [f"release:{day}:{k}" for k in range(n)]
        self._ids.extend(ids)
        self._true_vec = np.vstack([self._true_vec, true_vec])
        self._logit_bias = np.concatenate([self._logit_bias, bias + appeal])
        self._genre = np.concatenate([self._genre, self._artist_genre[artists]])
        self._artist = np.concatenate([self._artist, artists.astype(np.int64)])
        self._est = np.vstack([self._est, est])
        for k, i in enumerate(ids):
            self.track_index[i] = start + k
            self.release_appeal[i] = float(appeal[k])
        self._releases[day] = rows
        return rows

    def recent_releases(self, day: int) -> np.ndarray:
        """Rows of the tracks released in the ``release_window`` days up to ``day``."""
        w = self.config.release_window
        return np.concatenate([self.releases(x) for x in range(int(day) - w + 1, int(day) + 1)])

    # -- shelves ----------------------------------------------------------------------------
    def candidate_shelves(
        self, context: Context, rng: np.random.Generator, day: int = 0
    ) -> list[Shelf]:
        """One shelf per configured shelf type, in random order, each with its candidates, on
        simulated ``day`` (which decides the releases on "Fresh finds" and "New releases").

        With ``daily_candidates`` the shelves a batch job would make (all but the session's
        "Keep the vibe going") are drawn once per listener, day and country and reused on
        every visit that matches, as a home screen's candidates are refreshed daily.
        """
        u = self.user_index[context.user_id]
        day = int(day)
        session_types = ("keep_the_vibe_going",)
        offered = [
            t
            for t in self.config.shelf_types
            if t != self.config.new_shelf or self.config.changed(day)
        ]
        if self.config.daily_candidates:
            key = (u, day, context.country)
            batch = self._daily.get(key)
            if batch is None:
                day_rng = np.random.default_rng(
                    [self.config.seed, 7, u, day + 1_000_000, zlib.crc32(context.country.encode())]
                )
                batch = self._make_shelves(
                    context, day_rng, [t for t in offered if t not in session_types], day
                )
                if len(self._daily) < 500_000:
                    self._daily[key] = batch
            shelves = batch + self._make_shelves(
                context, rng, [t for t in offered if t in session_types], day
            )
        else:
            shelves = self._make_shelves(context, rng, offered, day)
        order = rng.permutation(len(shelves))
        return [shelves[i] for i in order]

    def _make_shelves(
        self, context: Context, rng: np.random.Generator, types: list[str], day: int = 0
    ) -> list[Shelf]:
        u = self.user_index[context.user_id]
        k = self.config.cards_per_shelf
        recent = self.recent_releases(day)
        # the models' scores for this user: CF for the catalogue, content vectors for releases
        est = self._est @ self.user_est[u]
        genres = self.truth.genres
        session = genres.index(str(context.features.get("session_genre", genres[0])))
        taste = self.taste(u, day)
        shelves = []
        for st in types:
            tracks, title, sid = self._source(st, u, est, session, taste, context, rng, k, recent)
            tracks = list(dict.fromkeys(int(x) for x in tracks))[:k]
            if tracks:
                shelves.append(Shelf(sid, st, title, tuple(self.card(x) for x in tracks)))
        return shelves

    def _top(
        self, pool: np.ndarray, est: np.ndarray, k: int, rng: np.random.Generator, temp: float = 0.3
    ) -> np.ndarray:
        """k tracks from ``pool`` drawn by softmax of the estimated score (no replacement)."""
        pool = np.asarray(pool)
        if len(pool) <= k:
            return pool
        s = est[pool] / temp
        g = s + rng.gumbel(size=len(pool))
        return pool[np.argpartition(-g, k)[:k]]

    def _source(self, st, u, est, session, taste, context, rng, k, recent):  # type: ignore[no-untyped-def]
        t = self.truth
        g_names = t.genres
        if st == "discover_weekly":
            pool = rng.choice(self.n_tracks, min(self.n_tracks, 1500), replace=False)
            return self._top(pool, est, k, rng, 0.15), "Your Discover Weekly", "discover_weekly"
        if st in ("because_you_listened", "best_of_artist", "jump_back_in"):
            artists = np.array(sorted(self.tracks_by_artist))
            aff = self.user_est[u] @ t.artist_vectors[artists].T
            if st == "jump_back_in":
                top = artists[np.argsort(-aff)[:5]]
                pool = np.concatenate([self.tracks_by_artist[a] for a in top])
                return self._top(pool, est, k, rng), "Jump back in", "jump_back_in"
            a = artists[int(np.argmax(aff / 0.1 + rng.gumbel(size=len(aff))))]
            artist_id = str(t.artist_ids[a])
            name = self.artist_names.get(artist_id) or artist_id
            if st == "best_of_artist":
                pool = self.tracks_by_artist[a]
                pool = pool[np.argsort(-t.track_popularity[pool])][: 2 * k]
                return (
                    self._top(pool, est, k, rng, 1.0),
                    f"Best of {name}",
                    f"best_of_artist:{artist_id}",
                )
            near = artists[np.argsort(-(t.artist_vectors[artists] @ t.artist_vectors[a]))[1:6]]
            pool = np.concatenate([self.tracks_by_artist[x] for x in near])
            return (
                self._top(pool, est, k, rng),
                f"Because you listened to {name}",
                f"because_you_listened:{artist_id}",
            )
        if st == "keep_the_vibe_going":
            pool = self.tracks_by_genre[session]
            return self._top(pool, est, k, rng, 0.5), "Keep the vibe going", "keep_the_vibe_going"
        if st == "popular_in_region":
            pool = self.chart
            sel = pool[
                np.argsort(-(t.track_popularity[pool] * rng.lognormal(0, 0.5, len(pool))))[:k]
            ]
            return sel, f"Popular in {context.country}", f"popular_in_region:{context.country}"
        if st == "friends_listening":
            friend = int(
                np.argmax(
                    self.user_est @ self.user_est[u] / 0.2 + rng.gumbel(size=self.n_users) * 3
                )
            )
            f_est = self.track_est @ self.user_est[friend]
            pool = rng.choice(self.n_tracks, min(self.n_tracks, 800), replace=False)
            return (
                self._top(pool, f_est, k, rng, 0.2),
                "Your friends are listening",
                "friends_listening",
            )
        if st == "fresh_finds":  # new and cold tracks, by the content and CF models
            pool = rng.choice(self.cold, min(len(self.cold), 600), replace=False)
            if len(recent):
                cold = self._top(pool, est, k, rng, 0.3)
                pool = np.concatenate([recent, cold])
            return self._top(pool, est, k, rng, 0.3), "Fresh finds", "fresh_finds"
        if st == "genre_mix":
            g = int(rng.choice(len(taste), p=taste / taste.sum()))
            pool = self.tracks_by_genre[g]
            w = t.track_popularity[pool]
            sel = rng.choice(pool, min(k, len(pool)), replace=False, p=w / w.sum())
            return sel, f"{g_names[g].title()} mix", f"genre_mix:{g_names[g]}"
        if st == "new_releases":  # this week's releases, by artists the listener likes first
            if len(recent) == 0:
                return self._top(self.new, est, k, rng, 0.5), "New releases for you", "new_releases"
            artists = np.array(sorted(self.tracks_by_artist))
            liked = artists[np.argsort(-(self.user_est[u] @ t.artist_vectors[artists].T))[:10]]
            mine = recent[np.isin(self._artist[recent], liked)]
            if len(mine) < k:
                rest = recent[~np.isin(recent, mine)]
                mine = np.concatenate([mine, self._top(rest, est, k - len(mine), rng, 0.5)])
            return self._top(mine, est, k, rng, 0.5), "New releases for you", "new_releases"
        raise BanditInputError(f"shelf_types: unknown shelf type {st!r}")

    # -- truth ------------------------------------------------------------------------------
    def shelf_effect(self, user: int, shelf_type: str, context: Context) -> float:
        """How much a shelf's title draws this listener in at this moment (play logit)."""
        k = self._type_index.get(shelf_type, 0)
        effect = self.explanation[user, k] + self.daypart_effect[k, context.hour // 6]
        device = self._device_index.get(context.device)
        if device is not None:
            effect += self.device_effect[k, device]
        return float(effect)

    def stream_probabilities(self, context: Context, shelves: list[Shelf]) -> list[np.ndarray]:
        """The true slot-free P(stream) of each card of each shelf (examined slot)."""
        u = self.user_index[context.user_id]
        t = self.truth
        uvec = self.true_user_vector(context)
        session = str(context.features.get("session_genre", ""))
        out = []
        for s in shelves:
            idx = np.array([self.track_index[c.item_id] for c in s.cards])
            logit = self._scale * (self._true_vec[idx] @ uvec) + self._logit_bias[idx]
            same = np.array([t.genres[int(self._genre[i])] == session for i in idx])
            appeal = logit + self.shelf_effect(u, s.shelf_type, context)
            play = _sigmoid(self.config.click_bias + appeal + self.config.session_boost * same)
            out.append(play * _sigmoid(logit))
        return out

    def examination(
        self, shelf_position: np.ndarray | int, card_position: np.ndarray | int
    ) -> np.ndarray:
        c = self.config
        return np.power(c.shelf_decay, shelf_position) * np.power(c.card_decay, card_position)

    def page_expected_reward(self, page: Page, probs: list[np.ndarray] | None = None) -> np.ndarray:
        """The true expected reward of each shown card of a served page, shelf by shelf."""
        shelves = list(page.shelves)
        probs = probs if probs is not None else self.stream_probabilities(page.context, shelves)
        out = []
        for j, (p, idx) in enumerate(zip(probs, page.cards, strict=True)):
            out.append(self.examination(j, np.arange(len(idx))) * p[list(idx)])
        return np.concatenate(out)

    def expected_value(
        self, probs: list[np.ndarray], page_probs: PageProbabilities
    ) -> tuple[float, int]:
        """(expected total reward, number of slots) of a policy's page, from its exact position
        probabilities, before any draw."""
        total = 0.0
        n_slots = 0
        ps = page_probs.shelves
        for j in range(ps.shape[0]):
            for s, pc in enumerate(page_probs.cards):
                if ps[j, s] == 0:
                    continue
                e = self.examination(j, np.arange(pc.shape[0]))
                total += ps[j, s] * float(e @ (pc @ probs[s]))
            n_slots += int(
                sum(ps[j, s] * page_probs.cards[s].shape[0] for s in range(ps.shape[1])) + 0.5
            )
        return total, n_slots

    def optimal_shelves(
        self, probs: list[np.ndarray], layout: PageLayout
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the best page's shelves, best first, and every shelf's value (cards by
        true probability, shelves by the examination-weighted value of their best cards)."""
        e_card = self.examination(0, np.arange(layout.n_cards))
        values = []
        for p in probs:
            top = np.sort(p)[::-1][: layout.n_cards]
            values.append(float(e_card[: len(top)] @ top))
        return np.argsort(-np.array(values), kind="stable")[: layout.n_shelves], np.array(values)

    def optimal_value(self, probs: list[np.ndarray], layout: PageLayout) -> float:
        """The best page's expected total reward: cards by true probability, shelves by value."""
        order, values = self.optimal_shelves(probs, layout)
        best = values[order]
        return float(self.examination(np.arange(len(best)), 0) @ best)
