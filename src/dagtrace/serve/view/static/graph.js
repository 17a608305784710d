// The run as a DAG: each run (and each open sub-DAG run) laid out by dagre on its own,
// a sub-run's layout then placed as one box under its composite node. Laying out
// clusters separately keeps the cost near linear in the nodes drawn.
"use strict";

const DTGraph = (() => {
  const NODE_H = 38;
  const HEAD = 22; // a cluster's title bar

  function nodeWidth(label) { return Math.min(230, Math.max(120, 7.2 * label.length + 34)); }

  function short(text, max) { return text.length > max ? text.slice(0, max - 1) + "…" : text; }

  function subSummary(node) {
    const counts = node.aggregate || {};
    if (!node.aggregate) for (const s of node.subs) counts[s.run.status] = (counts[s.run.status] || 0) + 1;
    const parts = Object.keys(counts).sort().map((k) => `${counts[k]} ${k}`);
    return `${node.label} × ${node.subs.length}: ${parts.join(", ")}`;
  }

  function subText(node, state) {
    let sub = node.status;
    if (state.rootCause === node.path) sub = "root cause · " + sub;
    if (node.not_reusable) sub += " · not reusable";
    return sub;
  }

  /** Layout of one run: {w, h, g}; open sub-runs become cluster boxes of their own layout. */
  function layoutRun(run, state) {
    const g = new dagre.graphlib.Graph({multigraph: false});
    g.setGraph({rankdir: "LR", nodesep: 14, ranksep: 40, marginx: 8, marginy: 8});
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of run.nodes) {
      const subs = node.subs.length;
      let width = Math.max(nodeWidth(node.label), Math.min(260, 6.2 * subText(node, state).length + 34));
      if (subs) width = Math.max(width, Math.min(340, 6.2 * subSummary(node).length + 30));
      g.setNode("n:" + node.path, {width, height: subs ? NODE_H + 14 : NODE_H, node});
      if (subs && state.open.has(node.path)) {
        for (const sub of node.subs) {
          const inner = layoutRun(sub.run, state);
          g.setNode("c:" + sub.path, {width: Math.max(inner.w, 60 + 7 * (sub.key.length + sub.run.status.length)), height: inner.h + HEAD, sub, inner});
          g.setEdge("n:" + node.path, "c:" + sub.path, {cluster: true});
        }
      }
    }
    const prefix = run.prefix;
    for (const [up, down] of run.edges) g.setEdge("n:" + prefix + up, "n:" + prefix + down, {up: prefix + up, down: prefix + down});
    dagre.layout(g);
    const gr = g.graph();
    return {w: gr.width || 0, h: gr.height || 0, g};
  }

  function drawNode(parent, spec, x, y, state, handlers) {
    const node = spec.node;
    const w = spec.width, h = spec.height;
    const classes = ["node", "s-" + node.status];
    if (state.critical.has(node.path)) classes.push("critical");
    if (state.rootCause === node.path) classes.push("root-cause");
    if (state.selected === node.path) classes.push("selected");
    const gEl = DT.svg("g", {
      class: classes.join(" "), transform: `translate(${x - w / 2},${y - h / 2})`,
      "data-node-label": node.label, "data-status": node.status, "data-path": node.path,
      "data-run-id": node.run_id, tabindex: "0", role: "button",
    });
    gEl.append(DT.svg("title", {text: `${node.label} · ${node.status}` + (node.error_line ? "\n" + node.error_line : "")}));
    gEl.append(DT.svg("rect", {class: "box", width: w, height: h, rx: 6, ry: 6}));
    gEl.append(DT.svg("text", {class: "icon", x: 8, y: 16, text: DT.icon(node.status)}));
    gEl.append(DT.svg("text", {class: "label", x: 24, y: 16, text: short(node.label, Math.floor((w - 30) / 7.2))}));
    const sub = subText(node, state);
    gEl.append(DT.svg("text", {class: "sub", x: 24, y: 31, text: short(sub, Math.floor((w - 30) / 6))}));
    if (node.subs.length) {
      const open = state.open.has(node.path);
      const t = DT.svg("text", {class: "toggle" + (node.aggregate ? " aggregate" : ""), x: 8, y: h - 6,
        "data-toggle": node.path, "data-aggregate": node.aggregate ? "true" : null,
        text: (open ? "▾ " : "▸ ") + short(subSummary(node), Math.floor((w - 16) / 6))});
      t.addEventListener("click", (ev) => { ev.stopPropagation(); handlers.toggle(node.path); });
      gEl.append(t);
    }
    gEl.addEventListener("click", () => handlers.select(node.path));
    gEl.addEventListener("keydown", (ev) => { if (ev.key === "Enter") handlers.select(node.path); });
    parent.append(gEl);
  }

  function drawEdge(parent, e, points, ox, oy, state) {
    const d = points.map((p, i) => `${i ? "L" : "M"}${p.x + ox},${p.y + oy}`).join(" ");
    let cls = e.cluster ? "edge to-cluster" : "edge";
    if (!e.cluster && state.criticalEdges.has(e.up + "\u0000" + e.down)) cls += " critical";
    parent.append(DT.svg("path", {class: cls, d, "marker-end": e.cluster ? null : "url(#arrow)"}));
  }

  function draw(parent, lay, ox, oy, state, handlers) {
    const g = lay.g;
    for (const key of g.edges()) drawEdge(parent, g.edge(key), g.edge(key).points || [], ox, oy, state);
    for (const id of g.nodes()) {
      const spec = g.node(id);
      if (!spec) continue;
      if (spec.node) { drawNode(parent, spec, spec.x + ox, spec.y + oy, state, handlers); continue; }
      const x = spec.x + ox - spec.width / 2, y = spec.y + oy - spec.height / 2;
      const run = spec.sub.run;
      const c = DT.svg("g", {class: "cluster s-" + run.status, "data-cluster": spec.sub.path, "data-run-id": run.run_id, "data-status": run.status});
      c.append(DT.svg("rect", {class: "cluster-box", x, y, width: spec.width, height: spec.height, rx: 8, ry: 8}));
      const title = DT.svg("text", {class: "cluster-title", x: x + 8, y: y + 15, text: `${DT.icon(run.status)} ${short(spec.sub.key, 40)} · ${run.status}`});
      c.append(title);
      const link = DT.svg("a", {href: "/runs/" + DT.seg(run.run_id), class: "cluster-link"});
      link.append(DT.svg("text", {x: x + spec.width - 34, y: y + 15, text: "open"}));
      c.append(link);
      parent.append(c);
      draw(parent, spec.inner, x, y + HEAD, state, handlers);
    }
  }

  function render(container, data, state, handlers) {
    const started = performance.now();
    const lay = layoutRun(data.run, state);
    const laidOut = performance.now();
    const root = DT.svg("svg", {class: "dag", width: Math.max(lay.w, 200), height: Math.max(lay.h, 60), "data-node-count": data.node_count});
    const defs = DT.svg("defs");
    const marker = DT.svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse"});
    marker.append(DT.svg("path", {d: "M0,0 L10,5 L0,10 z", class: "arrow"}));
    defs.append(marker);
    root.append(defs);
    draw(root, lay, 0, 0, state, handlers);
    container.replaceChildren(root);
    // what bench_view.py reads: layout and drawing time of the last render
    root.setAttribute("data-layout-ms", (laidOut - started).toFixed(0));
    root.setAttribute("data-draw-ms", (performance.now() - laidOut).toFixed(0));
    performance.mark("dagtrace-drawn");
  }

  return {render};
})();
