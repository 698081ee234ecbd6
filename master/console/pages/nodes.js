// The Nodes tab: the cluster's nodes (search, sort, pages of 50, status badges), the
// operator's Approve / Reject / Configure / Remove, and a node's detail panel (probed facts,
// its agent log). Refreshes itself every 5 s so new nodes appear as they enroll.

import * as api from "../api.js";
import {badge, clear, formatTime, h, healthBadge} from "../dom.js";
import {confirmAction} from "../dialogs.js";
import {errorBox, notify, reportError} from "../notice.js";
import {DataTable, searchBox} from "../table.js";
import {configure} from "./node-configure.js";
import {nodePanel} from "./node-panel.js";

const SORTS = [
  ["hostname", "Hostname A-Z", "hostname", 1],
  ["-hostname", "Hostname Z-A", "hostname", -1],
  ["status", "Status", "status", 1],
  ["created", "Created (oldest first)", "created", 1],
  ["-created", "Created (newest first)", "created", -1],
];
const REFRESH_MS = 5000;

function haystack(node) {
  return [node.id, node.status, node.address, ...(node.config?.roles || [])].join(" ")
    .toLowerCase();
}

export function mount(panel, ctx, route) {
  let timer = null;
  let last = "";
  let alive = true;
  const status = h("div", {"aria-live": "polite"});
  const detail = h("div", {class: "node-detail"});
  const columns = [
    {key: "hostname", label: "Hostname", value: (n) => n.id,
      render: (n) => h("a", {href: `${ctx.base}/nodes?node=${encodeURIComponent(n.id)}`,
        "data-testid": "node-link"}, n.id)},
    {key: "status", label: "Status", render: (n) => badge(n.status, "node-status")},
    {key: "address", label: "Address"},
    {key: "roles", label: "Roles", render: (n) => (n.config?.roles || []).join(", ")},
    {key: "interface", label: "Interface", render: (n) => n.config?.interface || ""},
    {key: "created", label: "Enrolled", value: (n) => n.enrolled_at,
      render: (n) => formatTime(n.enrolled_at)},
    {key: "connected", label: "Agent",
      render: (n) => (n.connected === undefined ? "" : n.connected ? "connected" : "away")},
    {key: "health", label: "Health",
      render: (n) => (n.health ? healthBadge(n.health, "node-health") : "")},
  ];
  if (ctx.operator) columns.push({key: "actions", label: "Actions", render: nodeActions});
  const table = new DataTable({columns, testid: "nodes-table", headerSort: false,
    caption: `Nodes of ${ctx.name}`, rowKey: (n) => n.id,
    empty: "No nodes have enrolled yet. Issue installer credentials on the Install tab and " +
      "run conjurer on the nodes."});
  table.setSort("hostname", 1);
  const sortSelect = h("select", {id: "node-sort", "data-testid": "node-sort",
    onchange: () => {
      const [, , key, dir] = SORTS.find((s) => s[0] === sortSelect.value);
      table.setSort(key, dir);
    }}, SORTS.map(([value, label]) => h("option", {value}, label)));
  const refresh = h("button", {type: "button", class: "secondary", "data-testid": "nodes-refresh",
    onclick: () => load(true)}, "Refresh");
  panel.append(h("div", {class: "toolbar"},
    searchBox({id: "node-search", label: "Search nodes", testid: "node-search",
      placeholder: "hostname, status, address…",
      onSearch: (text) => table.setFilter(text ? (n) => haystack(n).includes(text) : null)}),
    h("div", {class: "field"}, h("label", {for: "node-sort"}, "Sort by"), sortSelect),
    refresh), status, table.el, detail);

  function nodeActions(node) {
    const act = (testid, label, handler, cls = "secondary") => h("button", {type: "button",
      class: `small ${cls}`, "data-testid": testid, "aria-label": `${label} ${node.id}`,
      onclick: () => handler(node)}, label);
    const out = [];
    if (node.status === "DISCOVERED") {
      out.push(act("node-approve", "Approve", approve, "primary"),
        act("node-reject", "Reject", reject, "danger"));
    }
    if (node.status === "APPROVED") out.push(act("node-configure", "Configure", doConfigure));
    out.push(act("node-remove", "Remove", remove, "danger"));
    return h("div", {class: "row-actions"}, out);
  }

  async function approve(node) {
    try {
      await api.call("node.approve", {node: node.id});
      notify(`${node.id} approved.`);
      load(true);
    } catch (err) {
      reportError(err);
    }
  }

  async function reject(node) {
    const done = await confirmAction({title: `Reject ${node.id}?`, testid: "reject-dialog",
      confirmLabel: "Reject", danger: true,
      text: "Its key is rejected: it runs nothing from the controller. Enrolling it again " +
        "needs conjurer -d and conjurer on the node.",
      onConfirm: () => api.call("node.reject", {node: node.id})});
    if (done) load(true);
  }

  async function doConfigure(node) {
    if (await configure(node)) {
      notify(`${node.id} configured.`);
      load(true);
    }
  }

  async function remove(node) {
    const done = await confirmAction({title: `Remove ${node.id}?`, testid: "remove-dialog",
      confirmLabel: "Remove node", danger: true,
      text: ["The node is drained and deleted from Kubernetes (a master's etcd member first), " +
        "reset, its agent removed and its key and record deleted.",
      "A node whose key was never accepted is forgotten at once."],
      onConfirm: () => api.call("node.remove", {node: node.id})});
    if (done) {
      notify(`Removal of ${node.id} started.`);
      load(true);
    }
  }

  async function load(loud = false) {
    clearTimeout(timer);
    try {
      const rows = await api.call("node.list", {cluster: ctx.name});
      const text = JSON.stringify(rows);
      if (text !== last) {
        last = text;
        table.setRows(rows);
      }
      clear(status);
    } catch (err) {
      if (err instanceof api.SessionExpired) return;
      if (loud || !last) clear(status, errorBox(err) || "");
    }
    if (alive) timer = setTimeout(() => autoRefresh(), REFRESH_MS);
  }

  function autoRefresh() {
    if (document.hidden || document.querySelector("dialog[open]")) {
      timer = setTimeout(() => autoRefresh(), REFRESH_MS);
      return;
    }
    load(false);
  }

  function showDetail(r) {
    const id = r.params.get("node");
    if (!id) {
      clear(detail);
      return;
    }
    clear(detail, nodePanel(ctx, id, r.params.get("log") === "1"));
  }

  load(true);
  showDetail(route);
  return {
    update: showDetail,
    destroy: () => {
      alive = false;
      clearTimeout(timer);
    },
  };
}
