"""ListenBrainz listens exports.

A user's export holds listens as JSON Lines (one listen per line, as in the export's
``listens/YYYY/MM.jsonl`` files) or, in older exports, one JSON array. Each listen has
``listened_at`` (Unix seconds, when the listen started) and ``track_metadata`` with
``artist_name``, ``track_name``, ``release_name``, ``additional_info`` and, where ListenBrainz
matched it to MusicBrainz, ``mbid_mapping``. A listen's item is its MusicBrainz recording
(``mbid:recording:<mbid>``) where known, else its Spotify track, else ListenBrainz's own
message id (``listenbrainz:msid:<msid>``). The listener is the listen's ``user_name``
(``listenbrainz:user:<user_name>``); ``--user`` names the listener of listens that have none,
and where a listen names another one it keeps its own and a warning says so, once per file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from deepcuts.io.errors import FormatError
from deepcuts.io.files import expand
from deepcuts.io.jsonscan import scan_array, scan_lines
from deepcuts.io.rows import Rows, load_listen_records, warn_user_disagrees
from deepcuts.store import FileLoad, IngestCounts, Store

EXPECTED = "a ListenBrainz listens export (listens with listened_at and track_metadata)"


def recording_item_id(listen: dict, meta: dict, info: dict) -> str | None:
    """A listen's item: its MusicBrainz recording, else its Spotify track, else ListenBrainz's
    message id; None where the listen carries none of them."""
    mapping = meta.get("mbid_mapping") or {}
    mbid = mapping.get("recording_mbid") or info.get("recording_mbid")
    if mbid:
        return f"mbid:recording:{mbid}"
    spotify = info.get("spotify_id")
    if isinstance(spotify, str) and "/track/" in spotify:
        return "spotify:track:" + spotify.rsplit("/track/", 1)[1].split("?")[0]
    msid = listen.get("recording_msid") or info.get("recording_msid")
    return f"listenbrainz:msid:{msid}" if msid else None


def duration_ms(info: dict) -> int | None:
    """The track's length from ``additional_info`` (``duration_ms``, or ``duration`` in
    seconds), None where neither is a positive number."""
    for key, scale in (("duration_ms", 1), ("duration", 1000)):
        value = info.get(key)
        if isinstance(value, bool) or value is None:
            continue
        try:
            ms = int(float(value) * scale)
        except (TypeError, ValueError):
            continue
        if ms > 0:
            return ms
    return None


def add_track_rows(rows: Rows, line: int | None, item: str, meta: dict, info: dict) -> None:
    """The catalogue rows a listen's ``track_metadata`` gives for its item: the track (name,
    artist, release, duration), its artist and, where the listen names a release, its album
    (``mbid:release:<mbid>`` where known, else by artist and release name)."""
    artist_id, artist_name = _artist(meta, info)
    release = meta.get("release_name")
    album_id = None
    if isinstance(release, str) and release.strip():
        release_mbid = (meta.get("mbid_mapping") or {}).get("release_mbid") or info.get(
            "release_mbid"
        )
        if isinstance(release_mbid, str) and release_mbid:
            album_id = f"mbid:release:{release_mbid}"
        else:
            album_id = f"listenbrainz:release:{artist_name or ''}/{release.strip()}".lower()
        rows.add("albums", line, album_id=album_id, name=release.strip(), artist_id=artist_id)
    rows.add(
        "tracks",
        line,
        track_id=item,
        name=meta.get("track_name"),
        artist_id=artist_id,
        album_id=album_id,
        duration_ms=duration_ms(info),
    )
    if artist_id:
        rows.add("artists", line, artist_id=artist_id, name=artist_name)


def _artist(meta: dict, info: dict) -> tuple[str | None, str | None]:
    name = meta.get("artist_name")
    mapping = meta.get("mbid_mapping") or {}
    mbids = mapping.get("artist_mbids") or info.get("artist_mbids") or []
    if mbids and isinstance(mbids, list) and isinstance(mbids[0], str):
        return f"mbid:artist:{mbids[0]}", name
    if isinstance(name, str) and name.strip():
        return f"listenbrainz:artist-name:{name.strip().lower()}", name
    return None, None


def _check_first(path: Path, listen: dict) -> None:
    if "listened_at" not in listen and "track_metadata" not in listen:
        raise FormatError(
            f"{path}: expected {EXPECTED}; the first record has {', '.join(sorted(listen)[:8])}"
        )


class ListenBrainzImporter:
    """ListenBrainz listens exports."""

    name = "listenbrainz"
    summary = "ListenBrainz listens export (JSON Lines, or a JSON array)"

    def __init__(self, user: str | None = None):
        self.given = user
        self.user = None if user is None else f"listenbrainz:user:{user}"
        self._warned: set[tuple[str, str]] = set()
        self._path: Path | None = None

    def files(self, paths: list[str]) -> list[Path]:
        return expand(paths, ("*.jsonl", "*.json"))

    def ingest_file(self, store: Store, path: Path) -> IngestCounts:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            head = handle.read(1024).lstrip()
        records = scan_array(path, EXPECTED) if head.startswith("[") else scan_lines(path)
        self._path = path
        with FileLoad(store, self.name, str(path)) as load:
            load_listen_records(load, records, lambda listen: _check_first(path, listen), self._add)
        return load.counts

    def _add(self, rows: Rows, line: int, listen: dict) -> str | None:
        meta = listen.get("track_metadata")
        if not isinstance(meta, dict):
            return "track_metadata is missing"
        info = meta.get("additional_info") or {}
        if not isinstance(info, dict):
            return "track_metadata.additional_info is not an object"
        named = listen.get("user_name")
        named = str(named) if isinstance(named, str | int) and str(named).strip() else None
        user_name = f"listenbrainz:user:{named}" if named is not None else self.user
        if not user_name:
            return "no user: the listen has no user_name; give the listener's id with --user"
        if named is not None and self.given is not None and named != self.given:
            warn_user_disagrees(self._warned, self._path, self.given, named, user_name)
        item = recording_item_id(listen, meta, info)
        if item is None:
            return "no recording id (no recording_mbid, spotify_id or recording_msid)"
        stamp = listen.get("listened_at")
        if isinstance(stamp, str):
            played_at = stamp  # an ISO 8601 time; the store checks it
        elif isinstance(stamp, int | float) and not isinstance(stamp, bool):
            try:
                played_at = datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None).isoformat()
            except (OverflowError, OSError, ValueError):
                return f"listened_at {stamp!r} is out of range"
        else:
            return f"listened_at {stamp!r} is not a Unix time in seconds"
        rows.add(
            "listens",
            line,
            user_id=user_name,
            item_id=item,
            played_at=played_at,
            play_count=1,
            platform=info.get("media_player") or info.get("submission_client"),
            context_type=info.get("music_service_name") or info.get("music_service"),
        )
        rows.add("users", line, user_id=user_name)
        add_track_rows(rows, line, item, meta, info)
        return None
