"""The web pages in a real browser: Debian's chromium, headless, driven by selenium through
chromium-driver, against a real `deepcuts serve` process.

A listener signs in with a key, sees shelves, plays cards, the learn job runs, and reloading
shows the played shelf higher; Discover Weekly's three downloads are parsed; similar and search;
the operator page's plots and estimates; layouts at 360 px and 1440 px; keyboard reach.
Screenshots go to $DEEPCUTS_SCREENSHOTS (the README's are made that way) or pytest's tmp dir.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from deepcuts.store import Store
from tests.serving_helpers import Server, build_world, cli, copy_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    raise RuntimeError(
        "tests/test_web.py needs Debian's chromium and chromium-driver: "
        "apt-get install -y chromium chromium-driver (.ci/run installs them)"
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    store = build_world(root, users=60, tracks=300, seed=5)
    with Store(store, read_only=True) as s:
        user = s.conn.execute("SELECT min(user_id) FROM weekly_lists").fetchall()[0][0]
    key = cli(store, "keys", "create", "--user", user).stdout.strip().splitlines()[-1]
    admin = cli(store, "keys", "create", "--admin").stdout.strip().splitlines()[-1]
    server = Server(store).start()
    yield {"store": store, "user": user, "key": key, "admin": admin, "server": server}
    server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("DEEPCUTS_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,900", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})  # fmt: skip
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 20, what: str = "the page"):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(
            f"timed out waiting for {what}; status: "
            + str(driver.execute_script("return document.querySelector('#status')?.textContent"))
        ) from None


def viewport(driver, width: int, height: int = 900) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                           "deviceScaleFactor": 1, "mobile": width < 600})  # fmt: skip


def screenshot(driver, path: Path, width: int) -> None:
    """The whole page at ``width`` px (the viewport stretched to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    viewport(driver, width, min(int(height), 4000))
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    viewport(driver, width)


def no_horizontal_overflow(driver) -> None:
    sizes = driver.execute_script(
        "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];"
    )
    assert sizes[0] <= sizes[1], f"the page is {sizes[0]} px wide in a {sizes[1]} px viewport"


def shelf_types(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#shelves .shelf')].map(s => s.dataset.shelfType)"
    )


def sign_in(driver, server: Server, key: str) -> None:
    driver.get(server.url + "/")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    driver.get(server.url + "/")
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(driver, lambda d: len(shelf_types(d)) == 4, what="four shelves")


def reload_home(driver) -> list[str]:
    driver.execute_script("document.querySelector('#shelves').replaceChildren()")
    driver.find_element(By.ID, "reload-home").click()
    wait(driver, lambda d: len(shelf_types(d)) == 4, what="four shelves")
    return shelf_types(driver)


def play_shelf(driver, kind: str, seconds: int = 45) -> int:
    """Play every card of the shelf of ``kind`` for ``seconds``; returns how many."""
    cards = driver.find_elements(
        By.CSS_SELECTOR, f'#shelves .shelf[data-shelf-type="{kind}"] .card'
    )
    for card in cards:
        secs = card.find_element(By.CSS_SELECTOR, "input.secs")
        secs.clear()
        secs.send_keys(str(seconds))
        card.find_element(By.CSS_SELECTOR, "button.play").click()
    for card in cards:
        wait(driver, lambda _d, c=card: c.find_element(By.CSS_SELECTOR, ".done").text
             == f"played {seconds} s", what="the play to be accepted")  # fmt: skip
    return len(cards)


def shelf_propensities(driver) -> list[tuple[str, float]]:
    """Each shelf's kind and the probability that the policy put it in its place."""
    return [(t, float(p)) for t, p in driver.execute_script(
        "return [...document.querySelectorAll('#shelves .shelf')]"
        ".map(s => [s.dataset.shelfType, s.dataset.propensity])")]  # fmt: skip


def rank(types: list[str], kind: str) -> int:
    return types.index(kind) if kind in types else len(types)


def test_a_listener_plays_a_shelf_and_after_learning_it_moves_up(world, browser, shots):
    """Sign in with a key, see shelves, play the cards of a low shelf on a few visits, run the
    learn job, reload: that shelf kind sits higher (the service explores with epsilon 0.1, so
    positions are averaged over visits). Then the operator page shows the plays."""
    server, user = world["server"], world["user"]
    viewport(browser, 1440)
    sign_in(browser, server, world["key"])
    # The shelf to play: one the model chose (a propensity over one half: not one exploration
    # put in, which later pages seldom show) in a middle place, with room to move up and not
    # pushed off when exploration inserts a shelf above it. Pages until one has such a shelf.
    types, target, cards = [], None, 0
    for page in range(5):
        types = shelf_types(browser) if page == 0 else reload_home(browser)
        cards += len(browser.find_elements(By.CSS_SELECTOR, "#shelves .card"))
        chosen = [t for j, (t, p) in enumerate(shelf_propensities(browser))
                  if 0 < j < len(types) - 1 and p > 0.5 and rank(types, t) == j]  # fmt: skip
        if chosen:
            target = chosen[-1]
            break
    assert target is not None, "none of 5 pages had a middle shelf the model chose"
    before, played, pages_played = [rank(types, target)], 0, 0
    played += play_shelf(browser, target)
    pages_played += 1
    # More visits (up to 10 in all) until it has been played on three pages: on two (10 plays)
    # the first learning step from an untrained model moved the others about as far.
    for _visit in range(9):
        if pages_played >= 3 and played >= 10:
            break
        types = reload_home(browser)
        cards += len(browser.find_elements(By.CSS_SELECTOR, "#shelves .card"))
        before.append(rank(types, target))
        if target in types:
            played += play_shelf(browser, target)
            pages_played += 1
    assert pages_played >= 3 and played >= 10, (target, before, played)
    screenshot(browser, shots / "listener.png", 1440)
    events = httpx.get(f"{server.url}/v1/users/{user}/events", params={"limit": 100},
                       headers={"Authorization": f"Bearer {world['key']}"}).json()["events"]  # fmt: skip
    plays = [e for e in events if e["type"] == "play"]
    assert len(plays) == played and all(
        e["impression_id"] and e["ms_played"] == 45_000 for e in plays
    )

    version = httpx.get(server.url + "/healthz").json()["snapshot_version"]
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    learnt = json.loads(cli(world["store"], "learn", "--at", later, "--json").stdout)
    assert learnt["streamed"] >= played and learnt["published_version"] > version
    wait(browser, lambda _d: httpx.get(server.url + "/healthz").json()["snapshot_version"]
         == learnt["published_version"], what="the server to serve the learnt version")  # fmt: skip

    browser.refresh()  # the key is kept in sessionStorage: straight back in
    wait(browser, lambda d: len(shelf_types(d)) == 4, what="four shelves after the reload")
    after = []
    for visit in range(4):
        after.append(rank(shelf_types(browser) if visit == 0 else reload_home(browser), target))
        cards += len(browser.find_elements(By.CSS_SELECTOR, "#shelves .card"))
    assert np.mean(after) < np.mean(before), (target, before, after)

    report = server.url + "/admin/report"
    assert httpx.get(report).status_code == 401
    listener = {"Authorization": f"Bearer {world['key']}"}
    assert httpx.get(report, headers=listener).status_code == 403  # a listener's key is not enough
    # As of the learn job's time: every card's hour has passed, so every reward is decided.
    browser.get(server.url + "/admin?at=" + later.replace("+", "%2B"))
    browser.find_element(By.ID, "api-key").send_keys(world["admin"])
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report figure.plot svg")) == 3,
         what="three plots")  # fmt: skip
    shown = int(browser.find_element(By.ID, "n-impressions").text)
    assert shown == cards  # every card of every page this listener saw
    assert browser.find_element(By.ID, "n-waiting").text == "0"  # the learn job took them all
    kinds = {
        r.find_element(By.TAG_NAME, "th").text: r.find_elements(By.TAG_NAME, "td")
        for r in browser.find_elements(By.CSS_SELECTOR, "#kinds tbody tr")
    }
    assert int(kinds[target][2].text) >= played  # streams of the played kind
    for svg in browser.find_elements(By.CSS_SELECTOR, "#report figure.plot svg"):
        assert svg.size["width"] > 200 and svg.size["height"] > 60
    assert target in browser.find_element(By.ID, "plot-stream-rate").text
    ope = {
        r.find_element(By.TAG_NAME, "th").text: r.text
        for r in browser.find_elements(By.CSS_SELECTOR, "#ope tbody tr")
    }
    assert set(ope) == {"greedy", "epsilon-greedy", "uniform"}
    assert all(row.count("[") == 3 for row in ope.values()), ope  # IPS, SNIPS, DR [low, high]
    snapshots = browser.find_elements(By.CSS_SELECTOR, "#snapshots tbody tr")
    assert len(snapshots) == 2 and "(served)" in snapshots[0].text and "learn" in snapshots[0].text
    screenshot(browser, shots / "admin.png", 1440)


def test_weekly_shows_reasons_and_each_download_parses(world, browser, shots, downloads):
    server, user = world["server"], world["user"]
    viewport(browser, 1440)
    sign_in(browser, server, world["key"])
    expected = httpx.get(f"{server.url}/v1/users/{user}/weekly",
                         headers={"Authorization": f"Bearer {world['key']}"}).json()  # fmt: skip
    n = len(expected["tracks"])  # up to 30; a small world has fewer new tracks for some
    assert n >= 15
    browser.find_element(By.CSS_SELECTOR, '.tab[data-view="weekly"]').click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#weekly-list .card")) == n,
         what=f"{n} weekly tracks")  # fmt: skip
    shown = browser.find_elements(By.CSS_SELECTOR, "#weekly-list .card")
    assert [c.get_attribute("data-item-id") for c in shown] == [
        t["item_id"] for t in expected["tracks"]
    ]
    assert [c.find_element(By.CSS_SELECTOR, ".reason").text for c in shown] == [
        t["reason"] for t in expected["tracks"]
    ]
    assert all(t["reason"] for t in expected["tracks"])
    screenshot(browser, shots / "weekly.png", 1440)

    for f in downloads.iterdir():
        f.unlink()
    files = {}
    for fmt in ("jspf", "xspf", "m3u8"):
        browser.find_element(By.CSS_SELECTOR, f'.downloads button[data-format="{fmt}"]').click()
        name = f"discover-weekly-{user}-{expected['week']}.{fmt}"
        wait(browser, lambda _d, n=name: (downloads / n).is_file(), what=f"{name} downloaded")
        files[fmt] = (downloads / name).read_text()
    titles = [t["name"] for t in expected["tracks"]]
    jspf = json.loads(files["jspf"])["playlist"]
    assert [t["title"] for t in jspf["track"]] == titles
    ns = {"x": "http://xspf.org/ns/0/"}
    xspf = ET.fromstring(files["xspf"])
    assert [t.findtext("x:title", namespaces=ns) for t in xspf.findall(".//x:track", ns)] == titles
    lines = files["m3u8"].splitlines()
    assert lines[0] == "#EXTM3U"
    entries = [line for line in lines if line and not line.startswith("#")]
    assert len(entries) == n and expected["tracks"][0]["item_id"] in entries[0]


def test_similar_from_a_card_and_search(world, browser):
    server = world["server"]
    viewport(browser, 1440)
    sign_in(browser, server, world["key"])
    card = browser.find_element(By.CSS_SELECTOR, "#shelves .card")
    name = card.find_element(By.CSS_SELECTOR, ".name").text
    card.find_element(By.CSS_SELECTOR, "button.similar").click()
    wait(browser, lambda d: d.find_element(By.ID, "view-results").is_displayed()
         and len(d.find_elements(By.CSS_SELECTOR, "#results-list .card")) > 0, what="similar tracks")  # fmt: skip
    assert browser.find_element(By.ID, "results-title").text == f"Similar to {name}"
    search = browser.find_element(By.ID, "search-q")
    search.send_keys("rock guitar", Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "results-title").text == "Results for 'rock guitar'",
         what="search results")  # fmt: skip
    assert browser.find_elements(By.CSS_SELECTOR, "#results-list .card")


def test_pages_fit_360_and_1440_px_and_every_button_has_a_label(world, browser, shots):
    server = world["server"]
    sign_in(browser, server, world["key"])
    for width in (360, 1440):
        viewport(browser, width)
        browser.find_element(By.CSS_SELECTOR, '.tab[data-view="home"]').click()
        time.sleep(0.1)
        no_horizontal_overflow(browser)
        cards = browser.find_elements(By.CSS_SELECTOR, "#shelves .card")
        assert all(c.size["width"] <= width for c in cards)
        browser.find_element(By.CSS_SELECTOR, '.tab[data-view="weekly"]').click()
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#weekly-list .card")) >= 15,
             what="the weekly tracks")  # fmt: skip
        no_horizontal_overflow(browser)
        if width == 360:
            screenshot(browser, shots / "weekly-360.png", 360)
            browser.find_element(By.CSS_SELECTOR, '.tab[data-view="home"]').click()
            screenshot(browser, shots / "listener-360.png", 360)
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null"
        " && !(b.getAttribute('aria-label') || b.textContent).trim()).length"
    )
    assert unlabelled == 0
    browser.get(server.url + "/admin")
    browser.execute_script(f"sessionStorage.setItem('deepcuts.admin-key', {world['admin']!r})")
    for width in (360, 1440):
        viewport(browser, width)
        browser.get(server.url + "/admin")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report svg")) == 3,
             what="three plots")  # fmt: skip
        no_horizontal_overflow(browser)
        plots = browser.find_elements(By.CSS_SELECTOR, "#report figure.plot")
        assert all(p.size["width"] <= width for p in plots)
    screenshot(browser, shots / "admin-360.png", 360)


def test_a_keyboard_alone_signs_in_and_plays_a_card(world, browser):
    """Tab to the key field, type, Enter; Tab to the first card's Play button and press Enter:
    the play is posted. Every button on the page is reachable by Tab."""
    server, user = world["server"], world["user"]
    viewport(browser, 1440)
    browser.get(server.url + "/")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get(server.url + "/")
    # Signed out: only the sign-in form (no search box, no sign-out button to reach)
    assert not browser.find_element(By.ID, "search-q").is_displayed()
    assert not browser.find_element(By.ID, "sign-out").is_displayed()
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)

    def focused():
        return browser.switch_to.active_element

    for _ in range(10):
        if focused().get_attribute("id") == "api-key":
            break
        focused().send_keys(Keys.TAB)
    assert focused().get_attribute("id") == "api-key"
    focused().send_keys(world["key"], Keys.ENTER)
    wait(browser, lambda d: len(shelf_types(d)) == 4, what="four shelves")
    visible = browser.execute_script(
        "return [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null).length"
    )
    browser.execute_script("document.querySelector('a.brand').focus()")  # from the top of the page
    reached, play = set(), None
    for _ in range(visible * 3):
        focused().send_keys(Keys.TAB)
        el = focused()
        if el.tag_name == "button":
            reached.add(el.id)  # the element itself (two cards may show the same track)
            if play is None and "play" in (el.get_attribute("class") or "").split():
                play = el.get_attribute("aria-label")
                el.send_keys(Keys.ENTER)
        if el.tag_name == "body":
            break
    assert len(reached) == visible, (len(reached), visible)  # every visible button
    assert play is not None
    wait(browser, lambda d: "played 45 s" in d.find_element(By.CSS_SELECTOR, "#shelves .card .done").text,
         what="the keyboard play to be accepted")  # fmt: skip
    events = httpx.get(f"{server.url}/v1/users/{user}/events", params={"limit": 5},
                       headers={"Authorization": f"Bearer {world['key']}"}).json()["events"]  # fmt: skip
    assert events[0]["type"] == "play" and events[0]["ms_played"] == 45_000


def test_without_keys_a_listener_is_picked_from_a_list(world, browser, tmp_path):
    store = copy_world(world["store"].parent, tmp_path)  # this server keeps its own live log
    server = Server(store, "--no-auth").start()
    try:
        viewport(browser, 1440)
        browser.get(server.url + "/")
        browser.execute_script("sessionStorage.clear(); localStorage.clear();")
        browser.get(server.url + "/")
        offered = browser.find_elements(By.CSS_SELECTOR, "#listeners option")
        assert len(offered) >= 10
        field = browser.find_element(By.ID, "listener")
        field.clear()
        field.send_keys(offered[3].get_attribute("value"), Keys.ENTER)
        wait(browser, lambda d: len(shelf_types(d)) == 4, what="four shelves")
        assert browser.find_element(By.ID, "who-name").text == offered[3].get_attribute("value")
        browser.get(server.url + "/admin")  # open with --no-auth: no key asked for
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report svg")) == 3,
             what="three plots")  # fmt: skip
    finally:
        server.stop()
