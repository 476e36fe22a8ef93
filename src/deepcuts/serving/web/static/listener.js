// The listener page: signs in, then calls the /v1 API with the key as a Bearer token.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const openAccess = document.body.dataset.noAuth === "true";
  const store = {
    get key() { return sessionStorage.getItem("deepcuts.key") || localStorage.getItem("deepcuts.key"); },
    get user() { return sessionStorage.getItem("deepcuts.user") || localStorage.getItem("deepcuts.user"); },
    save(key, user, remember) {
      const s = remember ? localStorage : sessionStorage;
      if (key) s.setItem("deepcuts.key", key);
      s.setItem("deepcuts.user", user);
    },
    clear() {
      for (const s of [sessionStorage, localStorage]) { s.removeItem("deepcuts.key"); s.removeItem("deepcuts.user"); }
    },
  };
  let user = null;
  let week = null;
  let homeStatus = "";

  function headers(extra = {}) {
    const h = { ...extra };
    if (!openAccess && store.key) h.Authorization = "Bearer " + store.key;
    return h;
  }
  async function api(path, options = {}) {
    const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) { /* not JSON */ }
      const error = new Error(`${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return response;
  }
  const status = (text) => { $("#status").textContent = text; };
  const esc = encodeURIComponent;

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // Two colours per card, from its id: something to look at where there is no cover art.
  function hue(text) { let h = 0; for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360; return h; }

  function card(item, reason, impressionId) {
    const node = $("#card-template").content.firstElementChild.cloneNode(true);
    const label = `${item.name}${item.artist ? " by " + item.artist : ""}`;
    node.dataset.itemId = item.item_id;
    if (impressionId) node.dataset.impressionId = impressionId;
    $(".name", node).textContent = item.name;
    $(".artist", node).textContent = item.artist || "";
    $(".reason", node).textContent = reason || "";
    const h = hue(item.item_id);
    $(".art", node).style.setProperty("--c1", `hsl(${h} 60% 42%)`);
    $(".art", node).style.setProperty("--c2", `hsl(${(h + 70) % 360} 65% 30%)`);
    $(".play", node).setAttribute("aria-label", `Play ${label}`);
    $(".secs", node).setAttribute("aria-label", `Seconds played of ${label}`);
    $(".skip", node).setAttribute("aria-label", `Skip ${label}`);
    $(".save", node).setAttribute("aria-label", `Save ${label}`);
    $(".similar", node).setAttribute("aria-label", `Tracks similar to ${label}`);
    const done = $(".done", node);
    const send = async (type, ms) => {
      const event = { event_id: newId(), user_id: user, type, item_id: item.item_id };
      if (impressionId) event.impression_id = impressionId;
      if (ms !== undefined) event.ms_played = ms;
      try {
        await api("/v1/events", {
          method: "POST", body: JSON.stringify({ events: [event] }),
          headers: { "Content-Type": "application/json" },
        });
        const secs = ms === undefined ? "" : ` ${Math.round(ms / 1000)} s`;
        done.textContent = { play: "played", skip: "skipped", save: "saved" }[type] + secs;
        node.classList.add("sent-" + type);
      } catch (error) { done.textContent = "not sent: " + error.message; }
    };
    $(".play", node).addEventListener("click", () => {
      const secs = Math.max(0, Number($(".secs", node).value) || 0);
      send("play", Math.round(secs * 1000));
    });
    $(".skip", node).addEventListener("click", () => send("skip", 5000));
    $(".save", node).addEventListener("click", () => send("save"));
    $(".similar", node).addEventListener("click", () => similar(item));
    return node;
  }

  async function loadHome() {
    status("Loading your home screen…");
    const page = await (await api(`/v1/users/${esc(user)}/home`)).json();
    const root = $("#shelves");
    root.replaceChildren();
    for (const shelf of page.shelves) {
      const section = document.createElement("section");
      section.className = "shelf";
      section.dataset.shelfType = shelf.shelf_type;
      section.dataset.shelfId = shelf.shelf_id;
      section.dataset.propensity = shelf.shelf_propensity; // the chance the policy put it here
      const id = `shelf-${shelf.position}`;
      section.setAttribute("aria-labelledby", id);
      const h2 = document.createElement("h2");
      h2.id = id;
      h2.textContent = shelf.title;
      const kind = document.createElement("p");
      kind.className = "kind";
      kind.textContent = shelf.shelf_type.replaceAll("_", " ");
      const row = document.createElement("ol");
      row.className = "row";
      for (const c of shelf.cards) row.append(card(c, shelf.title, c.impression_id));
      section.append(h2, kind, row);
      root.append(section);
    }
    homeStatus = `${page.shelves.length} rows for ${user}, ordered by ${page.policy.policy_id} (snapshot v${page.snapshot_version}).`;
    status(homeStatus);
  }

  async function loadWeekly() {
    status("Loading Discover Weekly…");
    try {
      const list = await (await api(`/v1/users/${esc(user)}/weekly`)).json();
      week = list.week;
      $("#weekly-title").textContent = list.title;
      $("#weekly-note").textContent = list.annotation;
      const root = $("#weekly-list");
      root.replaceChildren(...list.tracks.map((t) => card({ ...t, kind: "track" }, t.reason)));
      status(`${list.tracks.length} tracks for week ${list.week}.`);
    } catch (error) {
      $("#weekly-list").replaceChildren();
      $("#weekly-note").textContent = error.status === 404 ? "No Discover Weekly for you yet." : error.message;
      status("");
    }
  }

  async function download(format) {
    try {
      const response = await api(`/v1/users/${esc(user)}/weekly?format=${format}`);
      const blob = await response.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `discover-weekly-${user}-${week || "latest"}.${format}`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      status(`Downloaded ${a.download}.`);
    } catch (error) { status("Download failed: " + error.message); }
  }

  function showResults(title, items) {
    $("#results-title").textContent = title;
    $("#results-list").replaceChildren(...items.map((it) => card(it, "")));
    $("#results-tab").hidden = false;
    show("results");
  }
  async function similar(item) {
    try {
      const found = await (await api(`/v1/tracks/${esc(item.item_id)}/similar?n=12`)).json();
      showResults(found.title, found.items);
    } catch (error) { status("No similar tracks: " + error.message); }
  }
  async function search(q) {
    try {
      const found = await (await api(`/v1/search?q=${esc(q)}&n=20`)).json();
      showResults(found.title, found.items);
      status(`${found.items.length} results.`);
    } catch (error) { status("Search failed: " + error.message); }
  }

  function show(view) {
    for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
    for (const v of ["home", "weekly", "results"]) $(`#view-${v}`).hidden = v !== view;
    if (view === "weekly") loadWeekly();
    else if (view === "home") status(homeStatus);
  }

  async function enter(who) {
    user = who;
    $("#sign-in").hidden = true;
    $("#app").hidden = false;
    $("#search-form").hidden = false;
    $("#who").hidden = false;
    $("#who-name").textContent = who;
    show("home");
    try { await loadHome(); } catch (error) { status("Could not load your home screen: " + error.message); }
  }

  async function signInWithKey(key, remember) {
    const error = $("#sign-in-error");
    error.textContent = "";
    const response = await fetch("/v1/me", { headers: { Authorization: "Bearer " + key } });
    if (!response.ok) { error.textContent = "That key was not accepted (unknown or revoked)."; return; }
    const me = await response.json();
    if (!me.user_id) { error.textContent = "That is an admin key: use it on the operator page (/admin); sign in here with a listener's key."; return; }
    store.save(key, me.user_id, remember);
    enter(me.user_id);
  }

  $("#key-form")?.addEventListener("submit", (e) => {
    e.preventDefault();
    signInWithKey($("#api-key").value.trim(), $("#remember").checked);
  });
  $("#pick-form")?.addEventListener("submit", (e) => {
    e.preventDefault();
    const who = $("#listener").value.trim();
    if (!who) return;
    store.save(null, who, false);
    enter(who);
  });
  $("#sign-out").addEventListener("click", () => { store.clear(); location.reload(); });
  $("#reload-home").addEventListener("click", () => loadHome().catch((e) => status(e.message)));
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
  for (const b of document.querySelectorAll(".downloads button")) b.addEventListener("click", () => download(b.dataset.format));
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("#search-q").value.trim();
    if (q) search(q);
  });

  // Back from an earlier visit in this tab (or a remembered key): straight in.
  if (store.user && (openAccess || store.key)) enter(store.user);
})();
