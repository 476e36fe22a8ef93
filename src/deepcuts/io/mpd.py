"""Spotify Million Playlist Dataset slices (``mpd.slice.0-999.json``).

Each slice is a JSON object ``{"info": ..., "playlists": [...]}``; a playlist has ``pid``,
``name``, optional ``description``, ``collaborative``, ``modified_at`` (Unix seconds),
``num_followers`` and ``tracks`` (``pos``, ``track_uri``, ``track_name``, ``artist_uri``,
``artist_name``, ``album_uri``, ``album_name``, ``duration_ms``). Playlists and their items are
the rows read; the tracks, artists and albums they name enter the catalogue. The dataset has no
owners, so playlists have none.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from deepcuts.io.errors import FormatError
from deepcuts.io.files import expand
from deepcuts.io.rows import Rows
from deepcuts.store import FileLoad, IngestCounts, Store

EXPECTED = 'a Million Playlist Dataset slice (a JSON object with "playlists")'


class MpdImporter:
    """Million Playlist Dataset slice files."""

    name = "mpd"
    summary = "Spotify Million Playlist Dataset slices (mpd.slice.*.json)"

    def files(self, paths: list[str]) -> list[Path]:
        return expand(paths, ("mpd.slice.*.json",))

    def ingest_file(self, store: Store, path: Path) -> IngestCounts:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(
                f"{path}: expected {EXPECTED}; invalid JSON at line {exc.lineno}: {exc.msg}"
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("playlists"), list):
            raise FormatError(f"{path}: expected {EXPECTED}")
        # The slices are pretty-printed: find the line each playlist's pid is on.
        pid_lines = {
            m.group(1): text.count("\n", 0, m.start()) + 1
            for m in re.finditer(r'"pid"\s*:\s*(\d+)', text)
        }
        rows = Rows()
        with FileLoad(store, self.name, str(path)) as load:
            for index, playlist in enumerate(data["playlists"]):
                raw = json.dumps(playlist)[:4000]
                if not isinstance(playlist, dict):
                    load.reject(None, f"playlist #{index} is not a JSON object", raw, "playlists")
                    continue
                line = pid_lines.get(str(playlist.get("pid")))
                if playlist.get("pid") is None:
                    load.reject(line, f"playlist #{index} has no pid", raw, "playlists")
                    continue
                self._add(rows, load, line, playlist)
            rows.load(load, counted=("playlists", "playlist_items"))
        return load.counts

    def _add(self, rows: Rows, load: FileLoad, line: int | None, playlist: dict) -> None:
        pid = f"mpd:playlist:{playlist['pid']}"
        modified = playlist.get("modified_at")
        if isinstance(modified, int | float) and not isinstance(modified, bool):
            modified = datetime.fromtimestamp(modified, UTC).replace(tzinfo=None).isoformat()
        rows.add(
            "playlists",
            line,
            playlist_id=pid,
            name=playlist.get("name"),
            description=playlist.get("description"),
            modified_at=modified,
            collaborative=playlist.get("collaborative"),
            followers=playlist.get("num_followers"),
        )
        tracks = playlist.get("tracks")
        if not isinstance(tracks, list):
            load.reject(
                line, f"{pid}: tracks is not a list", json.dumps(tracks)[:4000], "playlist_items"
            )
            return
        for index, track in enumerate(tracks):
            if not isinstance(track, dict) or not track.get("track_uri"):
                load.reject(
                    line,
                    f"{pid}: track #{index} has no track_uri",
                    json.dumps(track)[:4000],
                    "playlist_items",
                )
                continue
            uri = track["track_uri"]
            # Trimmed copies of the MPD (the shared sample) keep the artist's name but not its
            # uri: the name then stands for the artist, so that tracks keep their artist.
            artist = track.get("artist_uri") or (
                f"mpd:artist:{track['artist_name']}" if track.get("artist_name") else None
            )
            rows.add(
                "playlist_items",
                line,
                playlist_id=pid,
                position=track.get("pos", index),
                item_id=uri,
            )
            rows.add(
                "tracks",
                line,
                track_id=uri,
                name=track.get("track_name"),
                artist_id=artist,
                album_id=track.get("album_uri"),
                duration_ms=track.get("duration_ms"),
                uri=uri,
            )
            if artist:
                rows.add("artists", line, artist_id=artist, name=track.get("artist_name"))
            if track.get("album_uri"):
                rows.add(
                    "albums",
                    line,
                    album_id=track["album_uri"],
                    name=track.get("album_name"),
                    artist_id=track.get("artist_uri"),
                )
