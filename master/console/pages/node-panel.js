// A node's detail panel: its facts (before approval what conjurer reported at enrollment,
// after it what the controller probed) and, for an operator, the last lines of its agent log
// (node.logs) in a <pre>.

import * as api from "../api.js";
import {badge, clear, h} from "../dom.js";
import {errorBox} from "../notice.js";

function show(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) return value.join(", ") || "—";
    return h("ul", {class: "plain"}, value.map((v) => h("li", {}, show(v))));
  }
  if (typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ")
      : typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join("; ");
  }
  return String(value);
}

function interfaces(list) {
  if (!Array.isArray(list) || !list.length) return "—";
  return h("ul", {class: "plain"}, list.map((nic) => h("li", {},
    h("code", {}, nic.name), ` ${(nic.ipv4 || []).join(", ") || "no IPv4"}`)));
}

function disks(list) {
  if (!Array.isArray(list) || !list.length) return "—";
  return h("ul", {class: "plain"}, list.map((d) => {
    if (typeof d !== "object" || d === null) return h("li", {}, String(d));
    const size = d.size_bytes ? ` ${(d.size_bytes / 1e9).toFixed(1)} GB` : "";
    const notes = [d.type, d.rotational === false ? "SSD" : null, d.mounted ? "mounted" : null,
      d.formatted ? "formatted" : null].filter(Boolean).join(", ");
    return h("li", {}, h("code", {}, d.name), `${size}${notes ? ` (${notes})` : ""}`);
  }));
}

function probed(node) {
  return Boolean(node.facts && Object.keys(node.facts).length);
}

function factsList(node) {
  const f = probed(node) ? node.facts : node.reported_facts || {};
  const rows = [
    ["Status", badge(node.status, "detail-status")],
    ["Cluster", node.cluster],
    ["Address", node.address],
    ["OS", [f.os, f.osrelease, f.oscodename].filter(Boolean).join(" ") || "—"],
    ["Kernel", f.kernelrelease],
    ["CPU", f.cpuarch ? `${f.num_cpus ?? "?"} × ${f.cpuarch}` : null],
    ["Memory", f.mem_total ? `${f.mem_total} MiB` : null],
    ["Disks", disks(f.kubesalt_disks)],
    ["Storage candidates", show(f.kubesalt_storage_candidates)],
    ["Interfaces", interfaces(f.kubesalt_interfaces)],
    ["IPv4", show(f.ipv4)],
    ["FQDN", f.fqdn],
    ["Roles", (node.config?.roles || []).join(", ")],
    ["Interface used", node.config?.interface],
    ["Storage devices", show(node.config?.storage_devices)],
  ];
  return h("dl", {class: "facts", "data-testid": "node-facts"},
    rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v instanceof Node ? v : show(v))]));
}

export function nodePanel(ctx, id, withLog) {
  const body = h("div", {}, h("p", {}, "Loading…"));
  const logArea = h("div", {"aria-live": "polite"});
  const close = h("a", {href: `${ctx.base}/nodes`, class: "button secondary small",
    "data-testid": "node-detail-close"}, "Close");
  const logButton = ctx.operator
    ? h("button", {type: "button", class: "secondary", "data-testid": "node-log-button",
      onclick: () => loadLog()}, "Agent log")
    : null;
  const panel = h("section", {class: "panel", "aria-labelledby": "node-detail-h",
    "data-testid": "node-detail"},
  h("div", {class: "panel-head"}, h("h2", {id: "node-detail-h"}, id), logButton, close),
  body, logArea);

  async function loadLog() {
    clear(logArea, h("p", {}, "Reading the agent log…"));
    try {
      const answer = await api.call("node.logs", {node: id, lines: 200});
      clear(logArea, 
        h("h3", {}, `Agent log: ${answer.path || ""}`),
        h("p", {class: "hint"}, `Last ${answer.lines ?? ""} lines` +
          `${answer.truncated ? " (cut to the size the controller returns)" : ""}.`),
        h("pre", {class: "log", tabindex: "0", "data-testid": "node-log"}, answer.log || ""));
    } catch (err) {
      clear(logArea, errorBox(err, "node-log-error") || "");
    }
  }

  api.call("node.show", {node: id}).then((node) => {
    const reported = node.reported_facts && Object.keys(node.reported_facts).length;
    clear(body, factsList(node), probed(node) ? null
      : h("p", {class: "hint", "data-testid": "facts-source"}, reported
        ? "Reported by conjurer when the node enrolled; the controller probes the node " +
          "once it is approved and its agent connects."
        : "Not probed yet: facts arrive once the node is approved and its agent connects."));
  }).catch((err) => clear(body, errorBox(err) || ""));
  if (withLog && ctx.operator) loadLog();
  return panel;
}
