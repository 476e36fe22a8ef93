"""The live service through HTTP: every route, keys, bad input, the learn loop.

One small simulated world is built and published with the real pipeline once per module;
tests that write get their own copy.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from deepcuts.serving.config import ServeConfig
from deepcuts.serving.main import create_app
from deepcuts.serving.pages import similar_items
from deepcuts.snapshots.published import SnapshotReader
from deepcuts.snapshots.versions import snapshot_root
from deepcuts.store import Store
from deepcuts.store.live import LiveLog, live_log_path
from tests.serving_helpers import build_world, cli, copy_world


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    build_world(root)
    return root


@pytest.fixture
def store(built, tmp_path):
    return copy_world(built, tmp_path)


def listeners(store, n=3):
    with Store(store, read_only=True) as s:
        return [r[0] for r in s.conn.execute(
            "SELECT DISTINCT user_id FROM weekly_lists ORDER BY user_id LIMIT ?", [n]).fetchall()]  # fmt: skip


def client(store, **config) -> TestClient:
    return TestClient(create_app(ServeConfig(store, **config)))


def key_for(store, *args) -> dict[str, str]:
    key = cli(store, "keys", "create", *args).stdout.strip().splitlines()[-1]
    return {"Authorization": f"Bearer {key}"}


def test_home_page_has_titled_shelves_and_logs_every_card_with_its_propensity(store):
    user = listeners(store, 1)[0]
    api = client(store)
    auth = key_for(store, "--user", user)
    r = api.get(f"/v1/users/{user}/home", params={"hour": 7, "weekday": 2, "device": "ios", "country": "se"},
                headers=auth)  # fmt: skip
    assert r.status_code == 200, r.text
    page = r.json()
    context = page["context"]
    assert (context["hour"], context["weekday"], context["device"], context["country"]) == (
        7,
        2,
        "ios",
        "SE",
    )
    assert context["has_user_vector"]
    assert 1 <= len(page["shelves"]) <= 4 and page["policy"]["policy_id"] == "epsilon-greedy"
    ids = [c["impression_id"] for s in page["shelves"] for c in s["cards"]]
    assert len(set(ids)) == len(ids) > 0
    for shelf in page["shelves"]:
        assert shelf["title"] and 0 < shelf["shelf_propensity"] <= 1
        for card in shelf["cards"]:
            assert (
                card["name"]
                and 0 < card["propensity"] <= card["card_propensity"] + 1e-12 <= 1 + 1e-12
            )
    logged = LiveLog(live_log_path(store)).waiting_impressions()
    assert {row["impression_id"] for _, row in logged} == set(ids)
    assert all(row["policy_id"] == "epsilon-greedy" and row["propensity"] > 0 for _, row in logged)


def test_weekly_as_json_and_as_each_playlist_format(store):
    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    data = api.get(f"/v1/users/{user}/weekly").json()
    assert data["week"] == "2026-W44" and len(data["tracks"]) == 30
    assert all(t["reason"] for t in data["tracks"])
    items = [t["item_id"] for t in data["tracks"]]
    assert (
        api.get(f"/v1/users/{user}/weekly", params={"week": "2026-W44"}).json()["tracks"]
        == data["tracks"]
    )
    jspf = api.get(f"/v1/users/{user}/weekly", params={"format": "jspf"})
    assert jspf.headers["content-type"].startswith("application/jspf+json")
    assert len(json.loads(jspf.text)["playlist"]["track"]) == 30
    xspf = api.get(f"/v1/users/{user}/weekly", headers={"Accept": "application/xspf+xml"})
    tracks = ET.fromstring(xspf.text).findall(".//{http://xspf.org/ns/0/}track")
    assert xspf.headers["content-type"].startswith("application/xspf+xml") and len(tracks) == 30
    m3u = api.get(f"/v1/users/{user}/weekly", headers={"Accept": "audio/x-mpegurl"}).text
    entries = [line for line in m3u.splitlines() if line and not line.startswith("#")]
    assert m3u.startswith("#EXTM3U") and len(entries) == 30 and items[0] in entries[0]


def test_similar_radio_and_search(store):
    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    track = api.get(f"/v1/users/{user}/weekly").json()["tracks"][0]["item_id"]
    similar = api.get(f"/v1/tracks/{track}/similar", params={"n": 7}).json()["items"]
    assert len(similar) == 7 and track not in [i["item_id"] for i in similar]
    scores = [i["score"] for i in similar]
    assert scores == sorted(scores, reverse=True)
    seed_artist = api.get(f"/v1/tracks/{track}/similar", params={"n": 1}).json()["items"][0]
    radio = api.get("/v1/radio", params={"track": track, "n": 20}).json()
    by_artist = Counter(i["artist_id"] for i in radio["items"])
    assert (
        len(radio["items"]) == 20
        and max(by_artist.values()) <= 2
        and radio["title"].endswith("radio")
    )
    artist = seed_artist["artist_id"]
    from_artist = api.get("/v1/radio", params={"artist": artist, "n": 10}).json()["items"]
    assert from_artist and artist not in {i["artist_id"] for i in from_artist}
    genre = api.get(
        f"/v1/users/{user}/home"
    ).json()  # any page: search by a word the catalogue uses
    assert genre["shelves"]
    hits = api.get("/v1/search", params={"q": "rock guitar", "n": 5}).json()["items"]
    assert 0 < len(hits) <= 5 and all(h["score"] > 0 for h in hits)
    only_artists = api.get("/v1/search", params={"q": "rock", "kind": "artist"}).json()["items"]
    assert all(h["kind"] == "artist" for h in only_artists)


def test_a_large_catalogue_is_published_with_a_nearest_neighbour_index_that_similar_uses(store):
    """`publish --index-above N` puts a Voyager index of the item vectors in the snapshot when
    more than N items have one; similar and radio then answer from it, as exact search did."""
    from deepcuts.snapshots.published import Published
    from deepcuts.snapshots.versions import read_manifest

    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    tracks = [t["item_id"] for t in api.get(f"/v1/users/{user}/weekly").json()["tracks"][:20]]

    def answers(api):
        similar = [[i["item_id"] for i in api.get(f"/v1/tracks/{t}/similar", params={"n": 10}).json()["items"]]
                   for t in tracks]  # fmt: skip
        radio = api.get("/v1/radio", params={"track": tracks[0], "n": 20}).json()["items"]
        return similar, radio

    exact, _ = answers(api)
    root = snapshot_root(store)
    assert "item_ann" not in read_manifest(root).parts  # 600 tracks: exact search
    assert Published.load(root).similar_search == "exact"
    cli(store, "publish", "--index-above", 0)
    assert "item_ann" in read_manifest(root).parts
    assert Published.load(root).similar_search == "voyager"
    found, radio = answers(client(store, no_auth=True))
    overlap = [len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)]
    assert min(len(f) for f in found) == 10 and all(
        t not in f for t, f in zip(tracks, found, strict=True)
    )
    assert sum(overlap) / len(overlap) >= 0.9, overlap
    seed_artist = next(a["artist"] for a in api.get(f"/v1/users/{user}/weekly").json()["tracks"])
    by_artist = Counter(i["artist"] for i in radio)
    assert len(radio) == 20 and max(by_artist.values()) <= 2 and seed_artist not in by_artist


def test_events_are_accepted_once_and_listed_newest_first(store):
    user = listeners(store, 1)[0]
    api = client(store)
    auth = key_for(store, "--user", user)
    track = api.get(f"/v1/users/{user}/weekly", headers=auth).json()["tracks"][0]["item_id"]
    t0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
    batch = [
        {"event_id": f"e{k}", "user_id": user, "type": kind, "item_id": track,
         "at": (t0 + timedelta(minutes=k)).isoformat(), "ms_played": ms}
        for k, (kind, ms) in enumerate([("play", 45_000), ("skip", 3_000), ("save", None), ("click", None)])
    ]  # fmt: skip
    r = api.post("/v1/events", json={"events": batch}, headers=auth)
    assert r.status_code == 202 and r.json() == {"accepted": 4, "duplicates": 0}
    again = api.post("/v1/events", json={"events": batch[:2]}, headers=auth)
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 2}
    listed = api.get(f"/v1/users/{user}/events", headers=auth).json()["events"]
    assert [e["event_id"] for e in listed] == ["e3", "e2", "e1", "e0"]
    assert not any(e["absorbed"] for e in listed)
    page = api.get(f"/v1/users/{user}/events", params={"limit": 2, "before": (t0 + timedelta(minutes=2)).isoformat()},
                   headers=auth).json()["events"]  # fmt: skip
    assert [e["event_id"] for e in page] == ["e1", "e0"]
    # The learn job absorbs them into the store: plays and skips as listens, saves as actions.
    cli(store, "learn")
    with Store(store, read_only=True) as s:
        listens = s.conn.execute("SELECT ms_played, skipped FROM listens WHERE user_id = ? AND source = 'api' "
                                 "ORDER BY played_at", [user]).fetchall()  # fmt: skip
        saves = s.conn.execute("SELECT count(*) FROM actions WHERE user_id = ? AND action = 'save' AND source = 'api'",
                               [user]).fetchall()[0][0]  # fmt: skip
    assert listens == [(45_000, False), (3_000, True)] and saves == 1
    assert all(
        e["absorbed"] for e in api.get(f"/v1/users/{user}/events", headers=auth).json()["events"]
    )
    cli(store, "learn")  # absorbing again changes nothing
    with Store(store, read_only=True) as s:
        assert (
            s.conn.execute(
                "SELECT count(*) FROM listens WHERE user_id = ? AND source = 'api'", [user]
            ).fetchall()[0][0]
            == 2
        )


def test_keys_decide_who_reads_and_writes_what(store):
    alice, bob = listeners(store, 2)
    api = client(store)
    mine, admin = key_for(store, "--user", alice), key_for(store, "--admin")
    assert api.get(f"/v1/users/{alice}/home").status_code == 401
    assert (
        api.get(f"/v1/users/{alice}/home", headers={"Authorization": "Bearer dc_nope"}).status_code
        == 401
    )
    assert api.get(f"/v1/users/{alice}/weekly", headers=mine).status_code == 200
    denied = api.get(f"/v1/users/{bob}/weekly", headers=mine)
    assert denied.status_code == 403 and bob in denied.json()["detail"]
    assert api.get(f"/v1/users/{bob}/weekly", headers=admin).status_code == 200
    track = api.get(f"/v1/users/{alice}/weekly", headers=mine).json()["tracks"][0]["item_id"]
    post = {"events": [{"event_id": "x", "user_id": bob, "type": "save", "item_id": track}]}
    assert api.post("/v1/events", json=post, headers=mine).status_code == 403
    assert api.post("/v1/events", json=post, headers=admin).status_code == 202
    listed = cli(store, "keys", "list").stdout
    key_id = [line.split()[0] for line in listed.splitlines() if alice in line][0]
    cli(store, "keys", "revoke", key_id)
    assert api.get(f"/v1/users/{alice}/weekly", headers=mine).status_code == 401
    secret = mine["Authorization"].split()[1]
    assert secret.encode() not in live_log_path(store).read_bytes()  # only its hash is kept


def test_bad_input_names_the_field_and_the_problem(store):
    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    track = api.get(f"/v1/users/{user}/weekly").json()["tracks"][0]["item_id"]
    cases = [
        (api.get("/v1/users/nobody/home"), 404, "nobody"),
        (api.get("/v1/tracks/no-such-track/similar"), 404, "no-such-track"),
        (api.get(f"/v1/users/{user}/weekly", params={"week": "2026-W60"}), 422, "week"),
        (api.get(f"/v1/users/{user}/weekly", params={"week": "2019-W01"}), 404, "2019-W01"),
        (api.get(f"/v1/users/{user}/home", params={"hour": 25}), 422, "hour"),
        (api.get(f"/v1/users/{user}/home", params={"country": "Sweden"}), 422, "country"),
        (api.get("/v1/radio", params={"track": track, "artist": "a1"}), 422, "exactly one"),
        (api.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"}), 422, "json_invalid"),
        (api.post("/v1/events", json={"events": [{"event_id": "1", "user_id": user, "type": "play", "item_id": track}]}),
         422, "ms_played"),
        (api.post("/v1/events", json={"events": [{"event_id": "1", "user_id": user, "type": "dance", "item_id": track}]}),
         422, "dance"),
        (api.post("/v1/events", json={"events": [{"event_id": "1", "user_id": user, "type": "save", "item_id": "zzz"}]}),
         404, "events[0].item_id"),
        (api.post("/v1/events", json={"events": [{"event_id": str(k), "user_id": user, "type": "save", "item_id": track}
                                                 for k in range(1001)]}), 413, "1000"),
    ]  # fmt: skip
    for response, status, words in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert words in json.dumps(response.json()), (response.request.url, response.text)
    assert LiveLog(live_log_path(store)).count_waiting()["events"] == 0  # nothing refused was kept


def test_health_and_metrics(store):
    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    for _ in range(3):
        api.get(f"/v1/users/{user}/home")
    assert api.get("/openapi.json").status_code == 200
    assert api.get("/no/such/page").status_code == 404
    assert api.get("/healthz").json()["status"] == "ok"
    text = api.get("/metrics").text
    assert (
        'deepcuts_http_requests_total{method="GET",route="/v1/users/{user}/home",status="200"}'
        in text
    )
    # Starlette's own routes by their path too; what matched nothing never by its URL
    assert 'deepcuts_http_requests_total{method="GET",route="/openapi.json",status="200"}' in text
    assert 'deepcuts_http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert "/no/such/page" not in text
    assert "deepcuts_http_request_seconds_bucket" in text and "deepcuts_snapshot_version" in text
    assert 'deepcuts_waiting{kind="impressions"}' in text


def test_playing_one_shelfs_cards_moves_that_shelf_up_after_learning(store):
    """BaRT's loop through the API: pages served, the listener streams the cards of one shelf
    kind and skips the rest, the learn job runs, and the next pages rank that kind higher."""
    user = listeners(store, 3)[2]
    api = client(store, policy="greedy", shelves=30, cards=5)
    api.app.state.snapshots.check_every = 0.0  # see the learn job's version at once, not within 1 s
    auth = key_for(store, "--user", user)

    def ranks(n=1):
        pages = [
            api.get(f"/v1/users/{user}/home", params={"hour": 18}, headers=auth).json()
            for _ in range(n)
        ]
        return pages, [[s["shelf_type"] for s in p["shelves"]] for p in pages]

    (first,), (before,) = ranks()
    target = [t for t in before[len(before) // 2 :] if before.count(t) == 1][0]  # a low shelf kind
    events, k = [], 0
    for _ in range(5):
        (page,), _ = ranks()
        for shelf in page["shelves"]:
            for card in shelf["cards"]:
                k += 1
                liked = shelf["shelf_type"] == target
                events.append({"event_id": f"p{k}", "user_id": user, "type": "play" if liked else "skip",
                               "item_id": card["item_id"], "impression_id": card["impression_id"],
                               "ms_played": 120_000 if liked else 4_000})  # fmt: skip
    assert api.post("/v1/events", json={"events": events}, headers=auth).status_code == 202
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    learnt = json.loads(cli(store, "learn", "--at", later, "--json").stdout)
    assert learnt["streamed"] >= 5 and learnt["learned"] > 0 and learnt["published_version"]
    registered = json.loads(cli(store, "models", "--kind", "home-reward", "--json").stdout)
    assert [r["model_id"] for r in registered] == [learnt["model_id"]] and registered[0][
        "data_until"
    ]
    (after_page,), (after,) = ranks()
    assert after_page["snapshot_version"] == learnt["published_version"]
    assert after.index(target) < before.index(target), (target, before, after)


def test_prefetched_history_answers_as_the_per_listener_queries_do(store):
    """Publishing reads every listener's history set-wise; a page reads one listener's: same answers."""
    from deepcuts.signals.history import ListenerHistory

    with Store(store, read_only=True) as s:
        users = [
            r[0] for r in s.conn.execute("SELECT user_id FROM users ORDER BY user_id").fetchall()
        ]
        now = s.conn.execute("SELECT max(played_at) FROM listens").fetchall()[0][0] - timedelta(
            days=3
        )
        one, everyone = ListenerHistory(s, now), ListenerHistory(s, now).prefetch()
        compared = 0
        for user in users:
            assert one.latest_plays(user, 5) == everyone.latest_plays(user, 5)
            assert one.streamed_lately(user, 14, 20) == everyone.streamed_lately(user, 14, 20)
            assert one.weekly_list(user) == everyone.weekly_list(user)
            assert one.usual_device(user) == everyone.usual_device(user)
            assert one.home_country(user) == everyone.home_country(user)
            compared += bool(one.streamed_lately(user, 14, 20)) and bool(one.weekly_list(user))
    assert compared > 50


def test_playlist_continuation_from_a_stored_playlist_and_from_a_title(store):
    api = client(store, no_auth=True)
    with Store(store, read_only=True) as s:
        pid, name = s.conn.execute(
            "SELECT p.playlist_id, p.name FROM playlists p JOIN playlist_items i USING (playlist_id) "
            "GROUP BY 1, 2 HAVING count(*) >= 5 ORDER BY 1 LIMIT 1").fetchall()[0]  # fmt: skip
        tracks = [r[0] for r in s.conn.execute(
            "SELECT item_id FROM playlist_items WHERE playlist_id = ? ORDER BY position", [pid]).fetchall()]  # fmt: skip
    got = api.get(f"/v1/playlists/{pid}/continuation", params={"n": 20}).json()["suggestions"]
    assert len(got) == 20 and not {x["item_id"] for x in got} & set(tracks)
    assert all(x["reason"] for x in got) and [x["position"] for x in got] == list(range(20))
    draft = api.post("/v1/continuation", json={"title": name, "n": 10}).json()["suggestions"]
    assert len(draft) == 10 and any("named like this one" in x["reason"] for x in draft)
    both = api.post("/v1/continuation", json={"title": name, "tracks": tracks[:3], "n": 10}).json()[
        "suggestions"
    ]
    assert not {x["item_id"] for x in both} & set(tracks[:3])
    assert "nope" in api.post("/v1/continuation", json={"tracks": ["nope"]}).json()["detail"]
    assert api.post("/v1/continuation", json={}).status_code == 422
    assert api.get("/v1/playlists/nope/continuation").status_code == 404


def test_tracks_nobody_played_are_served_through_their_predicted_vectors(store):
    """A track with no plays has no CF vector; the published one is predicted from its text and
    audio by the content model, so "similar" and radio reach it from week one."""
    with Store(store, read_only=True) as s:
        cold = [r[0] for r in s.conn.execute(
            "SELECT track_id FROM tracks t WHERE NOT EXISTS (SELECT 1 FROM listens l WHERE l.item_id = t.track_id) "
            "ORDER BY 1 LIMIT 5").fetchall()]  # fmt: skip
    assert cold
    api = client(store, no_auth=True)
    for track in cold:
        similar = api.get(f"/v1/tracks/{track}/similar", params={"n": 5})
        assert similar.status_code == 200 and len(similar.json()["items"]) == 5, similar.text
        assert api.get("/v1/radio", params={"track": track, "n": 5}).status_code == 200


def test_concurrent_pages_with_unseen_contexts_all_succeed(store):
    """Threads serving pages at once, with devices and countries the models never saw."""
    from concurrent.futures import ThreadPoolExecutor

    users = listeners(store, 3)
    api = client(store, no_auth=True)

    def visit(k: int) -> int:
        params = {
            "device": f"device{k % 7}",
            "country": ["SE", "BR", "JP", "NG"][k % 4],
            "hour": k % 24,
        }
        return api.get(f"/v1/users/{users[k % 3]}/home", params=params).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(visit, range(80)))
    assert statuses == [200] * 80


def test_a_serving_worker_keeps_the_garbage_collector_off_the_snapshot(store, monkeypatch):
    """`deepcuts serve`'s workers collect young objects less often (`GC_THRESHOLDS`), and the
    listeners' shelf rows are tuples the collector stops tracking: a full collection, when one
    comes, does not walk them again."""
    import gc

    from deepcuts.serving.main import GC_THRESHOLDS, served_app

    for name, value in ServeConfig(store, no_auth=True).to_env().items():
        monkeypatch.setenv(name, value)
    before = gc.get_threshold()
    try:
        app = served_app()
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
    published = app.state.snapshots.current()
    for _ in range(3):  # a tuple is untracked once the tuples inside it are: one level a pass
        gc.collect()
    rows = [r for r in published._shelf_rows if r is not None]
    assert rows and not any(gc.is_tracked(r) for r in rows)


def test_a_page_joined_from_parts_is_valid_json_whatever_the_names(store):
    """The home body is joined from pre-encoded parts: names with quotes, backslashes, line
    breaks, accents and emoji (in card names and in the shelf titles made from them) come back
    exactly as the store has them."""
    from deepcuts.serving.schemas.responses import HomeOut

    odd = 'Say "hi" \\ to\n Café 🎵 '
    with Store(store) as s:
        s.conn.execute("UPDATE tracks SET name = ? || track_id", [odd])
        s.conn.execute("UPDATE artists SET name = ? || artist_id", [odd])
        names = dict(s.conn.execute("SELECT track_id, name FROM tracks").fetchall())
    cli(store, "publish")
    api = client(store, no_auth=True)
    titles = []
    for user in listeners(store, 3):
        r = api.get(f"/v1/users/{user}/home")
        assert r.status_code == 200
        page = json.loads(r.content.decode("utf-8"))
        assert HomeOut.model_validate(page).model_dump(mode="json") == page
        cards = [c for shelf in page["shelves"] for c in shelf["cards"]]
        assert cards and all(
            c["name"] == names[c["item_id"]] for c in cards if c["kind"] == "track"
        )
        assert all(c["artist"].startswith(odd) for c in cards if c["artist"] is not None)
        titles += [shelf["title"] for shelf in page["shelves"]]
    assert any(odd in title for title in titles), titles


def test_bodies_written_once_are_exactly_their_response_models(store):
    """Home, weekly and the item lists write their JSON once instead of having FastAPI
    validate and convert it again: the body must be what the response model would have made
    of it, the page's logged propensities must be the ones it shows, an item list must hold
    the snapshot's description of each item, and a rendered weekly list (kept per version) is
    kept per listener and never skips the key check."""
    from deepcuts.serving.schemas.responses import HomeOut, ItemsOut, WeeklyOut

    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    r = api.get(f"/v1/users/{user}/home", params={"device": "web"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    page = r.json()
    assert HomeOut.model_validate(page).model_dump(mode="json") == page
    logged = {
        row["impression_id"]: row for _, row in LiveLog(live_log_path(store)).waiting_impressions()
    }
    for shelf in page["shelves"]:
        for card in shelf["cards"]:
            row = logged[card["impression_id"]]
            assert (row["propensity"], row["card_propensity"], row["shelf_propensity"]) == (
                card["propensity"], card["card_propensity"], shelf["shelf_propensity"])  # fmt: skip
    first = api.get(f"/v1/users/{user}/weekly")
    assert first.headers["content-type"] == "application/json"
    weekly = first.json()
    assert WeeklyOut.model_validate(weekly).model_dump(mode="json") == weekly
    assert api.get(f"/v1/users/{user}/weekly").content == first.content
    other = listeners(store, 2)[1]
    assert api.get(f"/v1/users/{other}/weekly").json()["user_id"] == other  # keyed per listener
    # another caller's key is refused even where the list is already rendered
    auth = key_for(store, "--user", other)
    keyed = client(store)
    assert keyed.get(f"/v1/users/{user}/weekly", headers=auth).status_code == 403
    assert keyed.get(f"/v1/users/{other}/weekly", headers=auth).json() == api.get(
        f"/v1/users/{other}/weekly").json()  # fmt: skip
    track = weekly["tracks"][0]["item_id"]
    published = SnapshotReader(snapshot_root(store)).current()
    for path, params in (
        (f"/v1/tracks/{track}/similar", {"n": 8}),
        ("/v1/radio", {"track": track, "n": 12}),
        ("/v1/search", {"q": "rock guitar", "n": 5}),
    ):
        r = api.get(path, params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", path
        body = r.json()
        assert ItemsOut.model_validate(body).model_dump(mode="json") == body, path
        assert body["items"], path
        for item in body["items"]:
            described = published.describe_item(published.item_index[item["item_id"]])
            assert {k: item[k] for k in described} == described, path
            assert isinstance(item["score"], float) and item["score"] == round(item["score"], 6)
    similar = api.get(f"/v1/tracks/{track}/similar", params={"n": 8}).json()["items"]
    exact = similar_items(published, track, 8)  # the same neighbours and cosines, rounded
    assert [(i["item_id"], i["score"]) for i in similar] == [
        (published.describe_item(j)["item_id"], round(s, 6)) for j, s in exact
    ]


def test_the_operator_report_counts_every_card_served_and_the_streams_that_answered_them(store):
    """The operator page's figures through HTTP (the browser test drives the same page):
    every card of every served page counts as shown, and a card is streamed when its track is
    played for 30 s or more within the hour after it was shown (as the learn job joins them),
    not when it is played for less."""
    user = listeners(store, 1)[0]
    api = client(store, no_auth=True)
    pages = [api.get(f"/v1/users/{user}/home").json() for _ in range(3)]
    cards = [c for p in pages for s in p["shelves"] for c in s["cards"]]
    served = datetime.fromisoformat(pages[-1]["served_at"]).replace(tzinfo=UTC)
    plays = [
        {"event_id": f"r{k}", "user_id": user, "type": "play", "item_id": card["item_id"],
         "impression_id": card["impression_id"], "at": (served + timedelta(minutes=1)).isoformat(),
         "ms_played": ms}
        for k, (card, ms) in enumerate([(cards[-1], 45_000), (cards[-2], 5_000)])
    ]  # fmt: skip
    assert api.post("/v1/events", json={"events": plays}).status_code == 202
    r = api.get("/admin/report", params={"at": (served + timedelta(hours=2)).isoformat()})
    assert r.status_code == 200, r.text
    assert f'id="n-impressions">{len(cards)}</span>' in r.text
    streamed = sum(card["item_id"] == cards[-1]["item_id"] for card in cards)
    assert cards[-2]["item_id"] != cards[-1]["item_id"]  # two cards of one shelf
    assert f'<span class="num">{streamed}</span><span>streams (30 s or more) of {len(cards)} decided, 0 pending' in r.text  # fmt: skip
    assert r.text.count("<svg") == 3
