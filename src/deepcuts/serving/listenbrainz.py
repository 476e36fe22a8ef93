"""ListenBrainz's API over deepcuts: what the `/1/` routes compute.

ListenBrainz clients (Navidrome's scrobbler, liblistenbrainz, Explo, naviList) speak its API;
these functions turn what they send into deepcuts events and answer in ListenBrainz's shapes.

- A listen's item is found as the Subsonic sync finds a song's track: its MusicBrainz
  recording where the catalogue has that one, else the one published track with the same
  artist and title (compared normalised), else its MusicBrainz recording, Spotify track or
  ListenBrainz msid as the ListenBrainz importer names them, else a new id from its artist and
  title (``listenbrainz:track:<uuid>``). What the client said about the track is kept with the
  events, and `deepcuts learn` makes a track the catalogue does not know into an entry from it.
- A listen's event id is made from its time and its recording (``lb:<listened_at>:<msid>``),
  so a listen sent twice counts once, and ``delete-listen`` finds it from what ListenBrainz
  clients send (listened_at and recording_msid).
- A recording's msid is a UUID made from its deepcuts item id (`msid`); a Discover Weekly's
  playlist MBID one made from the listener and the week (`playlist_mbid`).
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from deepcuts.io.listenbrainz import duration_ms, recording_item_id
from deepcuts.io.playlists import jspf_dict
from deepcuts.serving.pages import weekly_playlist
from deepcuts.signals.playlists import normalize_title
from deepcuts.snapshots.published import Published
from deepcuts.store.live import Event, LiveLog, TrackMeta

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://deepcuts.invalid/listenbrainz")
LISTEN_TYPES = ("single", "import", "playing_now")
MAX_LISTENS = 1000  # per request, as ListenBrainz
MAX_LISTEN_BYTES = 10240
MIN_LISTENED_AT = 1033410600  # 2002-10-01, ListenBrainz's lowest accepted listen time
ALLOWED_SKEW_S = 3600  # a listen up to an hour in the future is taken (clock skew)
MAX_RECOMMENDATIONS = 1000
PLAYLIST_URI = "https://listenbrainz.org/playlist/"  # the prefix ListenBrainz clients strip
PLAYLIST_EXTENSION = "https://musicbrainz.org/doc/jspf#playlist"
WEEKLY_SOURCE_PATCH = "weekly-exploration"
PLAYING_NOW_DEFAULT = timedelta(minutes=10)
LISTEN_EVENTS = ("play", "skip")
FEEDBACK_EVENTS = ("save", "unsave", "ban")
_MBID_KEYS = ("release_mbid", "recording_mbid", "release_group_mbid", "track_mbid")
_MBIDS_KEYS = ("artist_mbids", "work_mbids")


class LBError(Exception):
    """An answer in ListenBrainz's error shape: ``{"code": status, "error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def msid(item_id: str) -> str:
    """The recording msid deepcuts gives an item (a UUID made from its id)."""
    return str(uuid.uuid5(NAMESPACE, f"recording:{item_id}"))


def playlist_mbid(user_id: str, week: str) -> str:
    """The playlist MBID of a listener's Discover Weekly of a week (the same every time)."""
    return str(uuid.uuid5(NAMESPACE, f"weekly:{user_id}:{week}"))


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


# -- what a client sends ------------------------------------------------------------------
def check_submission(data: Any, size: int) -> tuple[str, list[dict[str, Any]]]:
    """The listen type and the listens of a ``submit-listens`` document, checked as
    ListenBrainz checks them (same rules, same messages); raises `LBError` (400)."""
    if not isinstance(data, dict):
        raise LBError(400, "Invalid JSON document submitted. Top level of JSON document should be a json object.")  # fmt: skip
    if "payload" not in data or "listen_type" not in data:
        raise LBError(400, "Invalid JSON document submitted.")
    payload = data["payload"]
    if not isinstance(payload, list):
        raise LBError(400, "The payload in the JSON document should be a list of listens.")
    if not payload:
        raise LBError(400, "JSON document does not contain any listens")
    if len(payload) > MAX_LISTENS:
        raise LBError(400, f"Too many listens. You may not submit more than {MAX_LISTENS} listens at once.")  # fmt: skip
    if size > len(payload) * MAX_LISTEN_BYTES:
        raise LBError(400, f"JSON document is too large. Each listens may not be larger than {MAX_LISTEN_BYTES} bytes.")  # fmt: skip
    listen_type = data["listen_type"]
    if listen_type not in LISTEN_TYPES:
        raise LBError(400, "JSON document requires a valid listen_type key.")
    if listen_type != "import" and len(payload) > 1:
        raise LBError(400, "JSON document contains more than listen for a single/playing_now. It should contain only one.")  # fmt: skip
    return listen_type, [check_listen(listen, listen_type, n) for n, listen in enumerate(payload)]


def check_listen(listen: Any, listen_type: str, n: int = 0) -> dict[str, Any]:
    """One listen checked (and tidied: names stripped, empty MBIDs dropped, durations made
    integers) as ListenBrainz does; the message says which listen of the payload it was."""

    def fail(message: str) -> LBError:
        return LBError(400, f"payload[{n}]: {message}")

    if not isinstance(listen, dict):
        raise fail("Listen is empty and cannot be validated.")
    if listen_type == "playing_now":
        if "listened_at" in listen:
            raise fail("JSON document must not contain listened_at while submitting playing_now.")
        if "track_metadata" not in listen:
            raise fail("JSON document must contain the key track_metadata at the top level.")
        if len(listen) > 1:
            raise fail("JSON document may only contain track_metadata as top level key when submitting playing_now.")  # fmt: skip
    else:
        if "listened_at" not in listen:
            raise fail("JSON document must contain the key listened_at at the top level.")
        stamp = listen["listened_at"]
        try:
            if isinstance(stamp, bool):
                raise TypeError
            listen["listened_at"] = int(stamp)
        except (TypeError, ValueError):
            raise fail("JSON document must contain an int value for listened_at.") from None
        if listen["listened_at"] >= int(datetime.now(UTC).timestamp()) + ALLOWED_SKEW_S:
            raise fail("Value for key listened_at is too high.")
        if listen["listened_at"] < MIN_LISTENED_AT:
            raise fail("Value for key listened_at is too low. listened_at timestamp should be greater than 1033410600 (2002-10-01 00:00:00 UTC).")  # fmt: skip
        if "track_metadata" not in listen:
            raise fail("JSON document must contain the key track_metadata at the top level.")
        if len(listen) > 2:
            raise fail("JSON document may only contain listened_at and track_metadata top level keys")  # fmt: skip
    meta = listen["track_metadata"]
    if not isinstance(meta, dict):
        raise fail("JSON document may not have track_metadata with null value.")
    for key, required in (("track_name", True), ("artist_name", True), ("release_name", False)):
        if key not in meta:
            if required:
                raise fail(f"JSON document does not contain required field track_metadata.{key}.")
            continue
        if not isinstance(meta[key], str):
            raise fail(f"track_metadata.{key} must be a single string.")
        meta[key] = meta[key].strip()
        if not meta[key]:
            if required:
                raise fail(f"field track_metadata.{key} is empty.")
            del meta[key]
    info = meta.get("additional_info")
    if info is None:
        return listen
    if not isinstance(info, dict):
        raise fail("track_metadata.additional_info must be an object.")
    if "duration" in info and "duration_ms" in info:
        raise fail("JSON document should not contain both duration and duration_ms.")
    for key, limit in (("duration", 24 * 24 * 3600), ("duration_ms", 24 * 24 * 3600 * 1000)):
        if key in info:
            try:
                value = int(float(info[key]))
            except (TypeError, ValueError):
                raise fail(f"Value for {key} is invalid, should be a positive integer.") from None
            if value <= 0:
                raise fail(f"Value for {key} is invalid, should be a positive integer.")
            if value > limit:
                raise fail(f"Value for {key} is too large, max permitted value is {limit}")
            info[key] = value
    for key in _MBID_KEYS:
        if key in info:
            if not info[key]:
                del info[key]
            elif not is_uuid(info[key]):
                raise fail(f"{key} MBID format invalid.")
    for key in _MBIDS_KEYS:
        if key in info:
            values = [v for v in (info[key] or []) if v] if isinstance(info[key], list) else None
            if values is None:
                raise fail(f"{key} must be a list of MBIDs.")
            if not values:
                del info[key]
                continue
            if not all(is_uuid(v) for v in values):
                raise fail(f"{key} MBID format invalid.")
            info[key] = values
    return listen


# -- listens to items and events ----------------------------------------------------------
class _Names:
    """Look-ups over one published snapshot, made once per version: its tracks by normalised
    (artist, title) and by msid, which it may recommend, its weekly lists by playlist MBID."""

    def __init__(self, published: Published):
        items = published.items
        tracks = items[items["kind"] == "track"]
        by_name: dict[tuple[str, str], list[int]] = {}
        for n, artist, title in zip(
            tracks.index, tracks["artist_name"], tracks["name"], strict=True
        ):
            if isinstance(artist, str) and isinstance(title, str):
                by_name.setdefault((normalize_title(artist), normalize_title(title)), []).append(
                    int(n)
                )
        self.by_name = {k: v[0] for k, v in by_name.items() if len(v) == 1}
        self._by_msid: dict[str, int] | None = None
        self._item_ids = items["item_id"].tolist()
        self._lock = threading.Lock()
        self.recommendable = (
            np.any(published.item_vectors != 0, axis=1) & (items["kind"] == "track").to_numpy()
        )
        pairs = published.weekly[["user_id", "week"]].drop_duplicates()
        self.weekly = {
            playlist_mbid(str(u), str(w)): (str(u), str(w))
            for u, w in zip(pairs["user_id"], pairs["week"], strict=True)
        }

    def by_msid(self, value: str) -> int | None:
        with self._lock:
            if self._by_msid is None:
                self._by_msid = {msid(i): n for n, i in enumerate(self._item_ids)}
        return self._by_msid.get(value)


_NAMES: weakref.WeakKeyDictionary[Published, _Names] = weakref.WeakKeyDictionary()
_NAMES_LOCK = threading.Lock()


def _names(published: Published) -> _Names:
    with _NAMES_LOCK:
        found = _NAMES.get(published)
        if found is None:
            found = _NAMES[published] = _Names(published)
        return found


def listen_item(published: Published | None, listen: dict[str, Any]) -> str:
    """The deepcuts item a (checked) listen is of; see the module's docstring. Without a
    published catalogue (nothing published yet), by the listen's own ids only."""
    meta = listen["track_metadata"]
    info = meta.get("additional_info") or {}
    mbid = (meta.get("mbid_mapping") or {}).get("recording_mbid") or info.get("recording_mbid")
    key = (normalize_title(meta["artist_name"]), normalize_title(meta["track_name"]))
    if published is not None:
        if mbid and f"mbid:recording:{mbid}" in published.item_index:
            return f"mbid:recording:{mbid}"
        found = _names(published).by_name.get(key)
        if found is not None:
            return published.item_id(found)
    named = recording_item_id(listen, meta, info)
    if named:
        return named
    return "listenbrainz:track:" + str(uuid.uuid5(NAMESPACE, "\x1f".join(key)))


def listen_events(
    published: Published | None, user_id: str, listens: Sequence[dict[str, Any]]
) -> tuple[list[Event], list[TrackMeta]]:
    """The events (plays) and the track descriptions of checked listens. ms played: the
    listen's duration where it gives one, else the track's published length, else unknown
    (a full play)."""
    events, tracks = [], {}
    for listen in listens:
        item = listen_item(published, listen)
        meta = listen["track_metadata"]
        ms = duration_ms(meta.get("additional_info") or {})
        if ms is None and published is not None and item in published.item_index:
            length = published.items["duration_ms"].iat[published.item_index[item]]
            ms = None if length is None or length != length else int(length)
        at = datetime.fromtimestamp(listen["listened_at"], UTC)
        events.append(
            Event(user_id, f"lb:{listen['listened_at']}:{msid(item)}", "play", item, at, ms)
        )
        tracks.setdefault(item, TrackMeta(item, msid(item), meta))
    return events, list(tracks.values())


def playing_now_until(listen: dict[str, Any], now: datetime) -> datetime:
    ms = duration_ms(listen["track_metadata"].get("additional_info") or {})
    return now + (PLAYING_NOW_DEFAULT if ms is None else timedelta(milliseconds=ms))


# -- answers ------------------------------------------------------------------------------
def track_metadata(
    published: Published | None, item_id: str, kept: TrackMeta | None
) -> dict[str, Any]:
    """A track's ListenBrainz ``track_metadata``: as the client described it, else from the
    published catalogue (name, artist, album, duration and the MBID where the id is one)."""
    if kept is not None:
        return kept.meta
    info: dict[str, Any] = {"deepcuts_item_id": item_id}
    if item_id.startswith("mbid:recording:"):
        info["recording_mbid"] = item_id.removeprefix("mbid:recording:")
    i = None if published is None else published.item_index.get(item_id)
    if published is None or i is None:
        return {"track_name": item_id, "artist_name": "", "additional_info": info}
    row = published.items.iloc[i]
    meta: dict[str, Any] = {
        "track_name": str(row["name"]),
        "artist_name": _text(row["artist_name"]) or "",
    }
    if _text(row["album"]):
        meta["release_name"] = _text(row["album"])
    if row["duration_ms"] == row["duration_ms"] and row["duration_ms"] is not None:
        info["duration_ms"] = int(row["duration_ms"])
    meta["additional_info"] = info
    return meta


def _text(value: object) -> str | None:
    return None if value is None or value != value else str(value)


def render_listens(
    published: Published | None, live: LiveLog, user_id: str, events: Sequence[Event]
) -> list[dict[str, Any]]:
    kept = live.tracks(e.item_id for e in events)
    return [
        {
            "listened_at": int(e.at.timestamp()),
            "inserted_at": int((e.received_at or e.at).timestamp()),
            "recording_msid": msid(e.item_id),
            "user_name": user_id,
            "track_metadata": track_metadata(published, e.item_id, kept.get(e.item_id)),
        }
        for e in events
    ]


def recording_key(item_id: str) -> str:
    """What ListenBrainz clients get as a ``recording_mbid``: the MBID where the item is a
    MusicBrainz recording, else its deepcuts id."""
    return item_id.removeprefix("mbid:recording:")


def feedback_item(published: Published, live: LiveLog, data: dict[str, Any]) -> str:
    """The item a feedback names, by ``recording_mbid`` (an MBID, or a deepcuts id as the
    recommendations give it) or by ``recording_msid``."""
    mbid = data.get("recording_mbid")
    if isinstance(mbid, str) and mbid:
        if mbid in published.item_index or live.tracks([mbid]):
            return mbid  # a deepcuts id (published, or a track a listen described)
        if is_uuid(mbid):
            return f"mbid:recording:{mbid}"
        raise LBError(400, f"recording_mbid: {mbid!r} is neither an MBID nor a deepcuts track id")
    value = data.get("recording_msid")
    if not is_uuid(value):
        raise LBError(400, f"{value}: Recording MSID format invalid.")
    found = _names(published).by_msid(value)
    if found is not None:
        return published.item_id(found)
    kept = live.tracks(msid=value)
    if kept:
        return next(iter(kept))
    raise LBError(404, f"Cannot find recording with msid {value}")


def feedback_state(live: LiveLog, user_id: str) -> list[tuple[str, int, datetime]]:
    """A listener's feedback now: (item, score 1 loved / -1 hated, when), newest first; the
    latest of their saves, unsaves and bans of an item decides."""
    latest: dict[str, Event] = {}
    for e in live.user_events(user_id, None, types=FEEDBACK_EVENTS, oldest_first=True):
        latest[e.item_id] = e
    state = [
        (i, 1 if e.type == "save" else -1, e.at) for i, e in latest.items() if e.type != "unsave"
    ]
    return sorted(state, key=lambda s: s[2], reverse=True)


def recommendations(published: Published, live: LiveLog, user_id: str) -> list[tuple[str, float]]:
    """Tracks by the listener's published taste vector (the collaborative model's score),
    best first, without the tracks they have played, saved or banned through the service;
    at most `MAX_RECOMMENDATIONS`. Empty where the listener has no vector."""
    u = published.user_index.get(user_id)
    vector = None if u is None else published.user_vector(u)
    if vector is None:
        return []
    scores = published.item_vectors @ vector
    usable = _names(published).recommendable.copy()
    seen = {e.item_id for e in live.user_events(user_id, None)}
    for item in seen:
        i = published.item_index.get(item)
        if i is not None:
            usable[i] = False
    scores = np.where(usable, scores, -np.inf)
    k = min(MAX_RECOMMENDATIONS, int(usable.sum()))
    if k == 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(published.item_id(int(i)), float(scores[i])) for i in top]


def weekly_weeks(published: Published, user_id: str) -> list[str]:
    """The weeks of the listener's published Discover Weekly lists, newest first."""
    rows = published.weekly[published.weekly["user_id"] == user_id]
    return sorted(set(rows["week"].tolist()), reverse=True)


def weekly_jspf(published: Published, user_id: str, week: str, with_tracks: bool) -> dict[str, Any]:
    """A Discover Weekly as ListenBrainz serves a created-for playlist (JSPF)."""
    body = jspf_dict(weekly_playlist(published, user_id, week))
    body["identifier"] = PLAYLIST_URI + playlist_mbid(user_id, week)
    body["extension"] = {
        PLAYLIST_EXTENSION: {
            "creator": "deepcuts",
            "created_for": user_id,
            "public": False,
            "additional_metadata": {
                "algorithm_metadata": {"source_patch": WEEKLY_SOURCE_PATCH},
                "deepcuts": {"week": week},
            },
        }
    }
    if not with_tracks:
        body["track"] = []
    return {"playlist": body}


def find_weekly(published: Published, mbid: str) -> tuple[str, str] | None:
    """The (listener, week) whose Discover Weekly has this playlist MBID, or None."""
    return _names(published).weekly.get(mbid)
