// Artifacts: what the controller's store holds per Kubernetes version, what is missing, and
// (operator) Sync per version.

import * as api from "../api.js";
import * as session from "../session.js";
import {badge, clear, h} from "../dom.js";
import {errorBox, notify} from "../notice.js";
import {DataTable} from "../table.js";

function names(list, testid) {
  if (!list || !list.length) return "—";
  return h("details", {"data-testid": testid}, h("summary", {}, `${list.length}`),
    h("ul", {class: "plain"}, list.map((n) => h("li", {}, h("code", {}, n)))));
}

export function mount(main) {
  const operator = session.isOperator();
  const status = h("div", {"aria-live": "polite"});
  const columns = [
    {key: "version", label: "Kubernetes version"},
    {key: "complete", label: "Store", value: (v) => (v.complete ? 1 : 0),
      render: (v) => badge(v.complete ? "complete" : "incomplete", "artifact-complete")},
    {key: "present", label: "Present", value: (v) => (v.present || []).length,
      render: (v) => names(v.present, "artifact-present")},
    {key: "missing", label: "Missing", value: (v) => (v.missing || []).length,
      render: (v) => names(v.missing, "artifact-missing")},
  ];
  if (operator) {
    columns.push({key: "sync", label: "Sync", sortable: false, render: (v) => h("button", {
      type: "button", class: "small secondary", "data-testid": "artifact-sync",
      "aria-label": `Sync artifacts of ${v.version}`, onclick: (e) => sync(v.version, e.target),
    }, "Sync")});
  }
  const table = new DataTable({columns, testid: "artifacts-table", rowKey: (v) => v.version,
    caption: "Artifacts per Kubernetes version", empty: "The matrix lists no version."});
  main.append(h("h1", {tabindex: "-1"}, "Artifacts"),
    h("p", {}, "Binaries and manifests the nodes download from the controller, per " +
      "Kubernetes version. A version can be provisioned or upgraded to once it is complete."),
    status, table.el);

  async function sync(version, button) {
    button.disabled = true;
    button.textContent = "Syncing…";
    clear(status);
    try {
      await api.call("artifacts.sync", {version});
      notify(`Artifacts of ${version} synced.`);
      await load();
    } catch (err) {
      clear(status, errorBox(err, "artifact-error") || "");
      button.disabled = false;
      button.textContent = "Sync";
    }
  }

  async function load() {
    try {
      const answer = await api.call("artifacts.list");
      table.setRows(answer.versions || []);
    } catch (err) {
      clear(status, errorBox(err) || "");
    }
  }
  load();
  return null;
}
