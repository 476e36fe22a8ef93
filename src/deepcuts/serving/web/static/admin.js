// The operator page: fetches the server-rendered report with the admin key as a Bearer token.
"use strict";
(() => {
  const $ = (sel) => document.querySelector(sel);
  const openAccess = document.body.dataset.noAuth === "true";
  const key = () => sessionStorage.getItem("deepcuts.admin-key");

  async function load() {
    const days = Number($("#days").value) || 7;
    $("#status").textContent = "Computing…";
    const headers = openAccess ? {} : { Authorization: "Bearer " + key() };
    const query = new URLSearchParams({ days });
    const at = new URLSearchParams(location.search).get("at"); // "as of", like `deepcuts learn --at`
    if (at) query.set("at", at);
    const response = await fetch(`/admin/report?${query}`, { headers });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
      if (response.status === 401 || response.status === 403) {
        sessionStorage.removeItem("deepcuts.admin-key");
        $("#admin").hidden = true;
        $("#sign-in").hidden = false;
        $("#sign-in-error").textContent = detail;
        return;
      }
      $("#status").textContent = `Could not compute the report: ${detail}`;
      return;
    }
    $("#sign-in").hidden = true;
    $("#admin").hidden = false;
    $("#who").hidden = openAccess;
    $("#report").innerHTML = await response.text();
    $("#status").textContent = `Last ${days} days, as of ${at || new Date().toLocaleString()}.`;
  }

  $("#key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("deepcuts.admin-key", $("#api-key").value.trim());
    load();
  });
  $("#days-form").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("#sign-out").addEventListener("click", () => { sessionStorage.removeItem("deepcuts.admin-key"); location.reload(); });
  if (openAccess || key()) load();
})();
