// Runs page: rows of running runs refresh in place (every second) until none runs.
"use strict";

(() => {
  const table = document.getElementById("runs");
  let running = DT.boot().running || [];

  function countsCell(counts) {
    const span = DT.el("span", {class: "counts"});
    for (const s of Object.keys(counts).sort()) {
      span.append(DT.el("span", {class: "count s-" + s, title: s, text: `${counts[s]} ${s}`}));
    }
    return span;
  }

  function rowOf(runId) {
    for (const tr of table.querySelectorAll("tbody tr[data-run-id]")) {
      if (tr.getAttribute("data-run-id") === runId) return tr;
    }
    return null;
  }

  function update(r) {
    const tr = rowOf(r.run_id);
    if (!tr) return;
    tr.setAttribute("data-status", r.status);
    tr.querySelector(".c-status").replaceChildren(DT.badge(r.status));
    tr.querySelector(".c-attempt").textContent = String(r.attempt || 1);
    tr.querySelector(".c-duration").textContent = r.finished_at !== null
      ? DT.duration(r.started_at, r.finished_at) : (r.status === "running" ? "running" : "-");
    tr.querySelector(".c-counts").replaceChildren(countsCell(r.counts));
  }

  async function poll() {
    if (!running.length) return;
    const q = running.map((id) => "id=" + encodeURIComponent(id)).join("&");
    try {
      const rows = await DT.getJSON("/view/api/rows?" + q);
      rows.forEach(update);
      running = rows.filter((r) => r.status === "running").map((r) => r.run_id);
    } catch (e) { /* the next poll retries */ }
    if (running.length) setTimeout(poll, 1000);
  }

  if (running.length) setTimeout(poll, 1000);
})();
