"""ListenBrainz's API on a real `deepcuts serve`, through the real client (liblistenbrainz) and,
for the created-for playlists, plain HTTP as Explo and naviList read them."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from liblistenbrainz import Listen, ListenBrainz
from liblistenbrainz.errors import InvalidAuthTokenException, ListenBrainzAPIException

from deepcuts.serving.listenbrainz import msid
from deepcuts.store import Store
from tests.serving_helpers import Server, build_world, cli

UNKNOWN_MBID = "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
UNKNOWN_ARTIST_MBID = "2f569e60-0a1b-4fb9-95a4-3dc1525d1aad"
UNKNOWN_RELEASE_MBID = "3c8e7b1b-1a7c-4f5d-9c43-7c1a2b9b6e11"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("listenbrainz")
    store = build_world(root, users=40, tracks=900, seed=7)
    with Store(store, read_only=True) as s:
        full = s.conn.execute(
            "SELECT user_id FROM weekly_lists WHERE week = '2026-W44' GROUP BY user_id "
            "HAVING count(*) = 30 ORDER BY user_id LIMIT 2"
        ).fetchall()
        alice, bob = full[0][0], full[1][0]
        weekly = s.conn.execute(
            "SELECT t.name FROM weekly_lists w JOIN tracks t ON t.track_id = w.item_id "
            "WHERE w.user_id = ? AND w.week = '2026-W44' ORDER BY w.position",
            [alice],
        ).fetchall()
        played = {r[0] for r in s.conn.execute("SELECT DISTINCT item_id FROM listens").fetchall()}
        known = s.conn.execute(
            "SELECT t.track_id, t.name, a.name, t.duration_ms FROM tracks t "
            "JOIN artists a USING (artist_id) ORDER BY t.track_id"
        ).fetchall()
    names: dict[tuple[str, str], int] = {}
    for _, name, artist, _ in known:
        names[(artist.lower(), name.lower())] = names.get((artist.lower(), name.lower()), 0) + 1
    known = [k for k in known if names[(k[2].lower(), k[1].lower())] == 1 and k[0] in played]
    keys = {}
    for user in (alice, bob):
        out = cli(store, "keys", "create", "--user", user).output
        keys[user] = next(line for line in out.splitlines() if line.startswith("dc_"))
    server = Server(store).start()
    yield {"store": store, "server": server, "alice": alice, "bob": bob, "keys": keys,
           "weekly": [r[0] for r in weekly], "known": known}  # fmt: skip
    server.stop()


def client_for(world, user: str) -> ListenBrainz:
    client = ListenBrainz(api_base_url=world["server"].url)
    client.set_auth_token(world["keys"][user])  # checks it with /1/validate-token
    return client


def test_scrobbles_listens_feedback_and_recommendations_through_liblistenbrainz(world):
    alice, store = world["alice"], world["store"]
    client = client_for(world, alice)
    (k1, name1, artist1, _), (k2, name2, artist2, length2) = world["known"][:2]
    now = int(time.time())

    single = Listen(track_name=name1, artist_name=artist1, listened_at=now - 900,
                    additional_info={"duration_ms": 200_000})  # fmt: skip
    assert client.submit_single_listen(single) == {"status": "ok"}
    batch = [
        Listen(track_name="Deep Water Song", artist_name="Nobody Yet", listened_at=now - 600,
               release_name="First Tape", recording_mbid=UNKNOWN_MBID,
               artist_mbids=[UNKNOWN_ARTIST_MBID], release_mbid=UNKNOWN_RELEASE_MBID,
               additional_info={"duration": 215}),
        Listen(track_name=name2.upper(), artist_name=f"  {artist2}", listened_at=now - 300),
        Listen(track_name=name1, artist_name=artist1, listened_at=now - 900),  # sent again
    ]  # fmt: skip
    assert client.submit_multiple_listens(batch) == {"status": "ok"}
    client.submit_playing_now(Listen(track_name="Deep Water Song", artist_name="Nobody Yet"))
    playing = client.get_playing_now(alice)
    assert playing is not None and playing.track_name == "Deep Water Song"

    listens = client.get_listens(alice)
    assert [x.listened_at for x in listens] == [now - 300, now - 600, now - 900]  # once each
    assert listens[1].track_name == "Deep Water Song"
    assert listens[1].recording_mbid == UNKNOWN_MBID and listens[1].release_name == "First Tape"
    assert all(x.recording_msid for x in listens)
    assert client.get_listens(alice, max_ts=now - 300)[0].listened_at == now - 600
    assert [x.listened_at for x in client.get_listens(alice, min_ts=now - 901, count=2)] == [
        now - 600,
        now - 900,
    ]

    # The listens are the service's events: known tracks matched by artist and title
    # (case and spaces aside), the duration given or the track's own as ms played.
    events = httpx.get(f"{world['server'].url}/v1/users/{alice}/events",
                       headers={"Authorization": f"Token {world['keys'][alice]}"}).json()["events"]  # fmt: skip
    plays = {e["item_id"]: e for e in events if e["type"] == "play"}
    assert plays[k1]["ms_played"] == 200_000 and plays[k2]["ms_played"] == length2
    assert plays[f"mbid:recording:{UNKNOWN_MBID}"]["ms_played"] == 215_000
    assert plays[k1]["event_id"] == f"lb:{now - 900}:{msid(k1)}"

    # Love a track (by its deepcuts id, as recommendations give it), hate the new one (by the
    # msid its listen was read back with).
    client.submit_user_feedback(1, k2)
    r = httpx.post(
        f"{world['server'].url}/1/feedback/recording-feedback",
        json={"recording_msid": listens[1].recording_msid, "score": -1},
        headers={"Authorization": f"Token {world['keys'][alice]}"},
    )  # by its msid
    assert r.json() == {"status": "ok"}
    feedback = client.get_user_feedback(alice, score=None, metadata=True)
    assert feedback["total_count"] == 2
    assert {(f["recording_mbid"], f["score"]) for f in feedback["feedback"]} == {
        (k2, 1),
        (UNKNOWN_MBID, -1),
    }
    loved = client.get_user_feedback(alice, score=1, metadata=False)["feedback"]
    assert [f["recording_mbid"] for f in loved] == [k2]
    client.submit_user_feedback(0, k2)  # no longer loved
    assert client.get_user_feedback(alice, score=1, metadata=False)["feedback"] == []

    # Recommendations: deepcuts ids (these tracks have no MBID), best first, none played.
    recs = client.get_user_recommendation_recordings(alice, "raw", count=10, offset=2)
    mbids = recs["payload"]["mbids"]
    assert len(mbids) == recs["payload"]["count"] == 10 and recs["payload"]["offset"] == 2
    scores = [m["score"] for m in mbids]
    assert scores == sorted(scores, reverse=True)
    assert not {m["recording_mbid"] for m in mbids} & {k1, k2}
    with Store(store, read_only=True) as s:
        catalogue = {r[0] for r in s.conn.execute("SELECT track_id FROM tracks").fetchall()}
    assert {m["recording_mbid"] for m in mbids} <= catalogue

    # Absorbed by `deepcuts learn` beside the running server: the unknown track is now a
    # catalogue entry made from what the client said, with its listen and the hate.
    cli(store, "learn")
    with Store(store, read_only=True) as s:
        track = s.conn.execute(
            "SELECT t.name, a.artist_id, a.name, al.album_id, al.name, t.duration_ms "
            "FROM tracks t JOIN artists a USING (artist_id) JOIN albums al USING (album_id) "
            "WHERE t.track_id = ?",
            [f"mbid:recording:{UNKNOWN_MBID}"],
        ).fetchall()
        assert track == [("Deep Water Song", f"mbid:artist:{UNKNOWN_ARTIST_MBID}", "Nobody Yet",
                          f"mbid:release:{UNKNOWN_RELEASE_MBID}", "First Tape", 215_000)]  # fmt: skip
        assert s.conn.execute(
            "SELECT count(*) FROM listens WHERE user_id = ? AND item_id = ?",
            [alice, f"mbid:recording:{UNKNOWN_MBID}"],
        ).fetchone() == (1,)
        actions = s.conn.execute(
            "SELECT action, target_id FROM actions WHERE user_id = ? AND source = 'api' "
            "ORDER BY acted_at",
            [alice],
        ).fetchall()
        assert actions == [("save", k2), ("ban", f"mbid:recording:{UNKNOWN_MBID}"), ("unsave", k2)]
        assert s.conn.execute("SELECT name FROM tracks WHERE track_id = ?", [k1]).fetchone() == (
            name1,
        )  # a known track is left as it was

    # Delete an absorbed listen: gone from the listens at once, from the store at the next learn.
    target = next(x for x in client.get_listens(alice) if x.listened_at == now - 900)
    client.delete_listen(target)
    assert now - 900 not in [x.listened_at for x in client.get_listens(alice)]
    cli(store, "learn")
    with Store(store, read_only=True) as s:
        assert s.conn.execute(
            "SELECT count(*) FROM listens WHERE user_id = ? AND item_id = ? AND source = 'api'",
            [alice, k1],
        ).fetchone() == (0,)


def test_created_for_playlists_as_explo_reads_them(world):
    """With no token, as those tools send none: created-for playlists are public, as on
    ListenBrainz (a key that is sent still has to be valid and may reach only its listener)."""
    alice, url = world["alice"], world["server"].url
    bad = httpx.get(f"{url}/1/user/{alice}/playlists/createdfor",
                    headers={"Authorization": "Token not-a-key"})  # fmt: skip
    assert bad.status_code == 401 and bad.json()["code"] == 401
    assert httpx.get(f"{url}/1/user/{alice}/listens").status_code == 401  # listens stay private
    with httpx.Client(base_url=url, timeout=10) as http:
        r = http.get(f"/1/user/{alice}/playlists/createdfor")
        assert r.status_code == 200
        listed = r.json()["playlists"]
        ext = "https://musicbrainz.org/doc/jspf#playlist"
        weekly = [
            p["playlist"] for p in listed
            if p["playlist"]["extension"][ext]["additional_metadata"]["algorithm_metadata"]["source_patch"]
            == "weekly-exploration"
        ]  # fmt: skip
        assert len(weekly) == 1 and weekly[0]["track"] == []
        assert weekly[0]["extension"][ext]["created_for"] == alice
        mbid = weekly[0]["identifier"].rsplit("/", 1)[-1]
        assert str(uuid.UUID(mbid)) == mbid
        again = http.get(f"/1/user/{alice}/playlists/createdfor").json()
        assert again["playlists"][0]["playlist"]["identifier"] == weekly[0]["identifier"]

        full = http.get(f"/1/playlist/{mbid}").json()["playlist"]
        tracks = full["track"]
        assert len(tracks) == 30
        assert [t["title"] for t in tracks] == world["weekly"]
        for t in tracks:
            assert isinstance(t["identifier"], list) and t["identifier"][0]
            assert t["creator"] and t["album"] and t["duration"] > 0

        # Another listener's key does not see it; an unknown or malformed id is answered so.
        bob = {"Authorization": f"Token {world['keys'][world['bob']]}"}
        assert http.get(f"/1/playlist/{mbid}", headers=bob).status_code == 404
        assert http.get(f"/1/playlist/{uuid.uuid4()}").status_code == 404
        bad = http.get("/1/playlist/not-a-uuid")
        assert bad.status_code == 400 and bad.json() == {
            "code": 400,
            "error": "Provided playlist ID is invalid.",
        }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "Cannot parse JSON document"),
        ({"listen_type": "single", "payload": {}}, "should be a list of listens"),
        ({"listen_type": "single", "payload": []}, "does not contain any listens"),
        ({"listen_type": "sometimes", "payload": [{}]}, "requires a valid listen_type"),
        ({"listen_type": "single", "payload": [{"track_metadata": {"artist_name": "A", "track_name": "T"}}]},
         "payload[0]: JSON document must contain the key listened_at"),
        ({"listen_type": "import", "payload": [{"listened_at": 1700000000, "track_metadata": {"artist_name": "A", "track_name": "T"}},
                                              {"listened_at": 1700000001, "track_metadata": {"track_name": "T"}}]},
         "payload[1]: JSON document does not contain required field track_metadata.artist_name."),
        ({"listen_type": "single", "payload": [{"listened_at": 1700000000, "track_metadata": {"artist_name": " ", "track_name": "T"}}]},
         "field track_metadata.artist_name is empty"),
        ({"listen_type": "single", "payload": [{"listened_at": 100, "track_metadata": {"artist_name": "A", "track_name": "T"}}]},
         "listened_at is too low"),
        ({"listen_type": "playing_now", "payload": [{"listened_at": 1700000000, "track_metadata": {"artist_name": "A", "track_name": "T"}}]},
         "must not contain listened_at"),
        ({"listen_type": "single", "payload": [{"listened_at": 1700000000, "track_metadata": {
            "artist_name": "A", "track_name": "T", "additional_info": {"recording_mbid": "nope"}}}]},
         "recording_mbid MBID format invalid."),
    ],
)  # fmt: skip
def test_bad_submissions_get_listenbrainz_400s(world, document, message):
    alice = world["alice"]
    body = (
        document if isinstance(document, str) else httpx.Request("POST", "/", json=document).content
    )
    r = httpx.post(f"{world['server'].url}/1/submit-listens", content=body,
                   headers={"Authorization": f"Token {world['keys'][alice]}"})  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400 and message in r.json()["error"]


def test_wrong_token_and_other_listeners_data(world):
    alice, bob, url = world["alice"], world["bob"], world["server"].url
    with pytest.raises(InvalidAuthTokenException):
        ListenBrainz(api_base_url=url).set_auth_token("dc_00000000_wrong")
    wrong = ListenBrainz(api_base_url=url)
    wrong.set_auth_token("dc_00000000_wrong", check_validity=False)
    with pytest.raises(ListenBrainzAPIException) as caught:
        wrong.submit_single_listen(Listen("T", "A", listened_at=int(time.time())))
    assert caught.value.status_code == 401 and "API key" in caught.value.message
    r = httpx.get(
        f"{url}/1/validate-token", headers={"Authorization": f"Token {world['keys'][bob]}"}
    )
    assert r.json() == {"code": 200, "message": "Token valid.", "valid": True, "user_name": bob}

    client = client_for(world, bob)
    for call in (
        lambda: client.get_listens(alice),
        lambda: client.get_user_feedback(alice, score=None, metadata=False),
        lambda: client.get_user_recommendation_recordings(alice),
        lambda: client.get_playing_now(alice),
    ):
        with pytest.raises(ListenBrainzAPIException) as caught:
            call()
        assert caught.value.status_code == 403 and alice in caught.value.message
    r = httpx.get(f"{url}/1/user/{alice}/playlists/createdfor",
                  headers={"Authorization": f"Token {world['keys'][bob]}"})  # fmt: skip
    assert r.status_code == 403 and r.json()["code"] == 403
    bad = httpx.post(f"{url}/1/feedback/recording-feedback", json={"recording_mbid": UNKNOWN_MBID, "score": 2},
                     headers={"Authorization": f"Token {world['keys'][bob]}"})  # fmt: skip
    assert bad.status_code == 400 and "Score can have a value of 1, 0 or -1" in bad.json()["error"]


def test_scrobbles_are_taken_before_anything_is_published(tmp_path):
    """A server set up from nothing (step 2 of docs/self-hosted.md before the first list):
    Navidrome's scrobbles are kept, and read back, though nothing is published yet."""
    store = tmp_path / "fresh.duckdb"
    cli(store, "init")
    out = cli(store, "keys", "create", "--user", "alice").output
    key = next(line for line in out.splitlines() if line.startswith("dc_"))
    server = Server(store).start()
    try:
        client = ListenBrainz(api_base_url=server.url)
        client.set_auth_token(key)
        at = int(time.time()) - 60
        client.submit_single_listen(Listen("Deep Water Song", "Nobody Yet", listened_at=at,
                                           additional_info={"duration_ms": 215_000}))  # fmt: skip
        [back] = client.get_listens("alice")
        assert (back.listened_at, back.track_name, back.artist_name) == (
            at,
            "Deep Water Song",
            "Nobody Yet",
        )
        r = httpx.get(f"{server.url}/1/user/alice/playlists/createdfor",
                      headers={"Authorization": f"Token {key}"})  # fmt: skip
        assert r.status_code == 503 and "publish" in r.json()["error"]
    finally:
        server.stop()


def test_requests_as_navidrome_sends_them(world):
    """Navidrome's ListenBrainz agent: a GET validate-token with a `{}` body, then playing_now
    and single listens with `tracknumber`, `track_mbid` and `artist_mbids` in additional_info,
    to `ListenBrainz.BaseURL` + the endpoint."""
    bob, key = world["bob"], world["keys"][world["bob"]]
    base = world["server"].url + "/1/"
    headers = {"Authorization": f"Token {key}"}
    with httpx.Client(timeout=10) as http:
        r = http.request("GET", base + "validate-token", content=b"{}", headers=headers)
        assert r.json() == {"code": 200, "message": "Token valid.", "valid": True, "user_name": bob}
        _, name, artist, _ = world["known"][3]
        info = {"tracknumber": 3, "track_mbid": str(uuid.uuid4()), "artist_mbids": [""]}
        meta = {
            "artist_name": artist,
            "track_name": name,
            "release_name": "X",
            "additional_info": info,
        }
        for listen_type, listen in (
            ("playing_now", {"track_metadata": meta}),
            ("single", {"listened_at": int(time.time()) - 5, "track_metadata": meta}),
        ):
            r = http.post(base + "submit-listens", headers=headers,
                          content=json.dumps({"listen_type": listen_type, "payload": [listen]}))  # fmt: skip
            assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
        listens = http.get(base + f"user/{bob}/listens", headers=headers).json()["payload"]
        assert (
            listens["count"] == 1 and listens["listens"][0]["track_metadata"]["track_name"] == name
        )
        assert "artist_mbids" not in listens["listens"][0]["track_metadata"]["additional_info"]
