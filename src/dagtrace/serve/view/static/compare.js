// The compare page: what changed from run A to run B, and a side-by-side diff of one
// node's output.
"use strict";

(() => {
  const boot = DT.boot();
  const root = document.getElementById("compare");
  if (!boot.a || !boot.b) return;

  function table(head, rows) {
    const t = DT.el("table", {class: "diff-table"});
    t.append(DT.el("thead", {}, DT.el("tr", {}, ...head.map((h) => DT.el("th", {text: h})))));
    const body = DT.el("tbody");
    for (const r of rows) body.append(DT.el("tr", {}, ...r.map((c) => (c instanceof Node ? DT.el("td", {}, c) : DT.el("td", {text: c})))));
    t.append(body);
    return t;
  }

  function section(title, id, content) {
    return DT.el("section", {class: "cmp", id}, DT.el("h2", {text: title}), content);
  }

  function list(items) {
    if (!items.length) return DT.el("p", {class: "none", text: "none"});
    return DT.el("ul", {}, ...items.map((i) => DT.el("li", {class: "mono", text: i})));
  }

  async function showDiff(path) {
    const box = document.getElementById("node-diff");
    const d = await DT.getJSON(`/view/api/compare/node?a=${encodeURIComponent(boot.a)}&b=${encodeURIComponent(boot.b)}&path=${encodeURIComponent(path)}`);
    const rows = d.rows.map((r) => {
      const tr = DT.el("tr", {class: "op-" + r.op});
      tr.append(DT.el("td", {class: "mono", text: r.a === null ? "" : r.a}), DT.el("td", {class: "mono", text: r.b === null ? "" : r.b}));
      return tr;
    });
    const t = DT.el("table", {class: "side-by-side"}, DT.el("thead", {}, DT.el("tr", {}, DT.el("th", {text: "A"}), DT.el("th", {text: "B"}))), DT.el("tbody", {}, ...rows));
    box.replaceChildren(DT.el("h2", {text: "Output of " + path}), t);
  }

  function runLink(s, name) {
    return DT.el("p", {}, name + ": ", DT.badge(s.status), " ", DT.el("a", {class: "mono", href: "/runs/" + DT.seg(s.run_id), text: s.run_id}), " · " + s.nsref + " · " + DT.when(s.started_at));
  }

  async function main() {
    const d = await DT.getJSON(`/view/api/compare?a=${encodeURIComponent(boot.a)}&b=${encodeURIComponent(boot.b)}`);
    const parts = [runLink(d.a, "A"), runLink(d.b, "B")];
    if (d.replay) {
      const who = d.replay === "b" ? "B replays A" : "A replays B";
      parts.push(section(`Replayed nodes (${who}: executed again, not skipped)`, "replayed", list(d.replayed)));
    }
    parts.push(section("Added in B", "added", list(d.added)));
    parts.push(section("Removed in B", "removed", list(d.removed)));
    parts.push(section("Status changes", "status-changes", d.status_changes.length
      ? table(["node", "A", "B"], d.status_changes.map((s) => [s.path, DT.badge(s.a), DT.badge(s.b)])) : list([])));
    parts.push(section("Duration changes (largest first)", "durations",
      table(["node", "A", "B", "change"], d.durations.map((x) => [x.path, DT.seconds(x.a), DT.seconds(x.b), (x.delta >= 0 ? "+" : "−") + DT.seconds(Math.abs(x.delta))]))));
    parts.push(section("Outputs", "outputs", table(["node", "output", ""], d.outputs.map((o) => [o.path, o.changed ? "changed" : "same",
      DT.el("button", {type: "button", class: "show-diff", "data-path": o.path, text: "side by side", onclick: () => showDiff(o.path)})]))));
    parts.push(DT.el("section", {id: "node-diff", class: "cmp"}));
    root.replaceChildren(...parts);
    const changed = d.outputs.find((o) => o.changed);
    if (changed) showDiff(changed.path);
  }

  main().catch((e) => root.replaceChildren(DT.el("p", {class: "error", text: "Could not compare: " + e.message})));
})();
