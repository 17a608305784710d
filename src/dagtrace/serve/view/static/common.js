// Helpers shared by the view's pages. Every stored string reaches the page through
// textContent or setAttribute, never as markup: runners' strings are hostile.
"use strict";

const DT = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {completed: "✓", failed: "✗", running: "●", paused: "⏸", skipped: "↷", pending: "○"};

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAll(e, attrs);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setAll(e, attrs);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function setAll(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
  }

  async function getJSON(url) {
    const r = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (r.status === 401) { location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); }
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  /** One URL path segment, as the server's routes take it (dots too: no dot segments). */
  function seg(s) { return encodeURIComponent(s).replace(/\./g, "%2E"); }

  function boot() {
    const b = document.getElementById("boot");
    return b ? JSON.parse(b.textContent) : {};
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function when(epoch) {
    if (epoch === null || epoch === undefined) return "-";
    const d = new Date(epoch * 1000);
    if (isNaN(d.getTime())) return "epoch " + epoch;
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  function seconds(s) {
    if (s === null || s === undefined || !isFinite(s)) return "-";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    if (s < 120) return s.toFixed(2) + " s";
    return (s / 60).toFixed(1) + " min";
  }

  function duration(start, end) {
    if (start === null || start === undefined || end === null || end === undefined) return "-";
    return seconds(end - start);
  }

  function badge(status) {
    const b = el("span", {class: "status s-" + status, "data-status": status});
    b.append(el("span", {class: "icon", "aria-hidden": "true"}), String(status));
    return b;
  }

  function icon(status) { return ICONS[status] || "?"; }

  function copyButton(value, label) {
    return el("button", {type: "button", class: "copy", "data-copy": value, text: label || "copy"});
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target;
    if (!(t instanceof HTMLElement) || !t.matches("button.copy")) return;
    const value = t.getAttribute("data-copy") || "";
    const done = () => { t.textContent = "copied"; setTimeout(() => { t.textContent = "copy"; }, 1200); };
    if (navigator.clipboard) navigator.clipboard.writeText(value).then(done, () => { t.textContent = "copy failed"; });
  });

  return {el, svg, getJSON, seg, boot, when, seconds, duration, badge, icon, copyButton};
})();
