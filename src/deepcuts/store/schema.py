"""The store's tables, declared once.

Every importer, the native file format, the validation rules and `deepcuts stats` read these
declarations, so a column is added in one place (plus a migration in `migrations.py`).

Ids are strings chosen by the source and namespaced by it (``lastfm:artist:51``,
``spotify:track:4uLU6hMCjMI75M1A2tKUQC``); model code never sees them (see ``signals``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """A table that importers fill.

    ``key`` names the columns that make a row the same row: a row whose key is already stored
    is a duplicate and is not inserted again (ingestion is idempotent). ``checks`` are SQL
    boolean expressions over the row with the reason given when one is false.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str
    checks: tuple[tuple[str, str], ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


C = Column

USERS = Table(
    "users",
    (
        C("user_id", "VARCHAR", True, "the listener's id"),
        C("display_name", "VARCHAR"),
        C("country", "VARCHAR", doc="home country, ISO 3166-1 alpha-2"),
        C("city", "VARCHAR"),
        C("created_at", "TIMESTAMP"),
        C("source", "VARCHAR"),
    ),
    key=("user_id",),
    doc="Listeners, with their home country.",
)

ARTISTS = Table(
    "artists",
    (
        C("artist_id", "VARCHAR", True),
        C("name", "VARCHAR"),
        C("genre", "VARCHAR", doc="primary genre, if known"),
        C("country", "VARCHAR"),
        C("description", "VARCHAR", doc="free text about the artist"),
        C("url", "VARCHAR"),
        C("image_url", "VARCHAR"),
        C("source", "VARCHAR"),
    ),
    key=("artist_id",),
    doc="Artists. Where a source has only artists (HetRec Last.fm), artists are the items.",
)

ALBUMS = Table(
    "albums",
    (
        C("album_id", "VARCHAR", True),
        C("name", "VARCHAR"),
        C("artist_id", "VARCHAR"),
        C("release_date", "DATE"),
        C("source", "VARCHAR"),
    ),
    key=("album_id",),
    doc="Albums.",
)

TRACKS = Table(
    "tracks",
    (
        C("track_id", "VARCHAR", True),
        C("name", "VARCHAR"),
        C("artist_id", "VARCHAR"),
        C("album_id", "VARCHAR"),
        C("release_date", "DATE"),
        C("duration_ms", "BIGINT"),
        C("genre", "VARCHAR", doc="primary genre, if known"),
        C("description", "VARCHAR", doc="free text about the track"),
        C(
            "audio_path",
            "VARCHAR",
            doc="path of an audio file, relative paths resolved against the ingested file's folder",
        ),
        C("uri", "VARCHAR", doc="a playable URI, e.g. spotify:track:..."),
        C("source", "VARCHAR"),
    ),
    key=("track_id",),
    doc="Tracks.",
    checks=(("duration_ms IS NULL OR duration_ms > 0", "duration_ms must be positive"),),
)

ITEM_TAGS = Table(
    "item_tags",
    (
        C("item_id", "VARCHAR", True, "a track, artist or album id"),
        C("tag", "VARCHAR", True, "free-text tag or genre"),
        C("user_id", "VARCHAR", doc="who tagged it; empty for editorial tags"),
        C("tagged_at", "TIMESTAMP"),
        C("weight", "DOUBLE", doc="tag strength, 1 by default"),
        C("source", "VARCHAR"),
    ),
    key=("item_id", "tag", "user_id"),
    doc="Tags on items: editorial genres or one listener's tag assignment.",
    checks=(("length(trim(tag)) > 0", "tag is empty"),),
)

LISTENS = Table(
    "listens",
    (
        C("user_id", "VARCHAR", True),
        C(
            "item_id",
            "VARCHAR",
            True,
            "a track id, or an artist id where the source only knows artists",
        ),
        C(
            "played_at",
            "TIMESTAMP",
            doc="when the stream ended (UTC); empty for count-only sources",
        ),
        C("ms_played", "BIGINT", doc="how long it played"),
        C("play_count", "BIGINT", doc="how many plays the row stands for; 1 for a single stream"),
        C("reason_start", "VARCHAR"),
        C("reason_end", "VARCHAR"),
        C("skipped", "BOOLEAN"),
        C("shuffle", "BOOLEAN"),
        C("offline", "BOOLEAN"),
        C("incognito", "BOOLEAN"),
        C("platform", "VARCHAR"),
        C("country", "VARCHAR", doc="where it was played, ISO 3166-1 alpha-2"),
        C("city", "VARCHAR"),
        C("context_type", "VARCHAR", doc="playlist, album, artist, radio, search, ..."),
        C("context_id", "VARCHAR"),
        C("source", "VARCHAR"),
    ),
    key=("user_id", "item_id", "played_at"),
    doc="Listening events (plays and skips), or play counts where a source has only counts.",
    checks=(
        ("ms_played IS NULL OR ms_played >= 0", "ms_played is negative"),
        ("play_count IS NULL OR play_count >= 1", "play_count must be at least 1"),
        (
            "played_at IS NULL OR played_at BETWEEN TIMESTAMP '1990-01-01' AND TIMESTAMP '2100-01-01'",
            "played_at is outside 1990-2100",
        ),
    ),
)

ACTION_KINDS = ("save", "unsave", "ban", "hide", "playlist_add", "follow_artist", "follow_user")

ACTIONS = Table(
    "actions",
    (
        C("user_id", "VARCHAR", True),
        C("action", "VARCHAR", True, "one of: " + ", ".join(ACTION_KINDS)),
        C("target_id", "VARCHAR", True, "the item, artist or user acted on"),
        C("acted_at", "TIMESTAMP"),
        C("context_id", "VARCHAR", doc="the playlist, for playlist_add"),
        C("source", "VARCHAR"),
    ),
    key=("user_id", "action", "target_id", "acted_at"),
    doc="What listeners did besides playing: saves, bans and hides, playlist adds, follows.",
    checks=(
        (
            "action IN (" + ", ".join(f"'{a}'" for a in ACTION_KINDS) + ")",
            "action must be one of " + ", ".join(ACTION_KINDS),
        ),
    ),
)

PLAYLISTS = Table(
    "playlists",
    (
        C("playlist_id", "VARCHAR", True),
        C("owner_id", "VARCHAR", doc="the user who made it"),
        C("name", "VARCHAR"),
        C("description", "VARCHAR"),
        C("created_at", "TIMESTAMP"),
        C("modified_at", "TIMESTAMP"),
        C("collaborative", "BOOLEAN"),
        C("followers", "BIGINT"),
        C("source", "VARCHAR"),
    ),
    key=("playlist_id",),
    doc="Playlists people made, with their names and descriptions.",
)

PLAYLIST_ITEMS = Table(
    "playlist_items",
    (
        C("playlist_id", "VARCHAR", True),
        C("position", "BIGINT", True, "0-based order in the playlist"),
        C("item_id", "VARCHAR", True),
        C("added_at", "TIMESTAMP"),
        C("source", "VARCHAR"),
    ),
    key=("playlist_id", "position"),
    doc="Ordered items of playlists.",
    checks=(("position >= 0", "position is negative"),),
)

FRIENDSHIPS = Table(
    "friendships",
    (
        C("user_id", "VARCHAR", True),
        C("friend_id", "VARCHAR", True),
        C("since", "TIMESTAMP"),
        C("source", "VARCHAR"),
    ),
    key=("user_id", "friend_id"),
    doc="The social graph, one row per direction.",
    checks=(("user_id <> friend_id", "a user cannot befriend themself"),),
)

# Tables importers fill, in the order a folder of native files is ingested (catalogue first).
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        USERS,
        ARTISTS,
        ALBUMS,
        TRACKS,
        ITEM_TAGS,
        PLAYLISTS,
        PLAYLIST_ITEMS,
        FRIENDSHIPS,
        LISTENS,
        ACTIONS,
    )
}


SUBSONIC_SONGS = Table(
    "subsonic_songs",
    (
        C(
            "server",
            "VARCHAR",
            True,
            "the server: host, port and path of its URL (io.subsonic.server_key)",
        ),
        C("song_id", "VARCHAR", True, "the server's id of the song"),
        C("track_id", "VARCHAR", True, "the catalogue track the song is"),
        C("matched_by", "VARCHAR", doc="mbid, metadata (artist, title and duration) or new"),
        C(
            "path",
            "VARCHAR",
            doc="the song's file, relative to the server's music folder, if the server says",
        ),
        C("first_seen", "TIMESTAMP", doc="the first sync that found the song"),
        C("last_seen", "TIMESTAMP", doc="the latest sync that found the song"),
        C(
            "gone_at",
            "TIMESTAMP",
            doc="the first sync that no longer found it (NULL while it is there)",
        ),
    ),
    key=("server", "song_id"),
    doc="Songs of Subsonic servers and the catalogue tracks they are (`deepcuts sync subsonic --url URL --user U --password-env VAR`).",
)
"""Written by the Subsonic sync, not by importers (so not in TABLES)."""

SUBSONIC_PLAYLISTS = Table(
    "subsonic_playlists",
    (
        C("server", "VARCHAR", True, "as in subsonic_songs"),
        C("server_user", "VARCHAR", True, "the server account that owns the playlist"),
        C("name", "VARCHAR", True, "the playlist's name (Discover Weekly)"),
        C("playlist_id", "VARCHAR", True, "the server's id of the playlist"),
        C("listener", "VARCHAR", doc="the deepcuts listener whose list it holds"),
        C("week", "VARCHAR", doc="the ISO week of the list it holds"),
        C("written_at", "TIMESTAMP"),
    ),
    key=("server", "server_user", "name"),
    doc="Playlists the Subsonic sync wrote, so that next week's replaces the same one.",
)
