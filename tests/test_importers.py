"""Each importer on small files in its real format, and on the real HetRec folder."""

import json

import pytest

from deepcuts.io import FORMATS, FormatError
from tests.conftest import FIXTURES, HETREC


def ingest(store, fmt, *paths, **options):
    importer = FORMATS[fmt](**options)
    counts = [importer.ingest_file(store, f) for f in importer.files([str(p) for p in paths])]
    return sum(counts[1:], counts[0])


def quarantined(store):
    return store.conn.execute("SELECT line, reason FROM quarantine ORDER BY line").fetchall()


def test_spotify_keeps_good_records_and_quarantines_the_broken_ones(store):
    counts = ingest(
        store, "spotify", FIXTURES / "spotify" / "Streaming_History_Audio_2024_1.json", user="me"
    )
    assert (counts.rows_read, counts.accepted, counts.quarantined) == (5, 2, 3)
    assert quarantined(store) == [
        (4, "played_at: cannot read not a time as TIMESTAMP"),
        (5, "invalid JSON: Expecting ',' delimiter"),
        (6, "a podcast episode, not a music track"),
    ]
    rows = store.conn.execute(
        "SELECT user_id, item_id, ms_played, skipped, shuffle, country FROM listens ORDER BY played_at"
    ).fetchall()
    assert rows == [
        ("spotify:user:me", "spotify:track:aaa", 215000, False, False, "SE"),
        # skipped is null in the export; 5 s then fwdbtn is a skip by our definition
        ("spotify:user:me", "spotify:track:bbb", 5000, True, True, "SE"),
    ]
    assert store.conn.execute(
        "SELECT name, artist_id FROM tracks WHERE track_id = 'spotify:track:aaa'"
    ).fetchall() == [("Song A", "spotify:artist-name:artist x")]


def test_spotify_endsong_names_its_user(store):
    counts = ingest(store, "spotify", FIXTURES / "spotify" / "endsong_0.json")
    assert counts.accepted == 3
    assert store.conn.execute("SELECT DISTINCT user_id FROM listens").fetchall() == [
        ("spotify:user:alice",)
    ]
    assert store.conn.execute("SELECT count(*) FROM artists").fetchall() == [(2,)]


def test_spotify_without_user_needs_the_option(store):
    with pytest.raises(FormatError, match="--user"):
        ingest(store, "spotify", FIXTURES / "spotify" / "Streaming_History_Audio_2024_1.json")


def test_file_in_another_format_gets_one_clear_error(store, tmp_path):
    wrong = tmp_path / "endsong_0.json"
    wrong.write_text(json.dumps({"playlists": []}))
    with pytest.raises(FormatError, match="expected a Spotify extended streaming history"):
        ingest(store, "spotify", wrong)
    records = tmp_path / "Streaming_History_Audio_1.json"
    records.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(FormatError, match="the first record has name"):
        ingest(store, "spotify", records, user="me")
    with pytest.raises(FormatError, match="not a HetRec Last.fm 2K folder"):
        ingest(store, "lastfm-hetrec", tmp_path)
    with pytest.raises(FormatError, match="Million Playlist Dataset slice"):
        (tmp_path / "mpd.slice.0-999.json").write_text("[1, 2]")
        ingest(store, "mpd", tmp_path / "mpd.slice.0-999.json")
    assert store.stats()["listens"] == 0


def test_listenbrainz_export(store):
    counts = ingest(store, "listenbrainz", FIXTURES / "listenbrainz" / "listens.jsonl")
    assert (counts.rows_read, counts.accepted, counts.quarantined) == (4, 3, 1)
    items = [
        r[0]
        for r in store.conn.execute("SELECT item_id FROM listens ORDER BY played_at").fetchall()
    ]
    assert items == [
        "mbid:recording:5fa71b88-2a4a-4e76-bf72-4b58a0d8a8a6",
        "spotify:track:0Xp0nb8UzB4X9N6ae1yxQM",
        "listenbrainz:msid:0c3e1a55-7b2d-4f5e-8f41-6d2b1d7d9c10",
    ]
    assert (
        str(store.conn.execute("SELECT min(played_at) FROM listens").fetchall()[0][0])
        == "2023-11-14 22:13:20"
    )
    assert quarantined(store) == [(3, "played_at: cannot read yesterday as TIMESTAMP")]


def test_mpd_slice(store):
    counts = ingest(store, "mpd", FIXTURES / "mpd")
    # 2 playlists + 3 items read; the item without a URI is quarantined
    assert (counts.rows_read, counts.accepted, counts.quarantined) == (6, 5, 1)
    names = store.conn.execute(
        "SELECT name, description FROM playlists ORDER BY playlist_id"
    ).fetchall()
    assert names == [("Throwbacks", None), ("rainy sunday", "slow songs for grey days")]
    order = store.conn.execute(
        "SELECT item_id FROM playlist_items WHERE playlist_id = 'mpd:playlist:0' ORDER BY position"
    ).fetchall()
    assert order == [
        ("spotify:track:0UaMYEvWZi0ZqiDOoHU3YI",),
        ("spotify:track:6I9VzXrHxO9rA9A5euc8Ak",),
    ]
    assert store.stats()["tracks"] == 2
    assert quarantined(store)[0][0] == 46  # the line of that playlist's pid


def test_native_folder_in_three_formats(store):
    counts = ingest(store, "native", FIXTURES / "native")
    stats = store.stats()
    assert (stats["tracks"], stats["listens"], stats["actions"]) == (2, 3, 2)
    assert counts.rows_read == counts.accepted + counts.duplicates + counts.quarantined == 3 + 6 + 5
    reasons = dict(
        store.conn.execute(
            "SELECT regexp_extract(source_file, '[^/]+$') || ':' || line, reason FROM quarantine"
        ).fetchall()
    )
    assert reasons["tracks.csv:4"] == "release_date: cannot read not-a-date as DATE"
    assert reasons["listens.csv:5"] == "ms_played is negative"
    assert reasons["listens.csv:6"] == "Expected Number of Columns: 7 Found: 8"
    assert reasons["actions.jsonl:3"].startswith("action must be one of save")
    assert reasons["actions.jsonl:4"] == "unknown field(s) for actions: mood"
    assert reasons["actions.jsonl:5"].startswith("invalid JSON")
    # an offset is honoured: 10:05+01:00 is 09:05 UTC
    assert (
        str(
            store.conn.execute("SELECT played_at FROM listens WHERE item_id = 't2'").fetchall()[0][
                0
            ]
        )
        == "2026-11-02 09:05:00"
    )


@pytest.mark.parametrize(
    "dirty", [False, True], ids=["clean file, read directly", "dirty file, staged"]
)
def test_native_csv_keeps_the_first_of_repeated_rows_either_way(store, tmp_path, dirty):
    """A clean CSV goes straight from the file into the store, a dirty one is staged first for
    its line numbers; both keep the first of two rows with the same key, and the dirty one
    quarantines its bad rows with their lines."""
    rows = ["user_id,item_id,played_at,ms_played"]
    rows += [f"u{k},i{k},2026-11-02 10:00:00,{1000 + k}" for k in range(5)]
    rows.append("u1,i1,2026-11-02 10:00:00,99999")  # the key of line 3 again
    if dirty:
        rows.append("u7,i7,yesterday,1000")  # line 8
        rows.append("u8,i8,2026-11-02 10:00:00,10,extra")  # line 9
    (tmp_path / "listens.csv").write_text("\n".join(rows) + "\n")
    counts = ingest(store, "native", tmp_path / "listens.csv")
    assert (counts.accepted, counts.duplicates, counts.quarantined) == (5, 1, 2 if dirty else 0)
    kept = store.conn.execute("SELECT ms_played FROM listens WHERE user_id = 'u1'").fetchall()
    assert kept == [(1001,)]
    lines = [line for line, _ in quarantined(store)]
    assert lines == ([8, 9] if dirty else [])


def _load_both_ways(store, path, table):
    """Load a CSV file the fast way (typed by the reader, straight from the file) and assert it
    took that way; load it again, into a second store, as text staged first (the careful way,
    which every rejected row takes); return both tables' rows."""
    from deepcuts.io.files import DirectCsv, drop_staged, stage_csv
    from deepcuts.store import TABLES, FileLoad, Store, reader_types

    def rows(conn):
        return conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()

    with FileLoad(store, "native", str(path)) as load:
        with DirectCsv(store.conn, path, reader_types(TABLES[table])) as direct:
            assert load.add_sql(table, direct.select, only_if_clean=direct.clean) is not None
    with Store(":memory:", create=True) as careful, FileLoad(careful, "native", str(path)) as load:
        staged, rejected = stage_csv(careful.conn, path)
        assert rejected == []
        load.add_sql(table, f"SELECT * FROM {staged}")
        drop_staged(careful.conn, staged)
        return rows(store.conn), rows(careful.conn)


EDGE_CASE_CSV = {
    "listens": (
        "user_id,item_id,played_at,ms_played,play_count,skipped,shuffle,offline,incognito\n"
        '" u1 ",i1,2026-11-02T10:00:00Z, 12,+4,TRUE,t,yes,0\n'
        "u2,i2,2026-11-02 10:00:00+02:00,12.5,1e3,False,f,no,1\n"
        "u3,i3, 2026-11-02 10:00:00.25 ,007,1_000,true,y,n,\n"
        "u4,i4,2026-11-02,0x10,1.,,,,\n"
        "u5,i5,2026-11-02 10:00:00 UTC,,,false,false,false,false\n"
    ),
    "tracks": (
        "track_id,name,release_date,duration_ms\n"
        "t1,One, 2026-01-02 ,200000\n"
        "t2,Two,2026-1-2,1.5e5\n"
        "t3,Three,2026/01/02, 180000 \n"
        "t4,Four,2026-01-02 00:00:00,\n"
    ),
}


@pytest.mark.parametrize("table", sorted(EDGE_CASE_CSV))
def test_native_csv_typed_fast_way_reads_every_value_as_the_careful_way_does(
    store, tmp_path, table
):
    """The reader's own number, boolean, date and time parsing agrees with the load's casts of
    the text on each value it accepts: spaces, signs, rounding, exponents, spellings of true,
    offsets."""
    path = tmp_path / f"{table}.csv"
    path.write_text(EDGE_CASE_CSV[table])
    fast, careful = _load_both_ways(store, path, table)
    assert len(fast) == EDGE_CASE_CSV[table].count("\n") - 1 and fast == careful


def test_native_csv_value_the_reader_refuses_is_read_again_as_text(store, tmp_path):
    """Where the reader cannot parse a value as its column's type (here a boolean with spaces
    round it, which the load's cast reads), the file is read again as text: nothing lost."""
    path = tmp_path / "listens.csv"
    path.write_text(
        "user_id,item_id,played_at,skipped\nu1,i1,2026-11-02 10:00:00, true \nu2,i2,2026-11-02 10:00:00,yes-ish\n"
    )
    counts = ingest(store, "native", path)
    assert (counts.accepted, counts.quarantined) == (1, 1)
    assert store.conn.execute("SELECT user_id, skipped FROM listens").fetchall() == [("u1", True)]
    assert [line for line, _ in quarantined(store)] == [3]


@pytest.mark.parametrize(
    "extra",
    ["", "u9,i9,2026-11-02 10:00:00,-5", "u0,i0,2026-11-02 10:00:00,7"],
    ids=["clean", "a row fails a check", "a key repeats"],
)
def test_native_csv_first_load_into_an_empty_table(store, tmp_path, extra):
    """A clean first load goes into the empty table in one pass; where a row turns out invalid
    or a key repeats, that pass is undone and the file loads the usual way: the bad row
    quarantined with its line, the first of the repeated rows kept, nothing else changed."""
    rows = ["user_id,item_id,played_at,ms_played"] + [
        f"u{k},i{k},2026-11-02 10:00:00,{1000 + k}" for k in range(4)
    ]
    (tmp_path / "listens.csv").write_text("\n".join([*rows, extra]).strip() + "\n")
    counts = ingest(store, "native", tmp_path / "listens.csv")
    bad, repeated = extra.endswith("-5"), extra.endswith(",7")
    assert (counts.rows_read, counts.accepted, counts.duplicates, counts.quarantined) == (
        4 + bool(extra),
        4,
        int(repeated),
        int(bad),
    )
    stored = store.conn.execute(
        "SELECT user_id, ms_played FROM listens ORDER BY user_id"
    ).fetchall()
    assert stored == [(f"u{k}", 1000 + k) for k in range(4)]
    assert [line for line, _ in quarantined(store)] == ([6] if bad else [])
    assert store.conn.execute("SELECT rows_read FROM ingest_log").fetchall() == [
        (counts.rows_read,)
    ]


def test_native_timestamps_honour_every_way_of_writing_an_offset(store, tmp_path):
    written = {
        "a": ("2026-11-02 10:00:00", "2026-11-02 10:00:00"),
        "b": ("2026-11-02T10:00:00.250", "2026-11-02 10:00:00.25"),
        "c": ("2026-11-02", "2026-11-02 00:00:00"),
        "d": ("2026-11-02T10:00:00Z", "2026-11-02 10:00:00"),
        "e": ("2026-11-02T10:00:00+02:00", "2026-11-02 08:00:00"),
        "f": ("2026-11-02 10:00:00-05", "2026-11-02 15:00:00"),
        "g": ("2026-11-02 10:00:00.5+0530", "2026-11-02 04:30:00.5"),
        "h": ("2026-11-02 10:00:00 UTC", "2026-11-02 10:00:00"),
    }
    rows = ["user_id,item_id,played_at"] + [
        f"u,{item},{text}" for item, (text, _) in written.items()
    ]
    (tmp_path / "listens.csv").write_text("\n".join(rows) + "\n")
    assert ingest(store, "native", tmp_path / "listens.csv").accepted == len(written)
    stored = dict(
        store.conn.execute("SELECT item_id, CAST(played_at AS VARCHAR) FROM listens").fetchall()
    )
    assert stored == {item: utc for item, (_, utc) in written.items()}


def test_native_unknown_column_and_unknown_table(store, tmp_path):
    (tmp_path / "listens.csv").write_text("user_id,item_id,colour\nu,i,red\n")
    with pytest.raises(ValueError, match="unknown column"):
        ingest(store, "native", tmp_path / "listens.csv")
    (tmp_path / "stuff.csv").write_text("a\n1\n")
    with pytest.raises(FormatError, match="cannot tell which table"):
        ingest(store, "native", tmp_path / "stuff.csv")


@pytest.mark.parametrize(
    "fmt,path,options",
    [
        ("spotify", FIXTURES / "spotify", {"user": "me"}),
        ("listenbrainz", FIXTURES / "listenbrainz", {}),
        ("mpd", FIXTURES / "mpd", {}),
        ("native", FIXTURES / "native", {}),
    ],
)
def test_ingesting_twice_changes_no_count(store, fmt, path, options):
    first = ingest(store, fmt, path, **options)
    before = store.stats()
    second = ingest(store, fmt, path, **options)
    assert store.stats() == before
    assert second.accepted == 0
    assert second.duplicates == first.accepted + first.duplicates
    assert second.quarantined == first.quarantined


def test_hetrec_real_folder_counts_and_idempotence(store):
    ingest(store, "lastfm-hetrec", HETREC)
    stats = store.stats()
    assert stats["users"] == 1892
    assert stats["artists"] == 17632
    assert stats["listens"] == 92834
    assert stats["friendships"] == 25434
    assert stats["item_tags"] == 186478
    assert stats["quarantine"] == 0
    # tag text per artist, from the tag assignments (tags.dat is Latin-1)
    tags = store.conn.execute(
        "SELECT list(DISTINCT tag ORDER BY tag) FROM item_tags WHERE item_id = 'lastfm:artist:52'"
    ).fetchall()[0][0]
    assert {"chillout", "downtempo", "electronic"} <= set(tags)
    plays = store.conn.execute(
        "SELECT play_count FROM listens WHERE user_id = 'lastfm:user:2' AND item_id = 'lastfm:artist:51'"
    ).fetchall()
    assert plays == [(13883,)]
    ingest(store, "lastfm-hetrec", HETREC)
    assert store.stats() == stats


def test_native_relative_audio_paths_are_resolved_beside_the_file(store, tmp_path):
    (tmp_path / "tracks.csv").write_text(
        "track_id,audio_path\nt1,audio/t1.wav\nt2,/abs/t2.wav\nt3,https://example.org/t3.mp3\nt4,\n"
    )
    ingest(store, "native", tmp_path / "tracks.csv")
    ingest(store, "native", tmp_path / "tracks.csv")  # again: nothing is prefixed twice
    paths = dict(store.conn.execute("SELECT track_id, audio_path FROM tracks").fetchall())
    assert paths == {
        "t1": str(tmp_path.resolve() / "audio" / "t1.wav"),
        "t2": "/abs/t2.wav",
        "t3": "https://example.org/t3.mp3",
        "t4": None,
    }
