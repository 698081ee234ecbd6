// Building DOM nodes without innerHTML: every value from the API goes in as text.

const PROPS = new Set(["checked", "disabled", "hidden", "selected", "multiple", "required",
  "value", "open", "readOnly"]);

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    child.forEach((c) => append(el, c));
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

/** h("button", {class: "x", onclick: fn, "data-testid": "y"}, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Seconds since the epoch or an ISO string, as local "YYYY-MM-DD HH:MM:SS". */
export function formatTime(value) {
  if (value === null || value === undefined || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A status badge: class "badge status-ready" etc., the text as given. */
export function badge(status, testid) {
  const text = status ? String(status) : "unknown";
  return h("span", {class: `badge status-${text.toLowerCase()}`, "data-testid": testid,
    "data-status": text}, text);
}

/** A cluster's or node's health (master/health) as a badge whose title says why. */
export function healthBadge(health, testid) {
  const state = health?.state || "unknown";
  const el = badge(state, testid);
  const reason = health?.reason || (health?.problems || [])
    .map((p) => `${p.node}: ${p.state}`).join(", ");
  if (reason) el.title = reason;
  return el;
}

/** `{env: "prod"}` as small chips. */
export function labelChips(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return "";
  return h("ul", {class: "chips"}, entries.map(([k, v]) => h("li", {}, `${k}=${v}`)));
}

export function slug(text) {
  return String(text).replace(/[^A-Za-z0-9_-]+/g, "-");
}
