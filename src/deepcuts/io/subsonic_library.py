"""A Subsonic server's library into the catalogue, each song matched to the track it is.

A song is matched, in this order, to:

1. the track it was matched to by an earlier sync of the same server (``subsonic_songs``);
2. the track of its MusicBrainz recording id (``mbid:recording:<mbid>``), where the server
   gives one (OpenSubsonic's ``musicBrainzId``) or, where it does not (Supysonic, Gonic), the
   song's file under the music folder carries one in its tags (``musicbrainz_trackid``);
3. the one catalogue track with the same artist and title, compared normalised (case, accents
   and punctuation ignored), and a duration within `DURATION_SLACK_S` where both are known.
   Two candidate tracks, or a track another song of the server already took, is no match;
4. otherwise the song is a new track, loaded through the store's normal path (``FileLoad``:
   type checks, quarantine with the reason, idempotent inserts). Its id is its MusicBrainz
   recording where known (so that listens scrobbled with that id land on it), else
   ``subsonic:<server>:<song id>``.

The mapping is recorded in ``subsonic_songs``; a song an earlier sync saw and this one does not
is marked gone (``gone_at``) and left out of playlists, its track kept. With the server's music
folder readable (``music_dir``), new tracks, and known tracks that had no audio, get the song's
file as ``audio_path``, from which audio vectors are computed for songs nobody has played.
Everything is written in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from deepcuts.io.subsonic import Song
from deepcuts.store import FileLoad, IngestCounts, Store

log = logging.getLogger(__name__)

FORMAT = "subsonic"
DURATION_SLACK_S = 3


def normalised_sql(column: str) -> str:
    """SQL for a name compared loosely: lower case, accents off, runs of anything but letters
    and digits (any script) as one space."""
    return f"trim(regexp_replace(lower(strip_accents(coalesce({column}, ''))), '[^\\pL\\pN]+', ' ', 'g'))"


@dataclass
class LibraryImport:
    """What one sync did to the catalogue."""

    server: str
    songs: int = 0
    known: int = 0  # matched by an earlier sync
    by_mbid: int = 0
    by_metadata: int = 0
    new: int = 0
    with_audio: int = 0  # songs whose file is readable under the music folder
    gone: list[str] = field(
        default_factory=list
    )  # "artist - title (song id)" no longer on the server
    counts: IngestCounts = field(default_factory=IngestCounts)
    track_of_song: dict[str, str] = field(default_factory=dict)  # songs on the server now


def import_library(
    store: Store,
    server: str,
    songs: Iterable[Song],
    *,
    music_dir: str | Path | None = None,
    now: datetime | None = None,
) -> LibraryImport:
    """Match `songs` (the whole library of `server`, a `server_key`) to the catalogue, load the
    new ones and record the mapping. See the module's docstring."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    songs = list(songs)
    report = LibraryImport(server, songs=len(songs))
    folder = Path(music_dir).resolve() if music_dir is not None else None
    audio = [_audio_path(folder, s) for s in songs]
    songs = [
        s if s.mbid or a is None else replace(s, mbid=file_mbid(a))
        for s, a in zip(songs, audio, strict=True)
    ]
    report.with_audio = sum(a is not None for a in audio)
    conn = store.conn
    table = pa.table(
        {
            "song_id": pa.array([s.id for s in songs], pa.string()),
            "pos": pa.array(range(len(songs)), pa.int64()),
            "title": pa.array([s.title for s in songs], pa.string()),
            "artist": pa.array([s.artist for s in songs], pa.string()),
            "duration_s": pa.array([s.duration_s for s in songs], pa.int64()),
            "mbid": pa.array([s.mbid for s in songs], pa.string()),
        }
    )
    conn.register("_subsonic_songs", table)
    try:
        matches = _match(store, server)
    finally:
        conn.unregister("_subsonic_songs")
    matched_by: dict[str, str] = {}
    taken: set[str] = set()
    for song_id, track_id, how in matches:
        matched_by[song_id] = how
        report.track_of_song[song_id] = track_id
        taken.add(track_id)
    with FileLoad(store, FORMAT, f"subsonic://{server}") as load:
        new = [(i, s) for i, s in enumerate(songs) if s.id not in report.track_of_song]
        _load_new(load, server, new, audio, report, taken)
        for song_id in report.track_of_song:
            matched_by.setdefault(song_id, "new")
        report.known = sum(how == "known" for how in matched_by.values())
        report.by_mbid = sum(how == "mbid" for how in matched_by.values())
        report.by_metadata = sum(how == "metadata" for how in matched_by.values())
        report.new = sum(how == "new" for how in matched_by.values())
        _record(load, server, songs, audio, report, matched_by, now)
    report.counts = load.counts
    return report


def _audio_path(folder: Path | None, song: Song) -> str | None:
    if folder is None or not song.path:
        return None
    path = (folder / song.path).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    return str(path)


def file_mbid(path: str | Path) -> str | None:
    """The MusicBrainz recording id in an audio file's tags (``musicbrainz_trackid``: Vorbis
    comments, ID3's UFID, MP4 freeform), or None where there is none or the file has no tags
    mutagen can read."""
    import mutagen

    try:
        tags = mutagen.File(path, easy=True)
    except (
        Exception
    ) as exc:  # mutagen raises its own errors, and OSError; a file without tags is fine
        log.debug("%s: no tags read (%s)", path, exc)
        return None
    if tags is None or tags.tags is None:
        return None
    values = tags.tags.get("musicbrainz_trackid") or []
    for value in values if isinstance(values, list) else [values]:
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            return str(uuid.UUID(text.strip()))
        except ValueError:
            continue
    return None


def _match(store: Store, server: str) -> list[tuple[str, str, str]]:
    """(song id, track id, how) for the songs of ``_subsonic_songs`` that match a known track."""
    norm = normalised_sql
    rows = store.conn.execute(
        f"""
        WITH known AS (
            SELECT s.song_id, m.track_id FROM _subsonic_songs s
            JOIN subsonic_songs m ON m.server = ? AND m.song_id = s.song_id
            JOIN tracks t ON t.track_id = m.track_id
        ),
        by_mbid AS (
            SELECT s.song_id, t.track_id FROM _subsonic_songs s
            JOIN tracks t ON t.track_id = 'mbid:recording:' || lower(s.mbid)
            WHERE s.song_id NOT IN (SELECT song_id FROM known)
        ),
        catalogue AS (  -- the tracks no song has taken yet
            SELECT t.track_id, {norm("a.name")} AS artist, {norm("t.name")} AS title, t.duration_ms
            FROM tracks t JOIN artists a ON a.artist_id = t.artist_id
            WHERE t.track_id NOT IN (SELECT track_id FROM known UNION ALL SELECT track_id FROM by_mbid)
        ),
        candidates AS (
            SELECT s.song_id, c.track_id FROM _subsonic_songs s
            JOIN catalogue c ON c.artist = {norm("s.artist")} AND c.title = {norm("s.title")}
            WHERE s.song_id NOT IN (SELECT song_id FROM known UNION ALL SELECT song_id FROM by_mbid)
              AND {norm("s.title")} <> '' AND {norm("s.artist")} <> ''
              AND (s.duration_s IS NULL OR c.duration_ms IS NULL
                   OR abs(c.duration_ms / 1000.0 - s.duration_s) <= {DURATION_SLACK_S})
        ),
        unique_pairs AS (  -- one candidate for the song, and the song the track's only one
            SELECT song_id, any_value(track_id) AS track_id FROM candidates GROUP BY song_id
            HAVING count(*) = 1
        ),
        by_metadata AS (
            SELECT song_id, track_id FROM unique_pairs
            WHERE track_id IN (SELECT track_id FROM unique_pairs GROUP BY track_id HAVING count(*) = 1)
        )
        SELECT song_id, track_id, 'known' FROM known
        UNION ALL SELECT song_id, track_id, 'mbid' FROM by_mbid
        UNION ALL SELECT song_id, track_id, 'metadata' FROM by_metadata
        """,
        [server],
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _load_new(
    load: FileLoad,
    server: str,
    new: list[tuple[int, Song]],
    audio: list[str | None],
    report: LibraryImport,
    taken: set[str],
) -> None:
    """New tracks (with their artists, albums and genres) through the store's loading path."""
    if not new:
        return
    conn = load.conn
    names = pa.table(
        {"name": pa.array(sorted({s.artist for _, s in new if s.artist}), pa.string())}
    )
    conn.register("_subsonic_artist_names", names)
    try:
        # An artist the catalogue already has under the same name (one such artist) is reused,
        # so that the caps per artist hold across sources.
        existing = dict(
            conn.execute(
                f"""
                SELECT n.name, any_value(a.artist_id) FROM _subsonic_artist_names n
                JOIN artists a ON {normalised_sql("a.name")} = {normalised_sql("n.name")}
                GROUP BY n.name HAVING count(DISTINCT a.artist_id) = 1
                """
            ).fetchall()
        )
    finally:
        conn.unregister("_subsonic_artist_names")
    # Likewise an album of that artist under the same name.
    pairs = pa.table(
        {
            "artist_id": pa.array([existing.get(s.artist) for _, s in new if s.album], pa.string()),
            "name": pa.array([s.album for _, s in new if s.album], pa.string()),
        }
    )
    conn.register("_subsonic_album_names", pairs)
    try:
        existing_albums = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                f"""
                SELECT p.artist_id, p.name, any_value(al.album_id) FROM (SELECT DISTINCT * FROM _subsonic_album_names) p
                JOIN albums al ON al.artist_id = p.artist_id AND {normalised_sql("al.name")} = {normalised_sql("p.name")}
                GROUP BY p.artist_id, p.name HAVING count(DISTINCT al.album_id) = 1
                """
            ).fetchall()
        }
    finally:
        conn.unregister("_subsonic_album_names")
    prefix = f"subsonic:{server}"
    artists: dict[str, tuple[str, int]] = {}
    albums: dict[str, tuple[str, str | None, int]] = {}
    tracks: dict[str, list] = {
        k: []
        for k in (
            "track_id",
            "name",
            "artist_id",
            "album_id",
            "duration_ms",
            "genre",
            "audio_path",
            "_line",
        )
    }
    tags: dict[str, list] = {k: [] for k in ("item_id", "tag", "_line")}
    for line, song in new:
        artist_id = None
        if song.artist:
            artist_id = (
                existing.get(song.artist)
                or f"{prefix}:artist:{song.artist_id or song.artist.lower()}"
            )
            artists.setdefault(artist_id, (song.artist, line))
        album_id = None
        if song.album:
            album_id = existing_albums.get((existing.get(song.artist), song.album)) or (
                f"{prefix}:album:{song.album_id or (song.artist or '') + '/' + song.album}"
            )
            albums.setdefault(album_id, (song.album, artist_id, line))
        track_id = f"mbid:recording:{song.mbid.lower()}" if song.mbid else f"{prefix}:{song.id}"
        if track_id in taken:  # a second file of a recording already there: a song of its own
            track_id = f"{prefix}:{song.id}"
        taken.add(track_id)
        report.track_of_song[song.id] = track_id
        tracks["track_id"].append(track_id)
        tracks["name"].append(song.title or None)
        tracks["artist_id"].append(artist_id)
        tracks["album_id"].append(album_id)
        tracks["duration_ms"].append(
            song.duration_s * 1000 if song.duration_s is not None else None
        )
        tracks["genre"].append(song.genre)
        tracks["audio_path"].append(audio[line])
        tracks["_line"].append(line)
        if song.genre:
            tags["item_id"].append(track_id)
            tags["tag"].append(song.genre)
            tags["_line"].append(line)
    load.add_arrow(
        "artists",
        pa.table(
            {
                "artist_id": list(artists),
                "name": [a[0] for a in artists.values()],
                "_line": [a[1] for a in artists.values()],
            }
        ),
        counted=False,
    )
    load.add_arrow(
        "albums",
        pa.table(
            {
                "album_id": list(albums),
                "name": [a[0] for a in albums.values()],
                "artist_id": pa.array([a[1] for a in albums.values()], pa.string()),
                "_line": [a[2] for a in albums.values()],
            }
        ),
        counted=False,
    )
    load.add_arrow(
        "tracks",
        pa.table(
            {
                "track_id": pa.array(tracks["track_id"], pa.string()),
                "name": pa.array(tracks["name"], pa.string()),
                "artist_id": pa.array(tracks["artist_id"], pa.string()),
                "album_id": pa.array(tracks["album_id"], pa.string()),
                "duration_ms": pa.array(tracks["duration_ms"], pa.int64()),
                "genre": pa.array(tracks["genre"], pa.string()),
                "audio_path": pa.array(tracks["audio_path"], pa.string()),
                "_line": pa.array(tracks["_line"], pa.int64()),
            }
        ),
    )
    if tags["item_id"]:
        load.add_arrow("item_tags", pa.table(tags), counted=False)
    # A track the load refused (quarantined) is no track: its song stays unmapped.
    stored = {
        r[0]
        for r in conn.execute(
            "SELECT track_id FROM tracks WHERE track_id IN (SELECT unnest(?))", [tracks["track_id"]]
        ).fetchall()
    }
    for _, song in new:
        if report.track_of_song.get(song.id) not in stored:
            log.warning(
                "song %s (%s) was not taken into the catalogue: see `deepcuts quarantine`",
                song.id,
                song.title,
            )
            report.track_of_song.pop(song.id, None)


def _record(
    load: FileLoad,
    server: str,
    songs: list[Song],
    audio: list[str | None],
    report: LibraryImport,
    matched_by: dict[str, str],
    now: datetime,
) -> None:
    """The mapping, songs no longer on the server marked gone, and audio for known tracks."""
    conn = load.conn
    load.begin()
    present = [s for s in songs if s.id in report.track_of_song]
    rows = pa.table(
        {
            "song_id": pa.array([s.id for s in present], pa.string()),
            "track_id": pa.array([report.track_of_song[s.id] for s in present], pa.string()),
            "matched_by": pa.array([matched_by.get(s.id, "new") for s in present], pa.string()),
            "path": pa.array([s.path for s in present], pa.string()),
            "audio_path": pa.array(
                [audio[i] for i, s in enumerate(songs) if s.id in report.track_of_song], pa.string()
            ),
        }
    )
    conn.register("_subsonic_map", rows)
    try:
        report.gone = [
            f"{artist or '?'} - {title or '?'} ({song_id})"
            for song_id, artist, title in conn.execute(
                """
                SELECT m.song_id, a.name, t.name FROM subsonic_songs m
                LEFT JOIN tracks t ON t.track_id = m.track_id
                LEFT JOIN artists a ON a.artist_id = t.artist_id
                WHERE m.server = ? AND m.gone_at IS NULL
                  AND m.song_id NOT IN (SELECT song_id FROM _subsonic_map)
                ORDER BY m.song_id
                """,
                [server],
            ).fetchall()
        ]
        conn.execute(
            "UPDATE subsonic_songs SET gone_at = ? WHERE server = ? AND gone_at IS NULL "
            "AND song_id NOT IN (SELECT song_id FROM _subsonic_map)",
            [now, server],
        )
        conn.execute(
            """
            INSERT INTO subsonic_songs (server, song_id, track_id, matched_by, path, first_seen, last_seen, gone_at)
            SELECT ?, song_id, track_id, matched_by, path, ?, ?, NULL FROM _subsonic_map
            ON CONFLICT (server, song_id) DO UPDATE SET track_id = excluded.track_id,
                path = excluded.path, last_seen = excluded.last_seen, gone_at = NULL,
                matched_by = CASE WHEN excluded.matched_by = 'known' THEN subsonic_songs.matched_by
                                  ELSE excluded.matched_by END
            """,
            [server, now, now],
        )
        # A known track without audio gets the server's file (nothing else of it changes).
        conn.execute(
            """
            UPDATE tracks SET audio_path = m.audio_path FROM _subsonic_map m
            WHERE tracks.track_id = m.track_id AND tracks.audio_path IS NULL AND m.audio_path IS NOT NULL
            """
        )
    finally:
        conn.unregister("_subsonic_map")
