// One cluster: its header, the operator's actions and four tabs (Nodes, Install, Operation,
// Configuration), each a real tab button reachable with the keyboard (arrow keys move).

import * as api from "../api.js";
import * as session from "../session.js";
import {badge, clear, h, healthBadge} from "../dom.js";
import {errorBox} from "../notice.js";
import {actionBar} from "./cluster-actions.js";
import * as nodesTab from "./nodes.js";
import * as installTab from "./install.js";
import * as operationTab from "./operation.js";
import * as configTab from "./config.js";

const TABS = [
  ["nodes", "Nodes", nodesTab],
  ["install", "Install", installTab],
  ["operation", "Operation", operationTab],
  ["config", "Configuration", configTab],
];

export function mount(main, route) {
  const name = route.parts[1];
  const base = `#/clusters/${encodeURIComponent(name)}`;
  let cluster = null;
  let tab = null;
  let tabView = null;
  const head = h("div", {class: "cluster-head"});
  const actions = h("div", {class: "actions", "data-testid": "cluster-actions"});
  const buttons = TABS.map(([key, label]) => h("button", {type: "button", role: "tab",
    id: `tab-${key}`, "aria-controls": "tabpanel", "data-testid": `tab-${key}`,
    onclick: () => { location.hash = `${base}/${key}`; },
    onkeydown: (event) => moveFocus(event, key)}, label));
  const panel = h("section", {id: "tabpanel", role: "tabpanel", tabindex: "0"});
  main.append(
    h("p", {class: "crumbs"}, h("a", {href: "#/clusters"}, "← Clusters")),
    h("h1", {tabindex: "-1", "data-testid": "cluster-name"}, name), head, actions,
    h("div", {role: "tablist", "aria-label": `Cluster ${name}`, class: "tabs"}, buttons),
    panel);

  function moveFocus(event, key) {
    const i = TABS.findIndex((t) => t[0] === key);
    const to = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1}[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const next = TABS[(to + TABS.length) % TABS.length][0];
    location.hash = `${base}/${next}`;
    buttons[(to + TABS.length) % TABS.length].focus();
  }

  const ctx = {
    name,
    base,
    operator: session.isOperator(),
    cluster: () => cluster,
    reload: () => load(),
    goto: (key, query = "") => { location.hash = `${base}/${key}${query}`; },
  };

  function renderHead() {
    clear(head, h("dl", {class: "facts inline"},
      h("dt", {}, "State"), h("dd", {}, badge(cluster.state, "cluster-state")),
      h("dt", {}, "Health"), h("dd", {}, healthBadge(cluster.health, "cluster-health")),
      h("dt", {}, "Type"), h("dd", {}, cluster.type),
      h("dt", {}, "Kubernetes"), h("dd", {"data-testid": "cluster-version"}, cluster.k8s_version),
      h("dt", {}, "Location"), h("dd", {}, cluster.location || "—")));
    clear(actions, ...(ctx.operator ? actionBar(ctx) : []));
  }

  function show(route) {
    const key = TABS.some((t) => t[0] === route.parts[2]) ? route.parts[2] : "nodes";
    buttons.forEach((b, i) => {
      const selected = TABS[i][0] === key;
      b.setAttribute("aria-selected", String(selected));
      b.tabIndex = selected ? 0 : -1;
    });
    panel.setAttribute("aria-labelledby", `tab-${key}`);
    if (key === tab && tabView) {
      tabView.update?.(route);
      return;
    }
    tabView?.destroy?.();
    tab = key;
    clear(panel);
    tabView = TABS.find((t) => t[0] === key)[2].mount(panel, ctx, route) || null;
  }

  async function load() {
    try {
      cluster = await api.call("cluster.show", {name});
      renderHead();
      return cluster;
    } catch (err) {
      clear(head, errorBox(err) || "");
      throw err;
    }
  }

  // The tab's own calls start beside cluster.show rather than after it: one round trip
  // fewer before a page of 1,000 nodes shows. A tab that needs the cluster waits on ctx.loaded.
  ctx.loaded = load();
  ctx.loaded.catch(() => {});
  show(route);
  return {
    update: (next) => show(next),
    destroy: () => tabView?.destroy?.(),
  };
}
