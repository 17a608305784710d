// The run page: state in the URL (tab, selected node, open clusters), the graph and
// timeline drawn from /view/api/runs/{id}, and live polling of a small fingerprint
// while the run runs (stopped once it ends).
"use strict";

(() => {
  const boot = DT.boot();
  const runUrl = "/view/api/runs/" + DT.seg(boot.run_id);
  const POLL_MS = 500;
  let data = null;
  let version = null;
  const state = {tab: "graph", selected: null, open: new Set(), openAll: null, zoom: 1,
    critical: new Set(), criticalEdges: new Set(), rootCause: null};

  function allComposites(run, out) {
    for (const n of run.nodes) if (n.subs.length) { out.push(n.path); for (const s of n.subs) allComposites(s.run, out); }
    return out;
  }

  function readUrl() {
    const q = new URLSearchParams(location.search);
    state.tab = q.get("tab") === "timeline" ? "timeline" : "graph";
    state.selected = q.get("node");
    const open = q.get("open");
    state.openAll = open === "*" ? true : (open === "-" ? false : null);
    state.openList = open && open !== "*" && open !== "-" ? open.split(",") : (open === null ? null : []);
  }

  function applyOpen() {
    if (!data) return;
    const all = allComposites(data.run, []);
    if (state.openAll === true) state.open = new Set(all);
    else if (state.openList) state.open = new Set(state.openList);
    else state.open = new Set(data.collapsed ? [] : all);
  }

  function writeUrl(push) {
    const q = new URLSearchParams(location.search);
    if (state.tab === "timeline") q.set("tab", "timeline"); else q.delete("tab");
    if (state.selected) q.set("node", state.selected); else q.delete("node");
    if (state.openAll === true) q.set("open", "*");
    else if (state.openList) q.set("open", state.openList.length ? state.openList.join(",") : "-");
    else q.delete("open");
    const url = location.pathname + (q.toString() ? "?" + q.toString() : "");
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  }

  const handlers = {
    select(path) { state.selected = path; writeUrl(false); draw(); showPanel(); },
    toggle(path) {
      const open = new Set(state.open);
      if (open.has(path)) open.delete(path); else open.add(path);
      state.openAll = null; state.openList = [...open]; state.open = open;
      writeUrl(false); draw();
    },
  };

  function draw() {
    if (!data) return;
    document.getElementById("tab-graph").setAttribute("aria-selected", String(state.tab === "graph"));
    document.getElementById("tab-timeline").setAttribute("aria-selected", String(state.tab === "timeline"));
    document.getElementById("graph").hidden = state.tab !== "graph";
    document.getElementById("timeline").hidden = state.tab !== "timeline";
    if (state.tab === "graph") DTGraph.render(document.getElementById("graph"), data, state, handlers);
    else DTTimeline.render(document.getElementById("gantt"), data, state, handlers);
  }

  function findNode(path) {
    const walk = (run) => {
      for (const n of run.nodes) {
        if (n.path === path) return n;
        for (const s of n.subs) { const f = walk(s.run); if (f) return f; }
      }
      return null;
    };
    return data ? walk(data.run) : null;
  }

  async function showPanel() {
    const panel = document.getElementById("panel");
    const node = state.selected && findNode(state.selected);
    if (!node) { panel.hidden = true; return; }
    const d = await DT.getJSON(`/view/api/runs/${DT.seg(node.run_id)}/nodes/${DT.seg(node.label)}`);
    if (state.selected !== node.path) return;
    DTPanel.show(panel, d, {jaegerUrl: boot.jaeger_url, rootCause: data.root_cause === node.path,
      close() { state.selected = null; writeUrl(false); panel.hidden = true; draw(); }});
  }

  function header(run) {
    document.getElementById("run-status").replaceChildren(DT.badge(run.status));
    if (run.finished_at !== null) {
      document.getElementById("run-finished").textContent = DT.when(run.finished_at) + " UTC · " + DT.duration(run.started_at, run.finished_at);
    }
  }

  function running(run) { return run.status === "running" || run.status === "pending"; }

  async function load() {
    data = await DT.getJSON(runUrl);
    version = data.version;
    state.critical = new Set(data.critical);
    state.criticalEdges = new Set(data.critical_edges.map(([a, b]) => a + "\u0000" + b));
    state.rootCause = data.root_cause;
    applyOpen();
    header(data.run);
    draw();
    if (state.selected) showPanel();
    document.getElementById("live").hidden = !running(data.run);
  }

  async function poll() {
    try {
      const v = await DT.getJSON(runUrl + "/version");
      if (v.version !== version) await load();
    } catch (e) { /* retried on the next tick */ }
    if (data && running(data.run)) setTimeout(poll, POLL_MS);
    else document.getElementById("live").hidden = true;
  }

  for (const b of document.querySelectorAll("[data-tab]")) {
    b.addEventListener("click", () => { state.tab = b.getAttribute("data-tab"); writeUrl(true); draw(); });
  }
  document.getElementById("expand-all").addEventListener("click", () => { state.openAll = true; state.openList = null; applyOpen(); writeUrl(false); draw(); });
  document.getElementById("collapse-all").addEventListener("click", () => { state.openAll = false; state.openList = []; applyOpen(); writeUrl(false); draw(); });
  const zoom = (f) => { state.zoom = f === 0 ? 1 : Math.min(64, Math.max(1, state.zoom * f)); draw(); };
  document.getElementById("zoom-in").addEventListener("click", () => zoom(2));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-reset").addEventListener("click", () => zoom(0));
  window.addEventListener("popstate", () => { readUrl(); applyOpen(); draw(); showPanel(); });

  readUrl();
  load().then(() => { if (running(data.run)) setTimeout(poll, POLL_MS); }).catch((e) => {
    document.getElementById("graph").replaceChildren(DT.el("p", {class: "error", text: "Could not load the run: " + e.message}));
  });
})();
