// The Configuration tab: cluster.show read-only as a definition list, and for an operator an
// Edit form with what cluster.update accepts (labels, location, auto_approve,
// blueprint_version, reset_enabled, installer_ttl_days).

import * as api from "../api.js";
import {clear, formatTime, h, labelChips} from "../dom.js";
import {field, formError, labelsText, parseLabels, select, showErrors, clearErrors}
  from "../forms.js";
import {errorBox, notify} from "../notice.js";

const SHOWN = [
  ["name", "Name"], ["type", "Type"], ["nodes_required", "Nodes required"],
  ["state", "State"], ["k8s_version", "Kubernetes version"], ["os", "Operating system"],
  ["blueprint", "Blueprint"], ["blueprint_version", "Blueprint version"],
  ["storage", "Storage"], ["location", "Location"], ["labels", "Labels"],
  ["auto_approve", "Auto-approve"], ["reset_enabled", "Reset allowed"],
  ["installer_ttl_days", "Installer credentials valid (days)"], ["proxy", "Proxy"],
  ["cni", "CNI"], ["pod_subnet", "Pod subnet"], ["service_subnet", "Service subnet"],
  ["components", "Component versions"], ["created_at", "Created"], ["updated_at", "Updated"],
  ["revision", "Revision"],
];
const HIDDEN = ["ha", "dedicated_master"];

function value(key, v) {
  if (key === "labels") return labelChips(v) || "—";
  if (key.endsWith("_at")) return formatTime(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v === "object") {
    return h("ul", {class: "plain"}, Object.entries(v).map(([k, x]) => h("li", {},
      `${k}: ${x === null ? "—" : typeof x === "object" ? JSON.stringify(x) : x}`)));
  }
  return String(v);
}

function definitionList(cluster) {
  const keys = [...SHOWN, ...Object.keys(cluster).filter((k) => !SHOWN.some((s) => s[0] === k) &&
    !HIDDEN.includes(k)).map((k) => [k, k])];
  return h("dl", {class: "facts", "data-testid": "config-list"}, keys.filter(([k]) => k in cluster)
    .map(([k, label]) => [h("dt", {}, label), h("dd", {"data-key": k}, value(k, cluster[k]))]));
}

async function editForm(cluster, done) {
  let versions = [];
  try {
    const options = await api.call("cluster.options");
    versions = options.blueprints?.[cluster.blueprint]?.versions || [];
  } catch (err) {
    if (err instanceof api.SessionExpired) throw err;
  }
  const ctl = {
    labels: h("textarea", {id: "ed-labels", rows: 3, "data-testid": "ed-labels"}),
    location: h("input", {type: "text", id: "ed-location", value: cluster.location || "",
      "data-testid": "ed-location"}),
    auto_approve: h("input", {type: "checkbox", id: "ed-auto_approve",
      checked: Boolean(cluster.auto_approve), "data-testid": "ed-auto_approve"}),
    reset_enabled: h("input", {type: "checkbox", id: "ed-reset_enabled",
      checked: Boolean(cluster.reset_enabled), "data-testid": "ed-reset_enabled"}),
    blueprint_version: versions.length
      ? select(versions, cluster.blueprint_version, {id: "ed-blueprint_version",
        "data-testid": "ed-blueprint_version"})
      : h("input", {type: "text", id: "ed-blueprint_version",
        value: cluster.blueprint_version || "", "data-testid": "ed-blueprint_version"}),
    installer_ttl_days: h("input", {type: "number", id: "ed-installer_ttl_days", min: 1,
      max: 36500, value: cluster.installer_ttl_days ?? "",
      "data-testid": "ed-installer_ttl_days"}),
  };
  ctl.labels.value = labelsText(cluster.labels);
  const save = h("button", {type: "submit", class: "primary", "data-testid": "edit-save"},
    "Save");
  const cancel = h("button", {type: "button", class: "secondary", "data-testid": "edit-cancel",
    onclick: () => done(null)}, "Cancel");
  const form = h("form", {class: "cluster-form", novalidate: true, "data-testid": "edit-form"},
    h("h2", {}, `Edit ${cluster.name}`),
    h("p", {class: "hint"}, "Proxy, subnets and CNI cannot change; the Kubernetes version " +
      "changes through Upgrade."),
    field({name: "labels", label: "Labels", control: ctl.labels,
      hint: "One key=value per line; delete a line to remove the label"}),
    field({name: "location", label: "Location", control: ctl.location}),
    field({name: "blueprint_version", label: "Blueprint version", control: ctl.blueprint_version}),
    field({name: "installer_ttl_days", label: "Installer credentials valid (days)",
      control: ctl.installer_ttl_days, hint: "1 to 36500"}),
    field({name: "auto_approve", label: "Approve nodes with valid credentials automatically",
      control: ctl.auto_approve}),
    field({name: "reset_enabled", label: "Allow reset of this cluster",
      control: ctl.reset_enabled}),
    formError("edit-error"), h("div", {class: "form-buttons"}, cancel, save));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {name: cluster.name};
    try {
      const labels = parseLabels(ctl.labels.value);
      const changed = {};
      for (const [k, v] of Object.entries(labels)) {
        if ((cluster.labels || {})[k] !== v) changed[k] = v;
      }
      for (const k of Object.keys(cluster.labels || {})) if (!(k in labels)) changed[k] = null;
      if (Object.keys(changed).length) body.labels = changed;
    } catch (errors) {
      showErrors(form, errors);
      return;
    }
    if (ctl.location.value.trim() !== (cluster.location || "")) {
      body.location = ctl.location.value.trim();
    }
    for (const k of ["auto_approve", "reset_enabled"]) {
      if (ctl[k].checked !== Boolean(cluster[k])) body[k] = ctl[k].checked;
    }
    const bp = ctl.blueprint_version.value.trim();
    if (bp && bp !== String(cluster.blueprint_version)) body.blueprint_version = bp;
    const ttl = ctl.installer_ttl_days.value.trim();
    if (ttl !== String(cluster.installer_ttl_days ?? "")) {
      body.installer_ttl_days = /^\d+$/.test(ttl) ? Number(ttl) : ttl;
    }
    if (Object.keys(body).length === 1) {
      done(null);
      return;
    }
    save.disabled = true;
    try {
      done(await api.call("cluster.update", body));
    } catch (err) {
      if (!(err instanceof api.SessionExpired)) showErrors(form, err.errors, err.message);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

export function mount(panel, ctx) {
  const render = (cluster) => {
    const edit = ctx.operator ? h("button", {type: "button", class: "secondary",
      "data-testid": "config-edit", onclick: () => startEdit(cluster)}, "Edit") : null;
    clear(panel, h("div", {class: "panel-head"}, h("h2", {}, "Configuration"), edit),
      definitionList(cluster));
  };
  const startEdit = async (cluster) => {
    try {
      const form = await editForm(cluster, async (updated) => {
        if (updated) notify(`Cluster ${ctx.name} updated.`);
        try {
          render(await ctx.reload());
        } catch (err) {
          clear(panel, errorBox(err) || "");
        }
      });
      clear(panel, form);
      form.querySelector("textarea, input")?.focus();
    } catch (err) {
      panel.append(errorBox(err) || "");
    }
  };
  ctx.loaded.then(render, () => {});  // cluster.show's error is shown above the tabs
  return null;
}
