// The operator's actions on a cluster: Provision, Upgrade, Reset (only when reset_enabled;
// confirmed by typing the cluster's name) and Delete.

import * as api from "../api.js";
import {clear, h} from "../dom.js";
import {confirmAction, openDialog} from "../dialogs.js";
import {field} from "../forms.js";
import {notify, reportError} from "../notice.js";

function provision(ctx) {
  confirmAction({
    title: `Provision ${ctx.name}?`, testid: "provision-dialog", confirmLabel: "Provision",
    text: ["Kubernetes is installed on the cluster's configured nodes, stage by stage, each " +
      "node at its own pace; after a failure, provisioning again runs only what did not " +
      "finish.", "It can take 5-10 mins."],
    onConfirm: () => api.call("cluster.provision", {name: ctx.name}),
  }).then((op) => {
    if (!op) return;
    notify(`Provisioning ${ctx.name} started (operation ${op.operation ?? ""}).`);
    ctx.reload().catch(() => {});
    ctx.goto("operation");
  });
}

function upgradeBody(upgrades, selectEl, detail) {
  const describe = () => {
    const target = upgrades.targets.find((t) => t.version === selectEl.value);
    if (!target) {
      clear(detail, h("p", {}, "No version to upgrade to."));
      return;
    }
    const missing = target.missing || [];
    clear(detail, 
      target.allowed ? null : h("p", {class: "field-error"}, target.reason),
      missing.length ? h("div", {"data-testid": "upgrade-missing"},
        h("p", {}, `Artifacts missing for ${target.version}:`),
        h("ul", {}, missing.map((m) => h("li", {}, h("code", {}, m)))),
        h("p", {}, "Sync them on the controller first:"),
        h("pre", {class: "command"}, target.sync_command || "")) : null);
  };
  selectEl.addEventListener("change", describe);
  describe();
}

async function upgrade(ctx) {
  let upgrades;
  try {
    upgrades = await api.call("cluster.upgrades", {name: ctx.name});
  } catch (err) {
    reportError(err);
    return;
  }
  const targets = upgrades.targets || [];
  const selectEl = h("select", {id: "upgrade-version", "data-testid": "upgrade-version"},
    targets.map((t) => h("option", {value: t.version, disabled: !t.allowed},
      t.allowed ? t.version : `${t.version} (${t.reason})`)));
  const firstAllowed = targets.find((t) => t.allowed);
  if (firstAllowed) selectEl.value = firstAllowed.version;
  const detail = h("div", {"aria-live": "polite"});
  upgradeBody({targets}, selectEl, detail);
  const done = await openDialog({
    title: `Upgrade ${ctx.name}`, testid: "upgrade-dialog", confirmLabel: "Upgrade",
    body: [h("p", {}, `Now on Kubernetes ${upgrades.current ?? ctx.cluster().k8s_version}. ` +
      "One minor version at a time, masters first, each node drained around its upgrade."),
    field({name: "k8s_version", label: "Upgrade to", control: selectEl}), detail],
    canConfirm: () => Boolean(targets.find((t) => t.version === selectEl.value && t.allowed)),
    onConfirm: () => api.call("cluster.upgrade", {name: ctx.name, k8s_version: selectEl.value}),
  });
  if (done) {
    notify(`Upgrade of ${ctx.name} to ${selectEl.value} started.`);
    ctx.reload().catch(() => {});
    ctx.goto("operation");
  }
}

function typedName(ctx, {title, testid, confirmLabel, text, onConfirm, extra = []}) {
  const input = h("input", {type: "text", id: `${testid}-name`, autocomplete: "off",
    "data-testid": `${testid}-name`});
  return openDialog({
    title, testid, confirmLabel, danger: true,
    body: [...text.map((t) => h("p", {}, t)), ...extra,
      field({name: "confirm", label: `Type the cluster's name, ${ctx.name}, to confirm`,
        control: input})],
    canConfirm: () => input.value === ctx.name,
    onConfirm,
  });
}

async function reset(ctx) {
  const done = await typedName(ctx, {
    title: `Reset ${ctx.name}?`, testid: "reset-dialog", confirmLabel: "Reset",
    text: ["Every node is reset (kubeadm reset, what provisioning installed is removed), " +
      "kubesalt's agent removes itself, and every installer credential is revoked.",
    "The cluster and its settings stay; enroll nodes again afterwards."],
    onConfirm: () => api.call("cluster.reset", {name: ctx.name, confirm: true}),
  });
  if (done) {
    notify(`Reset of ${ctx.name} started.`);
    ctx.reload().catch(() => {});
    ctx.goto("operation");
  }
}

async function remove(ctx) {
  const enrolled = ctx.cluster().nodes?.total ?? 0;
  // Without nodes the cluster goes at once; with nodes only when the operator asks for them
  // to be reset first (force), which runs as an operation like cluster.reset.
  const force = h("input", {type: "checkbox", "data-testid": "delete-dialog-force"});
  const extra = enrolled ? [field({name: "force", control: force,
    label: `Reset its ${enrolled} node${enrolled === 1 ? "" : "s"} first (kubesalt's agent ` +
      "removed, keys and records deleted), then delete it"})] : [];
  const done = await typedName(ctx, {
    title: `Delete ${ctx.name}?`, testid: "delete-dialog", confirmLabel: "Delete cluster",
    text: ["The cluster's record, its installer credentials and its secrets are deleted.",
      "A cluster with nodes or a running operation is refused, with what to do first."],
    extra,
    onConfirm: () => api.call("cluster.delete", force.checked ?
      {name: ctx.name, force: true, confirm: true} : {name: ctx.name}),
  });
  if (!done) return;
  if (done.operation) {
    notify(`Deletion of ${ctx.name} started: its nodes are reset first.`);
    ctx.reload().catch(() => {});
    ctx.goto("operation");
    return;
  }
  notify(`Cluster ${ctx.name} deleted.`);
  location.hash = "#/clusters";
}

/** The buttons, for an operator only (a viewer's page has none in its DOM). */
export function actionBar(ctx) {
  const cluster = ctx.cluster();
  const button = (testid, label, handler, cls = "secondary") => h("button", {type: "button",
    class: cls, "data-testid": testid, onclick: () => handler(ctx)}, label);
  return [
    button("action-provision", "Provision", provision, "primary"),
    button("action-upgrade", "Upgrade", upgrade),
    cluster.reset_enabled ? button("action-reset", "Reset", reset, "danger") : null,
    button("action-delete", "Delete", remove, "danger"),
  ].filter(Boolean);
}
