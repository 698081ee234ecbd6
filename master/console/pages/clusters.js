// Clusters: one table (name, type, version, state, health, nodes ready/total, location,
// labels) with search, sortable headers and pages of 50.

import * as api from "../api.js";
import * as session from "../session.js";
import {badge, clear, h, healthBadge, labelChips} from "../dom.js";
import {errorBox} from "../notice.js";
import {DataTable, searchBox} from "../table.js";

function nodesCell(cluster) {
  const nodes = cluster.nodes;
  if (!nodes || typeof nodes !== "object") return "";
  return h("span", {"data-testid": "cluster-nodes"}, `${nodes.ready ?? 0}/${nodes.total ?? 0}`);
}

const COLUMNS = [
  {key: "name", label: "Name",
    render: (c) => h("a", {href: `#/clusters/${encodeURIComponent(c.name)}/nodes`,
      "data-testid": "cluster-link"}, c.name)},
  {key: "type", label: "Type"},
  {key: "k8s_version", label: "Kubernetes"},
  {key: "state", label: "State", render: (c) => badge(c.state, "cluster-state")},
  {key: "health", label: "Health", value: (c) => c.health?.state || "",
    render: (c) => healthBadge(c.health, "cluster-health")},
  {key: "nodes", label: "Nodes ready/total",
    value: (c) => (c.nodes ? c.nodes.ready * 100000 + c.nodes.total : -1), render: nodesCell},
  {key: "location", label: "Location"},
  {key: "labels", label: "Labels", render: (c) => labelChips(c.labels),
    value: (c) => Object.entries(c.labels || {}).map(([k, v]) => `${k}=${v}`).join(",")},
];

function haystack(cluster) {
  return [cluster.name, cluster.type, cluster.k8s_version, cluster.state, cluster.location,
    ...Object.entries(cluster.labels || {}).map(([k, v]) => `${k}=${v}`)]
    .join(" ").toLowerCase();
}

export function mount(main) {
  const table = new DataTable({columns: COLUMNS, testid: "clusters-table", rowKey: (c) => c.name,
    caption: "Clusters", empty: "No clusters yet."});
  table.setSort("name", 1);
  const status = h("div", {"aria-live": "polite"});
  const refresh = h("button", {type: "button", class: "secondary", "data-testid": "refresh",
    onclick: () => load()}, "Refresh");
  const actions = h("div", {class: "toolbar"},
    searchBox({id: "cluster-search", label: "Search clusters", testid: "cluster-search",
      placeholder: "name, state, label…",
      onSearch: (text) => table.setFilter(text ? (c) => haystack(c).includes(text) : null)}),
    refresh,
    session.isOperator()
      ? h("a", {href: "#/new-cluster", class: "button primary", "data-testid": "new-cluster"},
        "New cluster")
      : null);
  main.append(h("h1", {tabindex: "-1"}, "Clusters"), actions, status, table.el);

  async function load() {
    refresh.disabled = true;
    try {
      table.setRows(await api.call("cluster.list"));
      clear(status);
    } catch (err) {
      clear(status, errorBox(err) || "");
    } finally {
      refresh.disabled = false;
    }
  }
  load();
  return null;
}
