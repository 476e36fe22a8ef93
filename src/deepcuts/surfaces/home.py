"""The home screen's shelves, built from the store and the trained models.

The shelf kinds (their names, title templates and the rules that fill them) are the one
registry in ``deepcuts.candidates.shelves``; here each kind becomes a `ShelfSource`
(``deepcuts.bandit.types``, `KindSource`): a name (the shelf type) and ``shelves(context,
limit)`` returning themed rows of candidate cards whose title is the explanation. The bandit
then chooses which shelves a page shows and orders the cards.

`HomeData` holds what every shelf reads, loaded once: the default model, the listening
signals, the catalogue, item vectors, friends, regions, stored Discover Weekly lists and, where
there are any, the content vectors of tracks nobody has played yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from deepcuts.bandit.impressions import (
    join_rewards,
    pending_impressions,
    rewarded_impressions,
)
from deepcuts.bandit.policies import POLICIES, LinUCB, Policy, ThompsonSampling, make_policy
from deepcuts.bandit.reward import RewardModel, SuccessRule, write_npz
from deepcuts.bandit.types import (
    BanditInputError,
    Card,
    Context,
    Impression,
    Shelf,
)
from deepcuts.candidates.shelves import SHELF_KINDS, ShelfKind
from deepcuts.models.base import Recommender
from deepcuts.signals.catalogue import Catalogue, load_catalogue
from deepcuts.signals.confidence import Interactions
from deepcuts.signals.history import ListenerHistory
from deepcuts.signals.side import SideInfo, build_side_info
from deepcuts.store import Store, StoreError

log = logging.getLogger(__name__)


@dataclass
class HomeData:
    """What the shelf generators read (see the module docstring)."""

    store: Store
    model: Recommender
    interactions: Interactions
    catalogue: Catalogue
    side: SideInfo
    now: datetime
    item_vectors: np.ndarray | None = None
    content_vectors: np.ndarray | None = None
    genres: np.ndarray | None = None  # (n_items,) object: the item's genre or top tag
    _scores: dict[int, np.ndarray] = field(default_factory=dict)
    shelf_cache: dict = field(default_factory=dict)  # what shelf kinds reuse between visits
    _history: ListenerHistory | None = None
    _cards: dict[int, Card] = field(default_factory=dict)

    @property
    def history(self) -> ListenerHistory:
        """Listeners' latest plays, streams, weekly lists, devices and countries at ``now``
        (one query each; `ListenerHistory.prefetch` answers them for everyone at once)."""
        if self._history is None:
            self._history = ListenerHistory(self.store, self.now)
        return self._history

    @classmethod
    def load(
        cls,
        store: Store,
        *,
        model_id: str | None = None,
        now: datetime | None = None,
        content_vectors: np.ndarray | None = None,
    ) -> HomeData:
        from deepcuts.models.cf.training import load_trained

        trained = load_trained(store, model_id)
        inter = trained.interactions(store, now)
        plays = np.asarray(inter.positives().sum(axis=0)).ravel().astype(np.float64)
        catalogue = load_catalogue(store, inter.items, plays)
        vectors = trained.model.item_vectors()
        if vectors is not None:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1, norms)
        latest = now or inter.now or datetime.now()
        if content_vectors is None:  # "Fresh finds" and "sounds like" need audio and text
            from deepcuts.models.parts import load_content

            registered = load_content(store)  # the registered content model, else built here
            if registered is not None:
                content_vectors = registered[0].vectors_for(inter.items)
            else:
                from deepcuts.surfaces.weekly import store_content_vectors

                content_vectors = store_content_vectors(store, inter.items)
        return cls(
            store=store,
            model=trained.model,
            interactions=inter,
            catalogue=catalogue,
            side=build_side_info(store, inter.users, inter.items, until=now),
            now=latest,
            item_vectors=vectors,
            content_vectors=content_vectors,
            genres=_item_genres(store, inter),
        )

    # -- per user ------------------------------------------------------------------------
    def user(self, user_id: str) -> int:
        index = self.interactions.users.get(user_id)
        if index < 0:
            raise KeyError(f"no listener {user_id!r} in the store")
        return index

    def scores(self, user: int) -> np.ndarray:
        """The model's predicted preference of `user` for every item (cached)."""
        if user not in self._scores:
            self.score_listeners([user], keep=True)
        return self._scores[user]

    def score_listeners(self, users: Sequence[int], *, keep: bool = False) -> None:
        """Score these listeners in one batch (the model is batch-first: 2.5 times cheaper a
        listener than one at a time), replacing the listeners cached before unless ``keep``:
        a job that goes through every listener a block at a time holds one block's scores,
        not the whole listeners x items matrix."""
        users = np.asarray(users, np.int64)
        found = np.asarray(self.model.score(users, self.interactions.matrix[users]), np.float32)
        if not keep:
            self._scores.clear()
        self._scores.update(zip(users.tolist(), found, strict=True))

    def played(self, user: int) -> np.ndarray:
        row = self.interactions.matrix[user]
        return row.indices

    def liked(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's positively weighed items and their confidence, most liked first."""
        row = self.interactions.matrix[user]
        keep = row.data > 0
        items, weights = row.indices[keep], row.data[keep]
        order = np.argsort(-weights, kind="stable")
        return items[order], weights[order]

    def top_artists(self, user: int, k: int) -> list[int]:
        items, weights = self.liked(user)
        artists = self.catalogue.artist[items]
        ok = artists >= 0
        if not ok.any():
            return []
        totals = np.bincount(artists[ok], weights=weights[ok])
        order = np.argsort(-totals, kind="stable")
        return [int(a) for a in order[:k] if totals[a] > 0]

    def card(self, item: int) -> Card:
        """The bandit's card for an item (made once: cards are immutable)."""
        card = self._cards.get(item)
        if card is None:
            card = self._cards[item] = self._make_card(item)
        return card

    def _make_card(self, item: int) -> Card:
        cat = self.catalogue
        features: dict[str, str | float] = {"log_popularity": float(np.log1p(cat.plays[item]))}
        if cat.artist[item] >= 0:
            features["artist_id"] = str(cat.artists[cat.artist[item]])
        if self.genres is not None and self.genres[item]:
            features["genre"] = str(self.genres[item])
        vector = None if self.item_vectors is None else self.item_vectors[item]
        if vector is not None and not np.any(vector):
            vector = None
        return Card(
            self.interactions.items.id(item), kind="track", features=features, vector=vector
        )

    def best(
        self, user: int, candidates: np.ndarray, limit: int, *, unplayed: bool = True
    ) -> list[int]:
        """The user's best `limit` of `candidates` by the model, optionally only unplayed ones."""
        candidates = np.unique(candidates)
        if unplayed:
            candidates = np.setdiff1d(candidates, self.played(user), assume_unique=True)
        banned = self.interactions.banned[user].indices
        candidates = np.setdiff1d(candidates, banned, assume_unique=True)
        if len(candidates) == 0:
            return []
        scores = self.scores(user)[candidates]
        return [int(i) for i in candidates[np.argsort(-scores, kind="stable")[:limit]]]

    def similar(
        self, items: np.ndarray, exclude_artists: Sequence[int] = (), k: int = 200
    ) -> np.ndarray:
        """Items most like the given ones by item vectors (their mean), best first."""
        vectors = self.item_vectors if self.item_vectors is not None else self.content_vectors
        if vectors is None or len(items) == 0:
            return np.zeros(0, np.int64)
        profile = vectors[items].mean(axis=0)
        sims = vectors @ profile
        sims[items] = -np.inf
        if len(exclude_artists):
            sims[np.isin(self.catalogue.artist, list(exclude_artists))] = -np.inf
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.isfinite(sims[top])]
        return top[np.argsort(-sims[top], kind="stable")]


def _item_genres(store: Store, inter: Interactions) -> np.ndarray:
    """Each item's genre (tracks) or most used tag (artists, HetRec)."""
    rows = store.conn.execute(
        """
        SELECT track_id AS item_id, genre FROM tracks WHERE genre IS NOT NULL
        UNION ALL
        SELECT item_id, arg_max(tag, n) FROM (
            SELECT item_id, lower(tag) AS tag, count(*) AS n FROM item_tags GROUP BY 1, 2
        ) GROUP BY item_id
        """
    ).fetchall()
    genres = np.full(len(inter.items), None, dtype=object)
    for item_id, genre in rows:
        i = inter.items.get(item_id)
        if i >= 0 and genres[i] is None:
            genres[i] = genre
    return genres


@dataclass
class KindSource:
    """A shelf kind of the registry (``deepcuts.candidates.shelves.SHELF_KINDS``) as a
    `ShelfSource`: its picks for a visit become shelves of cards, ``<kind>:<key>`` their id."""

    kind: ShelfKind
    data: HomeData

    @property
    def name(self) -> str:
        return self.kind.name

    def shelves(self, context: Context, limit: int) -> list[Shelf]:
        return [
            Shelf(
                f"{self.kind.name}:{pick.key}",
                self.kind.name,
                pick.title,
                tuple(self.data.card(i) for i in pick.items),
            )
            for pick in self.kind.shelves(self.data, context, limit)
        ]


def shelf_sources(data: HomeData) -> list[KindSource]:
    """One source per shelf kind of the registry, in its order."""
    return [KindSource(kind, data) for kind in SHELF_KINDS]


def candidate_shelves(data: HomeData, context: Context, limit: int = 20) -> list[Shelf]:
    """Every shelf every source offers for this context, no card on two of them.

    A card two shelves offer stays on the one that ranks it higher (the earlier source on a
    tie) and leaves the other, so a page never shows the same track twice; a shelf left empty
    is dropped. Doing it here, before the policy chooses, keeps every logged propensity exact.
    """
    offered: list[Shelf] = []
    for source in shelf_sources(data):
        try:
            offered += source.shelves(context, limit)
        except KeyError:
            raise
        except Exception:  # one broken source must not take the home screen down
            log.exception("shelf source %s failed for %s", source.name, context.user_id)
    home: dict[str, tuple[int, int]] = {}  # item -> (its best rank, the shelf that has it there)
    for s, shelf in enumerate(offered):
        for rank, card in enumerate(shelf.cards):
            home[card.item_id] = min(home.get(card.item_id, (rank, s)), (rank, s))
    shelves = []
    for s, shelf in enumerate(offered):
        cards = tuple(c for c in shelf.cards if home[c.item_id][1] == s)
        if cards:
            shelves.append(replace(shelf, cards=cards))
    return shelves


# -- serving a page ----------------------------------------------------------------------------
HOME_POLICIES = tuple(POLICIES)  # every policy `make_policy` makes
OWN_STATE = ("thompson", "linucb")  # policies with models of their own (`HomeBandit.learners`)
HOME_MODEL_FILE = "home-bandit.npz"
SESSION_GAP = timedelta(minutes=30)


def home_model_path(store: Store) -> Path:
    """Where the home screen's reward model lives: ``models/home-bandit.npz`` beside the store."""
    from deepcuts.models.cf.training import model_dir

    return model_dir(store) / HOME_MODEL_FILE


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    vector = np.asarray(vector, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(vector))
    if norm == 0 or not np.isfinite(norm):
        return None
    return vector / norm


def user_vector(data: HomeData, user: int) -> np.ndarray | None:
    """The listener's taste vector in the space of the item vectors, unit length (so a card's
    CF score is a cosine), from the model's user factors (folded in for listeners it was not
    trained on); None where the model has no factors."""
    if data.item_vectors is None:
        return None
    d = data.item_vectors.shape[1]
    row = data.interactions.matrix[[user]]
    for model in (data.model, getattr(data.model, "als_", None)):
        if model is None or not hasattr(model, "user_vectors"):
            continue
        try:
            vec = np.asarray(model.user_vectors(np.array([user]), row), dtype=np.float64)[0]
        except Exception:  # a model that cannot fold this listener in: no vector
            log.debug("no user vector from %s for %s", type(model).__name__, user, exc_info=True)
            continue
        if len(vec) == d + 1:  # BPR keeps a bias column the item vectors do not have
            vec = vec[:d]
        if len(vec) == d:
            return _unit(vec)
    return None


def item_vector(data: HomeData, item_id: str) -> np.ndarray | None:
    """A card's vector as `HomeData.card` gives it (unit length; None if the item has none)."""
    i = data.interactions.items.get(item_id)
    if i < 0 or data.item_vectors is None:
        return None
    vector = data.item_vectors[i]
    return None if not np.any(vector) else vector


def session_features(data: HomeData, user_id: str, plays: int = 5) -> dict[str, str | int]:
    """Features of the listener's current (latest) session: the genre most of its last plays
    share and how many plays it has had so far (at most ``plays`` are read; plays more than 30
    minutes apart start a new session)."""
    rows = data.history.latest_plays(user_id, plays)
    session = rows[:1]
    for prev, row in zip(rows, rows[1:], strict=False):
        if prev[1] - row[1] > SESSION_GAP:
            break
        session.append(row)
    if not session:
        return {}
    features: dict[str, str | int] = {"session_plays": len(session)}
    if data.genres is not None:
        genres = [
            data.genres[i] for i in (data.interactions.items.get(r[0]) for r in session) if i >= 0
        ]
        genres = [g for g in genres if g]
        if genres:
            features["session_genre"] = max(set(genres), key=lambda g: (genres.count(g), g))
    return features


def user_context(
    data: HomeData,
    user_id: str,
    *,
    at: datetime | None = None,
    hour: int | None = None,
    weekday: int | None = None,
    device: str | None = None,
    country: str | None = None,
) -> Context:
    """The context of a visit: hour and weekday of ``at`` (default now) unless given; the
    listener's most used platform and their home country (else where they listen most) unless
    given; their taste vector; and features of their current session. An unknown listener is
    a KeyError."""
    user = data.user(user_id)
    moment = at or datetime.now()
    if device is None:
        device = data.history.usual_device(user_id) or "unknown"
    if country is None:
        country = data.history.home_country(user_id) or "unknown"
    return Context(
        user_id=user_id,
        hour=moment.hour if hour is None else hour,
        weekday=moment.weekday() if weekday is None else weekday,
        device=str(device).lower(),
        country=str(country).upper() if country != "unknown" else country,
        user_vector=user_vector(data, user),
        features=session_features(data, user_id),
    )


class UnknownListener(KeyError):
    """The store has no listener with this id."""

    def __str__(self) -> str:
        return f"no listener {self.args[0]!r} in the store"


@dataclass
class Feedback:
    """What one feedback step did: plays joined to impressions, impressions learnt from."""

    streamed: int = 0
    not_streamed: int = 0
    learned: int = 0
    batches: int = 0


@dataclass
class HomeBandit:
    """The home screen's learnt state, kept between calls in ``models/home-bandit.npz`` beside
    the store (one file of NumPy arrays with JSON metadata, no pickle, replaced atomically):
    the reward model, how many micro-batches it has learnt (the version logged with every
    impression), the latest reward it has learnt from, and the state of the policies that
    keep their own (``learners``: Thompson sampling's bootstrap ensemble, LinUCB's linear
    model), each saved once the home screen has served with it.

    Every policy of `make_policy` serves the home screen (``HOME_POLICIES``): epsilon-greedy
    ranks by the shared reward model and explores, greedy ranks by it, uniform ignores it,
    Thompson sampling and LinUCB rank by their own models. All of them log propensities, and
    every model learns from every logged impression (the reward model with inverse-propensity
    weights), whichever policy served it. The file starts with the shared reward model, so
    `RewardModel.load` reads it too.
    """

    reward_model: RewardModel
    path: Path
    version: int = 0
    watermark: datetime | None = None
    learners: dict[str, Policy] = field(default_factory=dict)
    # The policies that rank by the shared model, made once each: making one seeds a fresh
    # random generator from the OS (10 us against 0.3 us for a kept one).
    _serving: dict[tuple[str, float], Policy] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def load(cls, store: Store, random_state: int | None = 0) -> HomeBandit:
        """The saved model, or a new one if none is saved yet. A file that is not a home
        reward model is a StoreError naming it."""
        path = home_model_path(store)
        if not path.is_file():
            return cls(RewardModel(random_state=random_state), path)
        return cls.read(path)

    @classmethod
    def read(cls, path: Path) -> HomeBandit:
        """The home models saved at ``path`` (``save``'s file: the reward model, its version
        and watermark, and the models of the policies that keep their own)."""
        try:
            model = RewardModel.load(path)
            with np.load(path, allow_pickle=False) as saved:
                arrays = {k: saved[k] for k in saved.files if "." in k}
            extra = model.extra
            learners = {
                name: _load_learner(name, meta, arrays)
                for name, meta in dict(extra.get("learners") or {}).items()  # type: ignore[call-overload]
            }
        except (BanditInputError, OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{path}: not a readable home reward model ({exc}); move it away to start a new one"
            ) from exc
        mark = extra.get("watermark")
        return cls(
            model,
            path,
            int(extra.get("version", 0)),  # type: ignore[call-overload]
            None if not mark else datetime.fromisoformat(str(mark)),
            learners,
        )

    def save(self, path: Path | None = None) -> Path:
        """Write everything to ``path`` (default: where it was loaded from) in one file."""
        path = path or self.path
        learners: dict[str, object] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, policy in self.learners.items():
            meta, state = _learner_state(policy)
            learners[name] = meta
            arrays.update({f"{name}.{k}": v for k, v in state.items()})
        meta, model_arrays = self.reward_model.state(
            extra={
                "kind": "deepcuts.home",
                "version": self.version,
                "watermark": None if self.watermark is None else self.watermark.isoformat(),
                "learners": learners,
            }
        )
        write_npz(path, meta, {**model_arrays, **arrays})
        return path

    def policy(
        self,
        name: str = "epsilon-greedy",
        epsilon: float = 0.1,
        *,
        store: Store | None = None,
        data: HomeData | None = None,
        vectors: Vectors | None = None,
    ) -> Policy:
        """Policy ``name`` (any of ``HOME_POLICIES``, made by `make_policy`) serving with this
        state; one policy per name and epsilon, whose random draws go on from call to call.
        Epsilon-greedy and greedy rank by the shared reward model. Thompson sampling and
        LinUCB keep models of their own: the first time one is asked for, it is made and,
        given ``store`` and ``data``, learns from every rewarded impression logged so far
        (whichever policy served it), then keeps learning in `learn` and is saved with the
        rest."""
        if name not in HOME_POLICIES:
            raise BanditInputError(
                f"policy: the home screen serves with {', '.join(HOME_POLICIES)}, not {name!r}"
            )
        if name in OWN_STATE:
            policy = self.learners.get(name)
            if policy is None:
                policy = make_policy(name)
                if store is not None and (data is not None or vectors is not None):
                    look_up = vectors or _vectors(data)  # type: ignore[arg-type]
                    history = _rewarded(
                        store, look_up, rewarded_after=datetime(1970, 1, 1, tzinfo=UTC)
                    )
                    for start in range(0, len(history), 256):
                        policy.update_params(history[start : start + 256])
                self.learners[name] = policy
            return policy
        params: dict[str, object] = {}
        if name in ("epsilon-greedy", "greedy"):
            params["reward_model"] = self.reward_model
        if name == "epsilon-greedy":
            params["epsilon"] = epsilon
        key = (name, epsilon if name == "epsilon-greedy" else 0.0)
        policy = self._serving.get(key)
        if policy is None or getattr(policy, "reward_model", None) is not params.get(
            "reward_model"
        ):  # a replaced reward model gets a new policy
            policy = self._serving[key] = make_policy(name, **params)
        policy.n_updates_ = self.version
        return policy

    def learn(
        self,
        store: Store,
        data: HomeData | None = None,
        *,
        vectors: Vectors | None = None,
        now: datetime | None = None,
        rule: SuccessRule | None = None,
        window: timedelta = timedelta(hours=1),
        batch_size: int = 256,
    ) -> Feedback:
        """The feedback loop: join plays since the last call to the logged impressions as rewards
        (`join_rewards`), then update the reward model (and every policy in ``learners``) with
        the impressions newly rewarded, in micro-batches of ``batch_size`` in the order they
        were served. Those are the ones this join rewarded and any rewarded after the latest
        reward learnt (rewards another process joined; on the first call, every rewarded
        impression in the store); none is learnt twice. The listeners' and cards' vectors come
        from ``data`` or, where it is not loaded (the learn job reads a published snapshot),
        from ``vectors`` = (user id -> vector, item id -> vector)."""
        if vectors is None:
            if data is None:
                raise ValueError("learn needs the home data or the vectors' look-ups")
            vectors = _vectors(data)
        pending = pending_impressions(store)
        joined = join_rewards(store, rule, window, now)
        fresh = _rewarded(
            store,
            vectors,
            ids=pending,
            rewarded_after=self.watermark or datetime(1970, 1, 1, tzinfo=UTC),
        )
        feedback = Feedback(joined["streamed"], joined["not_streamed"])
        if not fresh:
            return feedback
        learners = [make_policy("greedy", reward_model=self.reward_model), *self.learners.values()]
        for start in range(0, len(fresh), batch_size):
            for learner in learners:
                learner.update_params(fresh[start : start + batch_size])
            feedback.batches += 1
        self.version += feedback.batches
        feedback.learned = len(fresh)
        marks = [im.reward_at for im in fresh if im.reward_at is not None]
        if marks:
            latest = max(marks)
            self.watermark = latest if self.watermark is None else max(self.watermark, latest)
        return feedback


Vectors = tuple[Callable[[str], np.ndarray | None], Callable[[str], np.ndarray | None]]


def _vectors(data: HomeData) -> Vectors:
    """(user id -> taste vector, item id -> card vector) as the home screen serves with them."""
    users = data.interactions.users
    return (
        lambda u: user_vector(data, users.get(u)) if users.get(u) >= 0 else None,
        lambda i: item_vector(data, i),
    )


def _rewarded(
    store: Store, vectors: Vectors, ids: Sequence[str] = (), rewarded_after: datetime | None = None
) -> list[Impression]:
    """`rewarded_impressions` with the given vector look-ups."""
    return rewarded_impressions(
        store,
        ids=ids,
        rewarded_after=rewarded_after,
        user_vector=vectors[0],
        card_vector=vectors[1],
    )


def _learner_state(policy: Policy) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """JSON metadata and arrays of a policy that keeps its own model (``OWN_STATE``)."""
    meta: dict[str, object] = {"n_updates": policy.n_updates_}
    arrays: dict[str, np.ndarray] = {}
    if isinstance(policy, ThompsonSampling):
        members = []
        for k, member in enumerate(policy.members):
            m_meta, m_arrays = member.state()
            if k:  # the members share one featurizer: its feature names are saved once
                del m_meta["names"], m_meta["linear_only"]
            members.append(m_meta)
            arrays.update({f"{k}.{name}": v for name, v in m_arrays.items()})
        meta.update(n_members=policy.n_members, members=members)
    elif isinstance(policy, LinUCB):
        meta.update(alpha=policy.alpha, ridge=policy.ridge, n_buckets=policy.n_buckets)
        if policy.A_inv_ is not None:
            arrays.update(A_inv=policy.A_inv_, b=policy.b_)  # type: ignore[arg-type]
    else:
        raise BanditInputError(f"policy: {policy.policy_id} keeps no state of its own")
    return meta, arrays


def _load_learner(name: str, meta: dict, arrays: dict[str, np.ndarray]) -> Policy:
    """The policy `_learner_state` saved under ``name`` (its arrays prefixed ``name.``)."""
    mine = {k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{name}.")}
    if name == "thompson":
        policy = make_policy(name, n_members=int(meta["n_members"]))
        members: list[RewardModel] = []
        for k, m_meta in enumerate(meta["members"]):
            m_arrays = {a[len(f"{k}.") :]: v for a, v in mine.items() if a.startswith(f"{k}.")}
            shared = members[0].featurizer if members else None
            members.append(RewardModel.from_state(m_meta, m_arrays, shared, where=name))
        policy.members = members  # type: ignore[attr-defined]
    elif name == "linucb":
        policy = make_policy(
            name, alpha=meta["alpha"], ridge=meta["ridge"], n_buckets=int(meta["n_buckets"])
        )
        if "A_inv" in mine:
            policy.A_inv_, policy.b_ = mine["A_inv"], mine["b"]  # type: ignore[attr-defined]
    else:
        raise BanditInputError(f"learners: {name!r} is not a policy that keeps its own model")
    policy.n_updates_ = int(meta["n_updates"])
    return policy
