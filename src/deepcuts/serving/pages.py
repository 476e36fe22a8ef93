"""What a request computes from a published snapshot: cheap, read-only, no training.

The HTTP routers and the `deepcuts home` command both call these, so a page is built one way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from deepcuts.bandit.impressions import probability_text, served_page_row
from deepcuts.bandit.policies import Policy
from deepcuts.bandit.types import Context, PageLayout, ServedPage, Shelf
from deepcuts.io.playlists import ExportTrack, PlaylistExport
from deepcuts.snapshots.published import Published
from deepcuts.store.live import PageRow
from deepcuts.surfaces.weekly import parse_week


class NotFound(LookupError):
    """An id the snapshot does not know (a listener, a track, an artist, a week)."""

    def __init__(self, what: str, value: str, hint: str = ""):
        self.what, self.value = what, value
        super().__init__(f"no {what} {value!r}" + (f": {hint}" if hint else ""))


def user_index(published: Published, user_id: str) -> int:
    u = published.user_index.get(user_id)
    if u is None:
        raise NotFound("listener", user_id, "not in the published snapshot")
    return u


def item_index(published: Published, item_id: str, what: str = "track") -> int:
    i = published.item_index.get(item_id)
    if i is None:
        raise NotFound(what, item_id, "not in the published catalogue")
    return i


@dataclass
class HomePage:
    served: ServedPage
    policy: Policy
    layout: PageLayout
    log_row: PageRow  # the page and its impressions, as the live log keeps them

    @property
    def n_candidates(self) -> int:
        """How many candidate shelves the policy chose from."""
        return len(self.served.candidates)


def home_context(
    published: Published,
    user: int,
    *,
    at: datetime,
    hour: int | None = None,
    weekday: int | None = None,
    device: str | None = None,
    country: str | None = None,
) -> Context:
    """The visit's context: what the request says, else the time of the request and the
    listener's usual device and home country as published, their taste vector and session."""
    row = published.user_profile(user)
    features: dict[str, str | int] = {}
    if row["session_plays"]:
        features["session_plays"] = int(row["session_plays"])
    if isinstance(row["session_genre"], str) and row["session_genre"]:
        features["session_genre"] = row["session_genre"]
    return Context(
        user_id=str(row["user_id"]),
        hour=at.hour if hour is None else hour,
        weekday=at.weekday() if weekday is None else weekday,
        device=(device or str(row["device"])).lower(),
        country=(country or str(row["country"])).upper()
        if (country or row["country"] != "unknown")
        else "unknown",
        user_vector=published.user_vector(user),
        features=features,
    )


def home_page(
    published: Published,
    user_id: str,
    *,
    policy: str = "epsilon-greedy",
    epsilon: float = 0.1,
    layout: PageLayout | None = None,
    at: datetime | None = None,
    hour: int | None = None,
    weekday: int | None = None,
    device: str | None = None,
    country: str | None = None,
) -> HomePage:
    """Choose and order a listener's shelves and cards with the published reward model.

    The candidate shelves were computed at publish time; the policy (epsilon-greedy by
    default, as in BaRT) picks from them for this context and reports every shown card's
    propensity. The caller logs ``log_row`` (the live log) before answering.
    """
    user = user_index(published, user_id)
    when = at or datetime.now(UTC)
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    context = home_context(
        published, user, at=when, hour=hour, weekday=weekday, device=device, country=country
    )
    shelves = published.shelves(user)
    if not shelves:
        raise NotFound(
            "home shelves for listener", user_id, "no shelf source had anything for them"
        )
    # The published models: epsilon-greedy and greedy rank by the shared reward model;
    # Thompson sampling and LinUCB by their own (a fresh one until the learn job has made it).
    layout = layout or PageLayout()
    # Scoring may grow the models' feature space (a device or card never seen): one thread at
    # a time per published version.
    with published.models_lock:
        chooser = published.bandit.policy(policy, epsilon)
        served = chooser.serve_page(context, shelves, layout, served_at=when)
    return HomePage(served, chooser, layout, served_page_row(served))


# JSON text of a string (as `json.dumps(..., ensure_ascii=False)` writes one)
_string = json.encoder.encode_basestring  # type: ignore[attr-defined]

# The policy's fields a page shows (`PolicyOut`'s).
PAGE_POLICY = ("policy_id", "version", "epsilon")


def page_json(published: Published, home: HomePage) -> bytes:
    """A served page as the JSON body of `HomeOut`: shelves in order, each card with its
    impression id and propensities, names from the snapshot.

    The body is joined from parts instead of built as objects and encoded: each item's
    fields are encoded once per snapshot (`Published.item_json`), and a page's twenty cards
    add only their slot, impression id and propensities (which `Policy.serve_page` checks are
    in (0, 1], so their ``repr`` is valid JSON)."""
    served = home.served
    item_index, item_json = published.item_index, published.item_json
    shown: list[tuple[int, Shelf, float, list[str]]] = []  # each shelf with its cards' JSON
    for j, shelf, pos, card, p_shelf, p_card, _, impression_id in served.slots():
        if pos == 0:
            shown.append((j, shelf, p_shelf, []))
        shown[-1][3].append(
            f'{{"position":{pos},"impression_id":{_string(impression_id)},'
            f"{item_json(item_index[card.item_id])},"
            f'"propensity":{probability_text(p_shelf * p_card)},'
            f'"card_propensity":{probability_text(p_card)}}}'
        )
    shelves = [
        f'{{"position":{j},"shelf_id":{_string(shelf.shelf_id)},'
        f'"shelf_type":{_string(shelf.shelf_type)},"title":{_string(shelf.title)},'
        f'"shelf_propensity":{probability_text(p_shelf)},"cards":[{",".join(cards)}]}}'
        for j, shelf, p_shelf, cards in shown
    ]
    c = served.context
    policy = home.policy.describe()
    head = json.dumps(
        {
            "page_id": served.page_id,
            "user_id": c.user_id,
            "served_at": served.served_at.isoformat(),
            "policy": {k: policy.get(k) for k in PAGE_POLICY},
            "snapshot_version": published.version,
            "context": {
                "hour": c.hour,
                "weekday": c.weekday,
                "device": c.device,
                "country": c.country,
                "has_user_vector": c.user_vector is not None,
                "session_genre": c.features.get("session_genre"),
                "session_plays": c.features.get("session_plays"),
            },  # fmt: skip
            "candidate_shelves": home.n_candidates,
        },
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )
    return f'{head[:-1]},"shelves":[{",".join(shelves)}]}}'.encode()


def weekly_playlist(published: Published, user_id: str, week: str | None = None) -> PlaylistExport:
    """A listener's stored Discover Weekly (the latest one unless ``week`` is given)."""
    user_index(published, user_id)
    if week is None:
        week = published.latest_week(user_id)
        if week is None:
            raise NotFound(
                "Discover Weekly for listener", user_id, "run `deepcuts weekly` and publish"
            )
    monday = parse_week(week)
    rows = published.weekly_entries(user_id, week)
    if rows is None:
        raise NotFound(f"Discover Weekly for {user_id!r} in week", week)
    fields = published.track_fields
    tracks = []
    for item, reason, score in rows:
        item_id, name, artist, album, duration_ms, location = fields(int(item))
        tracks.append(
            ExportTrack(
                item_id,
                name,
                artist,
                album,
                duration_ms,
                location,
                None if reason is None else str(reason),
                None if score is None else float(score),
            )
        )
    note = published.weekly_note(user_id, week)
    return PlaylistExport(
        title=f"Discover Weekly {week}",
        creator="deepcuts",
        date=datetime.combine(monday, datetime.min.time()),
        annotation=note or f"{len(tracks)} tracks for {user_id}, new to them this week",
        identifier=f"urn:deepcuts:weekly:{user_id}:{week}",
        tracks=tracks,
    )


def items_json(published: Published, title: str, found: list[tuple[int, float]]) -> bytes:
    """`ItemsOut` (a title and items, each with its score) as its JSON body, joined from each
    item's fields as encoded once per snapshot (`Published.item_json`) instead of built as
    dicts, validated against the model and encoded again (in process, 26.6 against 9.9 us for
    ten items). A score is a cosine or a search's weight, finite: its ``repr`` is JSON."""
    item_json = published.item_json
    items = ",".join(f'{{{item_json(i)},"score":{round(float(s), 6)!r}}}' for i, s in found)
    return f'{{"title":{_string(title)},"items":[{items}]}}'.encode()


def similar_items(published: Published, item_id: str, n: int) -> list[tuple[int, float]]:
    """The ``n`` items whose vectors are nearest ``item_id``'s, with their cosine."""
    i = item_index(published, item_id)
    if not published.has_vector(i):
        raise NotFound(
            "vector for item", item_id, "nobody has played it and it has no audio or text vector"
        )
    found = published.similar(np.array([i]), n)
    sims = published.item_vectors[found] @ published.item_vectors[i]
    return [(int(j), float(s)) for j, s in zip(found, sims, strict=True)]


def radio(
    published: Published, *, track: str | None = None, artist: str | None = None, n: int = 25,
    per_artist: int = 2,
) -> tuple[str, list[tuple[int, float]]]:  # fmt: skip
    """ "Keep the vibe going" from a track or an artist: tracks nearest the seed's vector, at
    most ``per_artist`` by any one artist and none by the seed artist; returns (title, items)."""
    if (track is None) == (artist is None):
        raise ValueError("give exactly one of track or artist")
    if track is not None:
        seeds = np.array([item_index(published, track)])
        info = published.describe_item(int(seeds[0]))
        title = f"{info['name']} radio"
        seed_artist = info["artist_id"]
    else:
        rows = published.artist_tracks.get(artist)
        if rows is None:
            if artist in published.item_index:  # an artist that is itself an item (HetRec)
                rows = np.array([published.item_index[artist]])
            else:
                raise NotFound("artist", str(artist), "not in the published catalogue")
        seeds = np.asarray(rows)
        seed_artist = artist
        title = f"{published.describe_item(int(seeds[0]))['artist'] or artist} radio"
    seeds = seeds[[published.has_vector(int(s)) for s in seeds]]
    if len(seeds) == 0:
        raise NotFound("vector for", track or str(artist), "nothing to start a radio from")
    exclude = published.artist_tracks.get(seed_artist) if seed_artist else None
    found = published.similar(
        seeds, n * 4, exclude=None if exclude is None else np.asarray(exclude)
    )
    profile = published.item_vectors[seeds].mean(axis=0)
    profile /= max(float(np.linalg.norm(profile)), 1e-12)
    out, per = [], {}
    artists = published.artist_ids
    for j in found:
        a = artists[j]
        if a is not None and a == a:
            if per.get(a, 0) >= per_artist:
                continue
            per[a] = per.get(a, 0) + 1
        out.append((int(j), float(published.item_vectors[j] @ profile)))
        if len(out) == n:
            break
    return title, out
