// The node panel: status, times, error with its stack, payloads (large ones collapsed
// and downloadable), copyable ids, the Jaeger link and the node's last runs as a chart.
"use strict";

const DTPanel = (() => {
  function fact(dl, name, value) {
    dl.append(DT.el("dt", {text: name}));
    const dd = DT.el("dd");
    if (value instanceof Node) dd.append(value); else dd.textContent = value === null || value === undefined ? "-" : String(value);
    dl.append(dd);
    return dd;
  }

  function payload(title, part, p, url) {
    const box = DT.el("section", {class: "payload", "data-part": part});
    const head = DT.el("h3", {text: `${title} (${p.present ? p.size + " bytes" : "none"})`});
    box.append(head);
    if (!p.present) return box;
    const pre = DT.el("pre", {class: "json", text: p.preview + (p.truncated ? "\n…" : "")});
    if (p.size > 2000 || p.truncated) {
      const det = DT.el("details", {}, DT.el("summary", {text: p.truncated ? "show the start" : "show"}), pre);
      box.append(det);
    } else {
      box.append(pre);
    }
    box.append(DT.el("a", {href: url, download: part + ".json", class: "download", text: "download"}));
    return box;
  }

  function historyChart(history, current) {
    const w = 220, h = 48, n = Math.max(history.length, 1), bw = w / 20;
    const durs = history.map((r) => (r.started_at !== null && r.finished_at !== null ? r.finished_at - r.started_at : 0));
    const max = Math.max(...durs, 1e-6);
    const chart = DT.svg("svg", {class: "history", width: w, height: h + 4, role: "img", "aria-label": "last runs"});
    history.forEach((r, i) => {
      const bh = r.status ? Math.max(3, (durs[i] / max) * h) : 3;
      const a = DT.svg("a", {href: "/runs/" + DT.seg(r.run_id)});
      const rect = DT.svg("rect", {class: "hbar s-" + (r.status || "absent") + (r.run_id === current ? " current" : ""),
        x: i * bw + 1, y: h - bh + 2, width: bw - 2, height: bh, "data-status": r.status || "absent"});
      rect.append(DT.svg("title", {text: `${DT.when(r.run_started_at)} · ${r.status || "not run"} · ${DT.duration(r.started_at, r.finished_at)}`}));
      a.append(rect);
      chart.append(a);
    });
    return chart;
  }

  function show(panel, d, opts) {
    panel.hidden = false;
    const base = `/view/api/runs/${DT.seg(d.run_id)}/nodes/${DT.seg(d.label)}/payload?part=`;
    const head = DT.el("div", {class: "panel-head"}, DT.el("h2", {id: "panel-label", text: d.label}),
      DT.el("button", {type: "button", class: "close", text: "×", "aria-label": "close", onclick: opts.close}));
    const dl = DT.el("dl", {class: "facts"});
    fact(dl, "Status", DT.badge(d.status));
    if (opts.rootCause) fact(dl, "", DT.el("strong", {class: "root-cause-mark", text: "root cause of the failure"}));
    fact(dl, "Attempt", d.attempt || 1);
    fact(dl, "Started", DT.when(d.started_at));
    fact(dl, "Finished", DT.when(d.finished_at));
    fact(dl, "Duration", DT.duration(d.started_at, d.finished_at));
    if (d.payload_error) fact(dl, "Not reusable", DT.el("span", {class: "not-reusable", text: d.payload_error}));
    const ids = DT.el("span", {class: "mono"}, d.run_id + " ", DT.copyButton(d.run_id));
    fact(dl, "Run", ids);
    fact(dl, "Label", DT.el("span", {}, DT.copyButton(d.label, "copy label")));
    if (d.span_id) {
      const span = DT.el("span", {class: "mono"}, d.span_id + " ", DT.copyButton(d.span_id));
      if (opts.jaegerUrl && d.trace_id) {
        span.append(" ", DT.el("a", {id: "jaeger-span", rel: "noreferrer",
          href: `${opts.jaegerUrl.replace(/\/$/, "")}/trace/${encodeURIComponent(d.trace_id)}?uiFind=${encodeURIComponent(d.span_id)}`, text: "span in Jaeger"}));
      }
      fact(dl, "Span", span);
    }
    const parts = [head, dl];
    if (d.error) {
      parts.push(DT.el("section", {class: "error-box"}, DT.el("h3", {text: "Error"}),
        DT.el("pre", {class: "error", id: "node-error", text: d.error}), DT.copyButton(d.error, "copy error")));
    }
    parts.push(payload("Input", "input", d.input, base + "input"));
    parts.push(payload("Output", "output", d.output, base + "output"));
    parts.push(DT.el("section", {class: "history-box"},
      DT.el("h3", {text: `Last ${d.history.length} runs of ${d.nsref}`}), historyChart(d.history, d.run_id)));
    panel.replaceChildren(...parts);
  }

  return {show};
})();
