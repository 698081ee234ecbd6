// Configure an APPROVED node: roles, the network interface and storage devices, chosen from
// what the node itself reported (node.show facts). Refusals appear beside their fields.

import * as api from "../api.js";
import {h} from "../dom.js";
import {openDialog} from "../dialogs.js";
import {field, group} from "../forms.js";
import {reportError} from "../notice.js";

const ROLES = ["master", "worker", "storage"];

export async function configure(row) {
  let node;
  try {
    node = await api.call("node.show", {node: row.id});
  } catch (err) {
    reportError(err);
    return null;
  }
  const facts = node.facts || {};
  const current = node.config || {};
  const roleBoxes = ROLES.map((role) => h("input", {type: "checkbox", id: `cfg-role-${role}`,
    value: role, checked: (current.roles || []).includes(role),
    "data-testid": `cfg-role-${role}`}));
  const nics = facts.kubesalt_interfaces || [];
  const nic = h("select", {id: "cfg-interface", "data-testid": "cfg-interface"},
    h("option", {value: ""}, "choose…"),
    nics.map((n) => h("option", {value: n.name, selected: n.name === current.interface,
      disabled: !(n.ipv4 || []).length},
    `${n.name} (${(n.ipv4 || []).join(", ") || "no IPv4"})`)));
  const candidates = facts.kubesalt_storage_candidates || [];
  const disks = h("select", {id: "cfg-storage", multiple: true, size: Math.min(4,
    Math.max(2, candidates.length)), "data-testid": "cfg-storage"},
  candidates.map((d) => h("option", {value: d,
    selected: (current.storage_devices || []).includes(d)}, d)));
  const body = [
    h("p", {class: "hint"}, "In a converged cluster a master also runs workloads; a storage " +
      "node needs at least one unused disk."),
    group({legend: "Roles", fields: ["roles"], children: roleBoxes.map((box, i) =>
      h("div", {class: "check"}, box, h("label", {for: box.id}, ROLES[i])))}),
    field({name: "interface", label: "Network interface", control: nic}),
    field({name: "storage_devices", label: "Storage devices", control: disks,
      hint: candidates.length ? "Unused, unformatted disks the node reported"
        : "The node reported no unused disk"}),
  ];
  return openDialog({
    title: `Configure ${row.id}`, testid: "configure-dialog", confirmLabel: "Save",
    body,
    onConfirm: () => {
      const kwargs = {node: row.id,
        roles: roleBoxes.filter((b) => b.checked).map((b) => b.value).join(",")};
      if (nic.value) kwargs.interface = nic.value;
      const chosen = [...disks.selectedOptions].map((o) => o.value);
      if (chosen.length) kwargs.storage_devices = chosen.join(",");
      return api.call("node.configure", kwargs);
    },
  });
}
