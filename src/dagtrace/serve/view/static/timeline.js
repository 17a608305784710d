// The run as a Gantt chart: one row per node, sub-DAG nodes nested under their
// composite node (for open clusters), on a time axis zoomed by widening the track.
"use strict";

const DTTimeline = (() => {
  function rows(run, depth, state, out) {
    for (const node of run.nodes) {
      out.push({node, depth});
      if (node.subs.length && state.open.has(node.path)) {
        for (const sub of node.subs) {
          out.push({cluster: sub, depth: depth + 1});
          rows(sub.run, depth + 2, state, out);
        }
      }
    }
    return out;
  }

  function bounds(list, now) {
    let lo = Infinity, hi = -Infinity;
    for (const r of list) {
      const item = r.node || r.cluster.run;
      if (item.started_at !== null) lo = Math.min(lo, item.started_at);
      const end = item.finished_at !== null ? item.finished_at : (item.started_at !== null ? now : null);
      if (end !== null) hi = Math.max(hi, end);
    }
    if (!isFinite(lo)) return [0, 1];
    return [lo, Math.max(hi, lo + 0.001)];
  }

  function ticks(lo, hi) {
    const span = hi - lo;
    const steps = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 3600];
    const step = steps.find((s) => span / s <= 8) || span / 8;
    const out = [];
    for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
    return out;
  }

  function render(container, data, state, handlers) {
    const now = Date.now() / 1000;
    const list = rows(data.run, 0, state, []);
    const [lo, hi] = bounds(list, now);
    const pct = (t) => ((t - lo) / (hi - lo)) * 100;
    const chart = DT.el("div", {class: "chart"});
    chart.style.setProperty("--zoom", String(state.zoom));
    const axis = DT.el("div", {class: "row axis"}, DT.el("div", {class: "name", text: "node"}));
    const axisTrack = DT.el("div", {class: "track"});
    for (const t of ticks(lo, hi)) {
      const tick = DT.el("span", {class: "tick", text: "+" + DT.seconds(t)});
      tick.style.left = pct(lo + t) + "%";
      axisTrack.append(tick);
    }
    axis.append(axisTrack);
    chart.append(axis);
    for (const r of list) {
      const item = r.node || r.cluster.run;
      const row = DT.el("div", {class: "row" + (r.cluster ? " cluster-row" : "")});
      const name = DT.el("div", {class: "name", title: r.node ? r.node.path : r.cluster.path,
        text: r.node ? r.node.label : "↳ " + r.cluster.key});
      name.style.paddingLeft = (4 + r.depth * 14) + "px";
      row.append(name);
      const track = DT.el("div", {class: "track"});
      if (item.started_at !== null) {
        const end = item.finished_at !== null ? item.finished_at : now;
        const cls = ["bar", "s-" + item.status];
        if (r.node && state.critical.has(r.node.path)) cls.push("critical");
        if (r.node && state.rootCause === r.node.path) cls.push("root-cause");
        const bar = DT.el("div", {class: cls.join(" "), title: `${DT.duration(item.started_at, item.finished_at)} · ${item.status}`});
        bar.style.left = pct(item.started_at) + "%";
        bar.style.width = Math.max(0.2, pct(end) - pct(item.started_at)) + "%";
        track.append(bar);
      }
      row.append(track);
      if (r.node) {
        row.setAttribute("data-path", r.node.path);
        row.setAttribute("data-node-label", r.node.label);
        row.setAttribute("data-status", r.node.status);
        if (state.selected === r.node.path) row.classList.add("selected");
        row.addEventListener("click", () => handlers.select(r.node.path));
      }
      chart.append(row);
    }
    container.replaceChildren(chart);
  }

  return {render};
})();
