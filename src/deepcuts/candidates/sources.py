"""The candidate sources of Discover Weekly (and of the home shelves).

Every source works on a whole batch of users at once, and proposes only allowed items: the
batch's model scores are -inf, and its `forbidden` matrix nonzero, for everything the listener
must not get (played, banned, on a recent list).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepcuts.candidates.base import (
    NONE,
    Candidates,
    UserBatch,
    World,
    first_allowed,
    top_k_in_groups,
    top_k_masked,
    top_k_sparse,
    top_k_through,
)
from deepcuts.candidates.shelves import EPOCH_ORDINAL as EPOCH_ORDINAL  # re-exported
from deepcuts.candidates.shelves import NEW_RELEASE_DAYS, in_release_window


@dataclass
class CFSource:
    """The listener's own vector against every item: what the model predicts they will love."""

    k: int = 100
    name: str = "cf"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        items, scores = (a[:, : self.k] for a in batch.ranked())
        return Candidates(self.name, items, scores, np.full_like(items, NONE))


@dataclass
class TasteClusterSource:
    """A few candidates from each of the listener's taste clusters.

    The listener's favourites are grouped by the taste cluster of each item; each of their
    `n_clusters` largest clusters proposes its `k` best allowed items by the model, so that one
    dominant taste does not crowd out the others. `because` is the listener's most liked
    favourite in that cluster.
    """

    n_clusters: int = 3
    k: int = 15
    favourites: int = 30
    name: str = "taste_clusters"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        n = len(batch.users)
        if world.clusters is None:
            return _empty(self.name, n, self.n_clusters * self.k)
        favs = batch.favourites(self.favourites)
        fav_cluster = np.where(favs != NONE, world.clusters[np.clip(favs, 0, None)], -1)
        n_clusters = int(world.clusters.max()) + 1
        counts = np.zeros((n, n_clusters + 1), np.int64)
        np.add.at(counts, (np.repeat(np.arange(n), favs.shape[1]), fav_cluster.ravel() + 1), 1)
        counts[:, 0] = 0  # favourites without a cluster
        top = np.argsort(-counts, axis=1, kind="stable")[:, : self.n_clusters]
        has = np.take_along_axis(counts, top, axis=1) > 0
        clusters = np.where(has, top - 1, -1)
        if clusters.shape[1] < self.n_clusters:  # the world has fewer clusters
            clusters = np.pad(
                clusters, ((0, 0), (0, self.n_clusters - clusters.shape[1])), constant_values=-1
            )
        # The model's exact top items answer the clusters they cover well (not an ANN's).
        ranked = batch.ranked() if batch.retrieve is None else None
        items, scores = top_k_in_groups(
            batch.scores, world.cluster_members, clusters, self.k, ranked, world.clusters
        )
        # The first favourite of each cluster is the most liked one (favourites come best first).
        first_fav = np.argmax(fav_cluster[:, None, :] == clusters[:, :, None], axis=2)
        fav_of_slot = np.where(clusters >= 0, np.take_along_axis(favs, first_fav, axis=1), NONE)
        because = np.where(items != NONE, np.repeat(fav_of_slot, self.k, axis=1), NONE)
        return Candidates(self.name, items, scores, because)


@dataclass
class CooccurrenceSource:
    """Items that share playlists with the listener's favourites."""

    k: int = 30
    favourites: int = 30
    name: str = "playlists"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        n = len(batch.users)
        if world.cooccurrence is None:
            return _empty(self.name, n, self.k)
        liked = batch.history.copy()
        liked.data = (liked.data > 0).astype(np.float32)
        items, scores, because = top_k_through(
            liked, world.cooccurrence, batch.forbidden, batch.favourites(self.favourites), self.k
        )
        return Candidates(self.name, items, scores, because)


@dataclass
class ContentSource:
    """Items that sound (or read) like the listener's favourites: how never-played tracks get in."""

    k: int = 30
    favourites: int = 10
    name: str = "content"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        if world.content_vectors is None:
            return _empty(self.name, len(batch.users), self.k)
        items, scores = top_k_masked(self.profile_scores(batch, world), self.k)
        return Candidates(self.name, items, scores, self.nearest_favourite(batch, world, items))

    def profile(self, batch: UserBatch, world: World) -> np.ndarray:
        """(n, d): the mean content vector of each listener's favourites (0 where none)."""
        favs = batch.favourites(self.favourites)
        vectors = world.content_vectors[np.clip(favs, 0, None)] * (favs != NONE)[:, :, None]
        return vectors.sum(axis=1) / np.maximum((favs != NONE).sum(axis=1), 1)[:, None]

    def profile_scores(self, batch: UserBatch, world: World) -> np.ndarray:
        """(n, n_items): each item's content vector against the listener's profile."""
        profile = self.profile(batch, world)
        values = np.where(np.isfinite(batch.scores), profile @ world.content_vectors.T, -np.inf)
        values[(profile == 0).all(axis=1)] = -np.inf
        return values.astype(np.float32)

    def nearest_favourite(self, batch: UserBatch, world: World, items: np.ndarray) -> np.ndarray:
        favs = batch.favourites(self.favourites)
        v = world.content_vectors
        sims = v[np.clip(items, 0, None)] @ v[np.clip(favs, 0, None)].transpose(0, 2, 1)
        sims[np.broadcast_to((favs == NONE)[:, None, :], sims.shape)] = -np.inf
        best = np.take_along_axis(favs, sims.argmax(axis=2), axis=1)
        return np.where((items != NONE) & (favs != NONE).any(axis=1)[:, None], best, NONE)


@dataclass
class FriendsSource:
    """What the listener's friends stream, scored by the share of friends who stream it;
    `because` is the friend (of the closest `max_friends`) who streams it most."""

    k: int = 20
    max_friends: int = 50
    name: str = "friends"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        n = len(batch.users)
        if world.friends is None or world.listeners is None:
            return _empty(self.name, n, self.k)
        friends = world.friends[batch.users].tocsr().astype(np.float32)
        closest = top_k_sparse(friends, sp.csr_matrix(friends.shape), self.max_friends)[0]
        degree = np.diff(friends.indptr)
        friends.data = np.repeat(1.0 / np.maximum(degree, 1), degree).astype(
            np.float32
        )  # each friend 1/degree
        items, scores, because = top_k_through(
            friends,
            world.streams,
            batch.forbidden,
            closest,
            self.k,
            reason_weights=world.listeners.data,
        )
        return Candidates(self.name, items, scores, because)


@dataclass
class RegionSource:
    """What is rising in the listener's home region; `because` is the region."""

    k: int = 20
    name: str = "region"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        n = len(batch.users)
        if world.rising is None or world.user_region is None:
            return _empty(self.name, n, self.k)
        regions = world.user_region[batch.users]
        items, scores = first_allowed(world.risers, regions, batch.forbidden, self.k)
        because = np.where(items != NONE, regions[:, None], NONE).astype(np.int64)
        return Candidates(self.name, items, scores, because)


@dataclass
class NewReleaseSource:
    """Tracks released in the `days` days before the week starts (`release_window`, the rule
    the home screen's "New releases for you" shares), best first for this listener."""

    k: int = 20
    days: int = NEW_RELEASE_DAYS
    name: str = "new_releases"

    def generate(self, batch: UserBatch, world: World) -> Candidates:
        fresh = in_release_window(world.catalogue.release_day, world.week_start, self.days)
        if not fresh.any():
            return _empty(self.name, len(batch.users), self.k)
        # New tracks have little listening yet: where there are content vectors, match them
        # to the listener's favourites rather than trusting the model's score alone.
        columns = np.flatnonzero(fresh)
        values = batch.scores[:, columns]
        if world.content_vectors is not None:
            profile = ContentSource().profile(batch, world)
            values = np.where(
                np.isfinite(values), profile @ world.content_vectors[columns].T, -np.inf
            )
        sub_items, scores = top_k_masked(values.astype(np.float32, copy=False), self.k)
        items = np.where(sub_items != NONE, columns[np.clip(sub_items, 0, None)], NONE)
        return Candidates(self.name, items, scores, np.full_like(items, NONE))


def _empty(name: str, n: int, k: int) -> Candidates:
    return Candidates(
        name,
        np.full((n, k), NONE, np.int64),
        np.full((n, k), -np.inf, np.float32),
        np.full((n, k), NONE, np.int64),
    )
