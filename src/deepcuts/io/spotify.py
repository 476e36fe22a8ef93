"""Spotify's extended streaming history export.

Files ``Streaming_History_Audio_*.json`` (and the older ``endsong_*.json``) each hold a JSON
array of streams with ``ts`` (when the stream ended, UTC), ``ms_played``, ``conn_country``,
``platform``, ``master_metadata_track_name``, ``master_metadata_album_artist_name``,
``master_metadata_album_album_name``, ``spotify_track_uri``, ``reason_start``, ``reason_end``,
``shuffle``, ``skipped``, ``offline`` and ``incognito_mode``. Every stream becomes a ``listens``
row; the tracks, artists and albums it names enter the catalogue. The export names no artist or
album ids, so those ids are built from their names. Podcast episodes are not music: they are
quarantined with that reason, so every record is accounted for.

The listener is the record's ``username`` (``spotify:user:<username>``); ``--user`` (the
importer's ``user``) names the listener of records that have none. Where a record's username
differs from ``--user``, the record keeps its own and a warning says so, once per file.
"""

from __future__ import annotations

from pathlib import Path

from deepcuts.io.errors import FormatError, NeedsOptionError
from deepcuts.io.files import expand
from deepcuts.io.jsonscan import scan_array
from deepcuts.io.rows import Rows, load_listen_records, warn_user_disagrees
from deepcuts.store import FileLoad, IngestCounts, Store

PATTERNS = ("Streaming_History_Audio_*.json", "endsong_*.json", "Streaming_History_*.json")
EXPECTED = "a Spotify extended streaming history (records with ts, ms_played, spotify_track_uri)"
SKIP_MS = 30_000


def artist_id(name: str) -> str:
    return "spotify:artist-name:" + name.strip().lower()


def album_id(artist: str, album: str) -> str:
    return f"spotify:album-name:{artist.strip().lower()}|{album.strip().lower()}"


class SpotifyImporter:
    """Spotify extended streaming history files."""

    name = "spotify"
    summary = "Spotify extended streaming history (Streaming_History_Audio_*.json, endsong_*.json)"

    def __init__(self, user: str | None = None):
        self.given = user
        self.user = None if user is None else f"spotify:user:{user}"
        self._warned: set[tuple[str, str]] = set()
        self._path: Path | None = None

    def files(self, paths: list[str]) -> list[Path]:
        return expand(paths, PATTERNS)

    def ingest_file(self, store: Store, path: Path) -> IngestCounts:
        records = scan_array(path, EXPECTED)
        self._path = path
        with FileLoad(store, self.name, str(path)) as load:
            load_listen_records(load, records, lambda rec: self._check_first(path, rec), self._add)
        return load.counts

    def _check_first(self, path: Path, rec: dict) -> None:
        if "ts" not in rec or "ms_played" not in rec:
            found = ", ".join(sorted(rec)[:8])
            raise FormatError(f"{path}: expected {EXPECTED}; the first record has {found}")
        if self.user is None and not rec.get("username"):
            raise NeedsOptionError(
                f"{path}: this export does not name its listener (no username field): "
                "give the listener's id with --user"
            )

    def _add(self, rows: Rows, line: int, rec: dict) -> str | None:
        """Add the rows one stream gives; return why it was rejected, if it was."""
        uri = rec.get("spotify_track_uri")
        if not uri:
            if rec.get("spotify_episode_uri") or rec.get("episode_name"):
                return "a podcast episode, not a music track"
            return "spotify_track_uri is missing"
        if not isinstance(uri, str) or not uri.startswith("spotify:track:"):
            return f"spotify_track_uri {uri!r} is not a spotify:track: URI"
        named = rec.get("username")
        named = str(named) if isinstance(named, str | int) and str(named).strip() else None
        if named is None and self.user is None:
            return "username is missing (give the listener's id with --user)"
        user = f"spotify:user:{named}" if named is not None else self.user
        if named is not None and self.given is not None and named != self.given:
            warn_user_disagrees(self._warned, self._path, self.given, named, user)
        ms = rec.get("ms_played")
        skipped = rec.get("skipped")
        if skipped is None and isinstance(ms, int) and rec.get("reason_end"):
            # Our skip: ended by the listener before 30 s.
            skipped = ms < SKIP_MS and rec.get("reason_end") != "trackdone"
        rows.add(
            "listens",
            line,
            user_id=user,
            item_id=uri,
            played_at=rec.get("ts"),
            ms_played=ms,
            play_count=1,
            reason_start=rec.get("reason_start"),
            reason_end=rec.get("reason_end"),
            skipped=skipped,
            shuffle=rec.get("shuffle"),
            offline=rec.get("offline"),
            incognito=rec.get("incognito_mode"),
            platform=rec.get("platform"),
            country=rec.get("conn_country"),
        )
        rows.add("users", line, user_id=user)
        artist = _name(rec.get("master_metadata_album_artist_name"))
        album = _name(rec.get("master_metadata_album_album_name"))
        rows.add(
            "tracks",
            line,
            track_id=uri,
            name=rec.get("master_metadata_track_name"),
            artist_id=artist_id(artist) if artist else None,
            album_id=album_id(artist, album) if artist and album else None,
            uri=uri,
        )
        if artist:
            rows.add("artists", line, artist_id=artist_id(artist), name=artist)
            if album:
                rows.add(
                    "albums",
                    line,
                    album_id=album_id(artist, album),
                    name=album,
                    artist_id=artist_id(artist),
                )
        return None


def _name(value: object) -> str | None:
    """A non-empty name, or None (the export has nulls where it knows no name)."""
    return value if isinstance(value, str) and value.strip() else None
