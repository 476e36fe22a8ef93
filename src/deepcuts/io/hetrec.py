"""HetRec 2011 Last.fm 2K (GroupLens): artists, play counts, tag assignments, friendships.

The release is a folder of tab-separated ``.dat`` files with a header row. Artists are the
items: a user's play count of an artist becomes one ``listens`` row with ``play_count`` set and
no time. Tag assignments become ``item_tags`` rows (with the tagging user and day), the tag
text of each artist. Ids are namespaced: ``lastfm:user:2``, ``lastfm:artist:51``.
The folder is read whole (tag assignments need tags.dat, play counts name artists.dat's
ids): a single ``.dat`` file is refused with an error naming its folder.
"""

from __future__ import annotations

from pathlib import Path

from deepcuts.io.errors import FormatError
from deepcuts.io.files import drop_staged, stage_csv
from deepcuts.store import FileLoad, IngestCounts, Store

USER = "'lastfm:user:' || "
ARTIST = "'lastfm:artist:' || "
# file -> (columns it must have, how to read it)
FILES = {
    "artists.dat": ("id name url pictureURL", {"quote": ""}),
    "user_artists.dat": ("userID artistID weight", {}),
    "user_friends.dat": ("userID friendID", {}),
    "tags.dat": ("tagID tagValue", {"encoding": "latin-1", "quote": ""}),
    "user_taggedartists.dat": ("userID artistID tagID day month year", {}),
}


class HetRecImporter:
    """The HetRec Last.fm 2K folder (artists.dat, user_artists.dat, ...)."""

    name = "lastfm-hetrec"
    summary = "HetRec 2011 Last.fm 2K folder: artists, play counts, tags, friendships"

    files_per_path = len(FILES)  # each path `files` gives is a folder of this many files

    def files(self, paths: list[str]) -> list[Path]:
        folders = []
        for raw in paths:
            folder = Path(raw)
            if folder.is_file():
                raise FormatError(
                    f"{folder}: lastfm-hetrec reads the whole HetRec folder, not one file: "
                    f"give the folder {folder.parent}"
                )
            missing = [name for name in FILES if not (folder / name).is_file()]
            if missing:
                raise FormatError(
                    f"{folder}: not a HetRec Last.fm 2K folder: expected {', '.join(FILES)}; "
                    f"missing {', '.join(missing)}"
                )
            folders.append(folder)
        return folders

    def ingest_file(self, store: Store, path: Path) -> IngestCounts:
        staged = {}
        try:
            total = IngestCounts()
            for name, (columns, options) in FILES.items():
                if name == "tags.dat":
                    continue  # only a lookup for user_taggedartists.dat
                with FileLoad(store, self.name, str(path / name)) as load:
                    table, rejected = stage_csv(store.conn, path / name, delim="\t", **options)
                    staged[name] = table
                    _check_header(store, path / name, table, columns)
                    for line, reason, raw in rejected:
                        load.reject(line, reason, raw)
                    if name == "user_taggedartists.dat":
                        tags, tag_rejects = stage_csv(
                            store.conn, path / "tags.dat", delim="\t", **FILES["tags.dat"][1]
                        )
                        staged["tags.dat"] = tags
                        _check_header(store, path / "tags.dat", tags, FILES["tags.dat"][0])
                        for line, reason, raw in tag_rejects:
                            load.reject(line, f"tags.dat: {reason}", raw)
                    _LOADERS[name](load, table, staged.get("tags.dat"))
                total = total + load.counts
            return total
        finally:
            for table in staged.values():
                drop_staged(store.conn, table)


def _check_header(store: Store, path: Path, table: str, columns: str) -> None:
    found = [row[0] for row in store.conn.execute(f"DESCRIBE {table}").fetchall()]
    missing = [c for c in columns.split() if c not in found]
    if missing:
        raise FormatError(
            f"{path}: expected HetRec columns {', '.join(columns.split())}; "
            f"missing {', '.join(missing)}"
        )


def _artists(load: FileLoad, table: str, _tags: str | None) -> None:
    load.add_sql(
        "artists",
        f"SELECT {ARTIST} trim(id) AS artist_id, name, url, pictureURL AS image_url, _line "
        f"FROM {table}",
    )


def _user_artists(load: FileLoad, table: str, _tags: str | None) -> None:
    load.add_sql(
        "listens",
        f"SELECT {USER} trim(userID) AS user_id, {ARTIST} trim(artistID) AS item_id, "
        f"weight AS play_count, _line FROM {table}",
    )
    # Every listener is a user; derived rows, not rows read.
    load.add_sql(
        "users",
        f"SELECT {USER} trim(userID) AS user_id, min(_line) AS _line FROM {table} "
        f"WHERE trim(userID) <> '' GROUP BY trim(userID)",
        counted=False,
    )


def _user_friends(load: FileLoad, table: str, _tags: str | None) -> None:
    load.add_sql(
        "friendships",
        f"SELECT {USER} trim(userID) AS user_id, {USER} trim(friendID) AS friend_id, _line "
        f"FROM {table}",
    )


def _user_taggedartists(load: FileLoad, table: str, tags: str | None) -> None:
    # An unknown tag id leaves the tag empty, which quarantines the row with its reason.
    load.add_sql(
        "item_tags",
        f"""
        SELECT {ARTIST} trim(a.artistID) AS item_id, t.tagValue AS tag,
               {USER} trim(a.userID) AS user_id,
               trim(a.year) || '-' || lpad(trim(a.month), 2, '0') || '-'
                   || lpad(trim(a.day), 2, '0') AS tagged_at,
               a._line
        FROM {table} a LEFT JOIN {tags} t ON trim(t.tagID) = trim(a.tagID)
        ORDER BY a._line
        """,
    )


_LOADERS = {
    "artists.dat": _artists,
    "user_artists.dat": _user_artists,
    "user_friends.dat": _user_friends,
    "user_taggedartists.dat": _user_taggedartists,
}
