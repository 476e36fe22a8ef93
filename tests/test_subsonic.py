"""`deepcuts sync subsonic` against a real Subsonic server (supysonic), read back with py-sonic.

One supysonic server is started for the module, over a music folder made from the real audio
excerpts in shared/data (copied and tagged with mutagen from manifest.csv). The store knows the
listeners' history of half the songs (by artist, title and duration) and tracks the server
does not have. The syncs run in file order: week 49, week 50, a song deleted and week 51, then
the failures, each of which must leave the store as it was.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import libsonic  # py-sonic, the reference client (the dev extra installs it, and supysonic)
import mutagen.oggvorbis as mutagen_ogg
import pyarrow as pa
import pytest
from click.testing import CliRunner

from deepcuts.io.subsonic import Song
from deepcuts.io.subsonic_library import import_library
from deepcuts.store import FileLoad, Store
from deepcuts.store.schema import SUBSONIC_PLAYLISTS, SUBSONIC_SONGS
from tests.conftest import AUDIO_EXCERPTS

BIN = Path(sys.executable).parent
USER, PASSWORD = "alice", "s3cret-pass"
MB_NAMESPACE = uuid.UUID("5a0c3f2e-3d5b-4b8e-9c1e-6f0d2b7a9e11")


def recording_mbid(file: str) -> str:
    return str(uuid.uuid5(MB_NAMESPACE, file))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest() -> list[dict[str, str]]:
    with open(AUDIO_EXCERPTS / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def make_music_folder(folder: Path) -> None:
    """The excerpts, tagged as a music server expects (files without a title in the manifest
    stay untagged, as real libraries have some)."""
    folder.mkdir()
    for row in manifest():
        target = folder / row["file"]
        shutil.copy(AUDIO_EXCERPTS / row["file"], target)
        tags = mutagen_ogg.OggVorbis(target)
        if row["title"]:
            tags["title"], tags["artist"], tags["album"] = row["title"], row["artist"], row["album"]
            tags["genre"] = row["source_package"].removesuffix("-music").title() + " soundtrack"
            tags["musicbrainz_trackid"] = recording_mbid(row["file"])
        tags.save()


class Supysonic:
    def __init__(self, root: Path, music: Path):
        self.root, self.music, self.port = root, music, free_port()
        (root / "cache").mkdir()
        (root / "supysonic.conf").write_text(
            f"[base]\ndatabase_uri = sqlite:///{root / 'supysonic.db'}\n"
            f"[webapp]\ncache_dir = {root / 'cache'}\nmount_webui = no\nlog_level = WARNING\n"
            f"[daemon]\nsocket = {root / 'daemon.sock'}\nrun_watcher = no\n"
        )
        # supysonic reads supysonic.conf from the working directory (and ~/.supysonic).
        self.env = {**os.environ, "HOME": str(root)}
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "supysonic-cli"), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def start(self) -> None:
        self.cli("user", "add", USER, "-p", PASSWORD)
        self.cli("folder", "add", "music", str(self.music))
        self.cli("folder", "scan", "music")
        self.process = subprocess.Popen(
            [
                str(BIN / "supysonic-server"),
                "-S",
                "waitress",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if (
                    self.client().ping()
                ):  # py-sonic answers False (not an error) while nothing listens
                    return
            except Exception:  # not listening yet
                pass
            if self.process.poll() is not None:
                raise RuntimeError("supysonic-server exited")
            time.sleep(0.2)
        raise RuntimeError("supysonic-server did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        """py-sonic, the reference client: supysonic takes only the password scheme."""
        return libsonic.Connection(
            "http://127.0.0.1", USER, PASSWORD, port=self.port, legacyAuth=True
        )


def write_store_files(folder: Path) -> None:
    """A store's worth of native files: listeners who played some of the server's songs (known
    to the store by artist, title and duration), and tracks the server does not have."""
    rows = [r for r in manifest() if r["title"]]
    known = [r for r in rows if r["artist"] == "Maxstack"][:10] + [
        r for r in rows if r["artist"] == "Will Savino"
    ][:2]
    folder.mkdir()
    tracks = ["track_id,name,artist_id,album_id,duration_ms"]
    artists = ["artist_id,name", "test:artist:maxstack,Maxstack", "test:artist:savino,Will Savino"]
    albums, ids = {}, []
    for i, r in enumerate(known):
        artist = "test:artist:maxstack" if r["artist"] == "Maxstack" else "test:artist:savino"
        album = albums.setdefault(r["album"], (f"test:album:{len(albums)}", artist))[0]
        if i in (4, 5):  # known by MusicBrainz id, under another title: only the id matches
            ids.append(f"mbid:recording:{recording_mbid(r['file'])}")
            tracks.append(f"{ids[-1]},{r['title']} (2011 mix),{artist},{album},30000")
        else:
            ids.append(f"test:track:{i}")
            tracks.append(f"{ids[-1]},{r['title']},{artist},{album},30000")
    for k in range(40):  # a catalogue beyond the server: 20 artists of 2 tracks each
        artists.append(f"test:artist:other{k // 2},Other Artist {k // 2}")
        tracks.append(
            f"test:track:other{k},Elsewhere {k},test:artist:other{k // 2},test:album:other{k},200000"
        )
    listens = ["user_id,item_id,played_at,ms_played"]
    users = ["user_id", USER] + [f"friend{u}" for u in range(12)]
    # alice played the first 4 known songs and a few others; the friends played overlapping sets.
    plays = {USER: [0, 1, 2, 3, 10]}
    for u in range(12):
        plays[f"friend{u}"] = [(u + j) % len(known) for j in range(5)]
    for user, items in plays.items():
        for n, i in enumerate(items):
            for rep in range(3):
                listens.append(f"{user},{ids[i]},2026-11-{16 + rep} {10 + n}:00:00,30000")
    for u in range(12):
        for k in range(u % 5, 40, 5):
            listens.append(f"friend{u},test:track:other{k},2026-11-20 0{k % 10}:00:00,200000")
    listens.append(f"{USER},test:track:other0,2026-11-20 12:00:00,200000")
    (folder / "users.csv").write_text("\n".join(users) + "\n")
    (folder / "artists.csv").write_text("\n".join(artists) + "\n")
    (folder / "tracks.csv").write_text("\n".join(tracks) + "\n")
    (folder / "albums.csv").write_text(
        "album_id,name,artist_id\n"
        + "".join(f'{a},"{name}",{artist}\n' for name, (a, artist) in albums.items())
    )
    (folder / "listens.csv").write_text("\n".join(listens) + "\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("subsonic")
    music = root / "music"
    make_music_folder(music)
    (root / "server").mkdir()
    server = Supysonic(root / "server", music)
    server.start()
    write_store_files(root / "native")
    store_path = root / "deepcuts.duckdb"
    ran = run(store_path, "ingest", "native", str(root / "native"))
    assert ran.exit_code == 0, ran.output
    yield {"server": server, "store": store_path, "music": music, "root": root}
    server.stop()


def run(store: Path, *args: str, password: str = PASSWORD):
    from deepcuts.cli import main

    return CliRunner().invoke(
        main, ["--store", str(store), *args], env={"DC_PASS": password}, catch_exceptions=False
    )


def sync(setup, week: str, *extra: str, url: str | None = None, password: str = PASSWORD):
    return run(
        setup["store"],
        "sync",
        "subsonic",
        "--url",
        url or setup["server"].url,
        "--user",
        USER,
        "--password-env",
        "DC_PASS",
        "--music-dir",
        str(setup["music"]),
        "--week",
        week,
        *extra,
        password=password,
    )


def stored_list(store: Path, week: str) -> list[str]:
    """The week's list as the server's song ids, in order, from what the store recorded."""
    with duckdb.connect(str(store), read_only=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                """
                SELECT min(m.song_id) FROM weekly_lists w JOIN subsonic_songs m ON m.track_id = w.item_id
                WHERE w.user_id = ? AND w.week = ? AND m.gone_at IS NULL GROUP BY w.position ORDER BY w.position
                """,
                [USER, week],
            ).fetchall()
        ]


def playlist_names(server: Supysonic) -> list[str]:
    found = server.client().getPlaylists()["playlists"].get("playlist", [])
    return [p["name"] for p in ([found] if isinstance(found, dict) else found)]


def discover_weekly(server: Supysonic, name: str = "Discover Weekly") -> tuple[str, list[str]]:
    """The one playlist of that name (asserted to be one) and its songs, via py-sonic."""
    client = server.client()
    found = client.getPlaylists()["playlists"].get("playlist", [])
    found = [found] if isinstance(found, dict) else found
    mine = [p for p in found if p["name"] == name]
    assert len(mine) == 1, found
    entries = client.getPlaylist(mine[0]["id"])["playlist"].get("entry", [])
    entries = [entries] if isinstance(entries, dict) else entries
    return mine[0]["id"], [e["id"] for e in entries]


def played_by_alice(store: Path) -> set[str]:
    with duckdb.connect(str(store), read_only=True) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT m.song_id FROM listens l JOIN subsonic_songs m ON m.track_id = l.item_id "
                "WHERE l.user_id = ?",
                [USER],
            ).fetchall()
        }


def snapshot(store: Path) -> dict[str, str]:
    """A digest of every table's rows."""
    with duckdb.connect(str(store), read_only=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        out = {}
        for t in sorted(tables):
            rows = sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall()))
            out[t] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        return out


# The syncs build on each other as the weeks pass (the same server and store): each week is a
# fixture over the one before, so any test runs alone, with the weeks it needs synced first.
@pytest.fixture(scope="module")
def week_49(setup):
    result = sync(setup, "2026-W49", "--because", "1")
    assert result.exit_code == 0, result.output
    playlist_id, songs = discover_weekly(setup["server"])
    return {"result": result, "playlist_id": playlist_id, "songs": songs}


@pytest.fixture(scope="module")
def week_50(setup, week_49):
    before = snapshot(setup["store"])
    result = sync(setup, "2026-W50", "--because", "1")
    assert result.exit_code == 0, result.output
    playlist_id, songs = discover_weekly(setup["server"])
    return {"result": result, "playlist_id": playlist_id, "songs": songs, "before": before,
            "after": snapshot(setup["store"]), "playlists": sorted(playlist_names(setup["server"]))}  # fmt: skip


def test_first_sync_reads_the_library_and_writes_the_playlist(setup, week_49):
    result, songs = week_49["result"], week_49["songs"]
    store = setup["store"]
    with duckdb.connect(str(store), read_only=True) as conn:
        mapping = dict(
            conn.execute("SELECT matched_by, count(*) FROM subsonic_songs GROUP BY 1").fetchall()
        )
        # every song has its file as audio, and the songs the store knew are the same tracks
        no_audio = conn.execute(
            "SELECT count(*) FROM subsonic_songs m JOIN tracks t USING (track_id) WHERE t.audio_path IS NULL"
        ).fetchall()[0][0]
        genres = conn.execute(
            "SELECT count(*) FROM tracks WHERE genre = 'Hyperrogue soundtrack'"
        ).fetchall()[0][0]
        new_ids = [
            r[0]
            for r in conn.execute(
                "SELECT track_id FROM subsonic_songs WHERE matched_by = 'new'"
            ).fetchall()
        ]
    # the MusicBrainz ids are in the files' tags (supysonic does not serve them): the two songs
    # the store knows by id match by it, and new tagged songs take their recording as track id
    assert mapping == {"mbid": 2, "metadata": 10, "new": 21}, mapping
    assert (
        sum(t.startswith("mbid:recording:") for t in new_ids) == 19
    )  # the 2 untagged files are not
    assert no_audio == 0 and genres == 13  # 15 tagged, 2 of them known to the store without a genre
    assert (
        "33 songs" in result.output
        and "2 matched by MusicBrainz id, 10 by artist, title and duration, 21 new" in result.output
    )
    assert songs == stored_list(store, "2026-W49")
    # 2 per artist and 1 per album over the server's 4 artists and 5 albums (the untagged
    # files are one "[unknown]" artist and album): 5 songs, none played, and the list says why.
    assert len(songs) == 5 and not set(songs) & played_by_alice(store)
    assert "only 5 tracks: the 33 tracks allowed have too few" in result.output
    # alice's most played artist is Maxstack: songs like hers by others, none she played
    _, because = discover_weekly(setup["server"], "Because you listened to Maxstack")
    artists = [setup["server"].client().getSong(s)["song"]["artist"] for s in because]
    assert because and "Maxstack" not in artists and not set(because) & played_by_alice(store)
    assert max(artists.count(a) for a in artists) <= 2
    assert "'Because you listened to Maxstack' holds" in result.output


def test_next_week_replaces_the_playlist(setup, week_49, week_50):
    result, songs = week_50["result"], week_50["songs"]
    assert "33 known from earlier syncs" in result.output
    assert week_50["playlists"] == ["Because you listened to Maxstack", "Discover Weekly"]
    assert week_50["playlist_id"] == week_49["playlist_id"]  # still one playlist
    assert songs == stored_list(setup["store"], "2026-W50") and len(songs) == 5
    assert not set(songs) & set(week_49["songs"])  # never last week's again
    before, after = week_50["before"], week_50["after"]
    # the catalogue is as it was: a known library adds nothing
    assert all(
        after[t] == before[t] for t in ("tracks", "artists", "albums", "listens", "item_tags")
    )


def test_a_song_gone_from_the_server_is_reported_and_left_out(setup, week_50):
    server, store = setup["server"], setup["store"]
    gone_song = week_50["songs"][0]
    path = server.client().getSong(gone_song)["song"]["path"]
    (setup["music"] / path).unlink()
    server.cli("folder", "scan", "music")
    before = snapshot(store)
    result = sync(setup, "2026-W51")
    assert result.exit_code == 0, result.output
    assert (
        "no longer on the server since the last sync: " in result.output
        and f"({gone_song})" in result.output
    )
    _, songs = discover_weekly(server)
    assert gone_song not in songs and songs == stored_list(store, "2026-W51") and songs
    after = snapshot(store)
    assert all(
        after[t] == before[t] for t in ("tracks", "artists", "albums", "listens", "quarantine")
    )
    with duckdb.connect(str(store), read_only=True) as conn:
        gone = conn.execute(
            "SELECT song_id FROM subsonic_songs WHERE gone_at IS NOT NULL"
        ).fetchall()
    assert gone == [(gone_song,)]
    # no --because this time: the playlist of the earlier syncs is deleted, not left behind
    assert playlist_names(server) == ["Discover Weekly"]
    assert "deleted the playlist 'Because you listened to Maxstack'" in result.output


def test_wrong_password_is_exit_8_and_changes_nothing(setup, week_49):
    before = snapshot(setup["store"])
    result = sync(setup, "2026-W52", password="not-the-password")
    assert result.exit_code == 8
    assert "refused user 'alice'" in result.output and "$DC_PASS" in result.output
    assert snapshot(setup["store"]) == before
    assert discover_weekly(setup["server"])[0] == week_49["playlist_id"]


def test_unreachable_server_is_exit_7_and_changes_nothing(setup):
    before = snapshot(setup["store"])
    result = sync(setup, "2026-W52", url=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 7
    assert "cannot reach the Subsonic server at http://127.0.0.1:" in result.output
    assert snapshot(setup["store"]) == before


def test_missing_password_variable_and_bad_url_are_clear(setup):
    from deepcuts.cli import main

    before = snapshot(setup["store"])
    result = CliRunner().invoke(
        main,
        [
            "--store",
            str(setup["store"]),
            "sync",
            "subsonic",
            "--url",
            setup["server"].url,
            "--user",
            USER,
            "--password-env",
            "NO_SUCH_VARIABLE_DC",
        ],
        env={"NO_SUCH_VARIABLE_DC": None},
    )
    assert result.exit_code == 5 and "NO_SUCH_VARIABLE_DC is not set" in result.output
    result = run(
        setup["store"],
        "sync",
        "subsonic",
        "--url",
        "localhost:4533",
        "--user",
        USER,
        "--password-env",
        "DC_PASS",
    )
    assert result.exit_code == 2 and "http:// or https://" in result.output
    assert snapshot(setup["store"]) == before


def test_a_song_that_vanishes_while_the_playlist_is_written_is_a_clear_error(setup):
    from deepcuts.io.subsonic import SubsonicClient, SubsonicError

    server = setup["server"]

    def playlists() -> dict[str, tuple[str, list[str]]]:
        return {name: discover_weekly(server, name) for name in playlist_names(server)}

    before = playlists()  # whatever the syncs before left (none where this test runs alone)
    with SubsonicClient(server.url, USER, PASSWORD) as client:
        with pytest.raises(SubsonicError, match=r"createPlaylist.*not found.*Subsonic error 70"):
            client.write_playlist("Discover Weekly", ["00000000-0000-0000-0000-000000000000"])
    assert playlists() == before  # untouched, and nothing half made


# -- matching, on hand-built songs ------------------------------------------------------------


def test_matching_mbid_first_then_metadata_and_never_an_ambiguous_pair():
    with Store(":memory:", create=True) as store:
        with FileLoad(store, "native", "-") as load:
            load.add_arrow(
                "artists", pa.table({"artist_id": ["a:1", "a:2"], "name": ["Sigur Rós", "Twins"]})
            )
            load.add_arrow(
                "tracks",
                pa.table(
                    {
                        "track_id": [
                            "mbid:recording:11111111-1111-1111-1111-111111111111",
                            "t:hop",
                            "t:x",
                            "t:y",
                        ],
                        "name": ["Hoppípolla", "Hoppípolla!", "Same", "Same"],
                        "artist_id": ["a:1", "a:1", "a:2", "a:2"],
                        "duration_ms": [268_000, 268_000, 100_000, 101_000],
                    }
                ),
            )
        songs = [
            Song(
                "s1",
                "Hoppipolla",
                "Sigur Ros",
                mbid="11111111-1111-1111-1111-111111111111",
                duration_s=268,
            ),
            Song(
                "s2", "hoppipolla", "SIGUR ROS", duration_s=269
            ),  # the other Hoppípolla track, by name
            Song("s3", "Same", "Twins", duration_s=100),  # two candidate tracks: no match
            Song("s4", "Hoppípolla", "Sigur Rós", duration_s=400),  # duration too far: new
            Song(
                "s5",
                "New one",
                "Sigur Rós",
                album="Takk",
                album_id="al9",
                genre="Post-rock",
                duration_s=200,
            ),
        ]
        # "Hoppipolla!" normalises like "Hoppipolla": s1 took the MBID track, s2 gets t:hop.
        report = import_library(store, "music.example:4533", songs)
        assert report.track_of_song["s1"] == "mbid:recording:11111111-1111-1111-1111-111111111111"
        assert report.track_of_song["s2"] == "t:hop"
        assert report.track_of_song["s3"] == "subsonic:music.example:4533:s3"
        assert report.track_of_song["s4"] == "subsonic:music.example:4533:s4"
        assert (report.by_mbid, report.by_metadata, report.new) == (1, 1, 3)
        new_track = store.conn.execute(
            "SELECT artist_id, genre, duration_ms FROM tracks WHERE track_id = 'subsonic:music.example:4533:s5'"
        ).fetchall()
        assert new_track == [("a:1", "Post-rock", 200_000)]  # the known artist, by name
        assert store.conn.execute("SELECT tag FROM item_tags").fetchall() == [("Post-rock",)]
        again = import_library(store, "music.example:4533", songs[:4])
        assert again.known == 4 and again.new == 0 and again.gone == ["Sigur Rós - New one (s5)"]
        for table in (SUBSONIC_SONGS, SUBSONIC_PLAYLISTS):
            described = store.conn.execute(f"DESCRIBE {table.name}").fetchall()
            assert [(r[0], r[1]) for r in described] == [(c.name, c.type) for c in table.columns]
