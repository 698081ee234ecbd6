// New cluster: every cluster.create option, pre-filled from cluster.options' defaults; proxy,
// CNI and subnets under "Advanced". Only what differs from the defaults is sent, and the
// API's refusals are shown beside their fields (nothing is created then).

import * as api from "../api.js";
import {clear, h} from "../dom.js";
import {field, formError, group, parseLabels, select, showErrors, clearErrors}
  from "../forms.js";
import {errorBox, notify} from "../notice.js";

// Used only when the controller cannot tell (an older controller without cluster.options).
const FALLBACK = {
  k8s_versions: [], os: [], blueprints: {}, cni: ["calico", "cilium"],
  types: [
    {ha: false, dedicated_master: false, type: "converged-single-master",
      description: "1 node: master and worker in one"},
    {ha: false, dedicated_master: true, type: "dedicated-single-master",
      description: "1 master + 1 worker"},
    {ha: true, dedicated_master: false, type: "converged-multi-master",
      description: "3 masters that also run workloads"},
    {ha: true, dedicated_master: true, type: "dedicated-multi-master",
      description: "3 masters + at least 1 worker"},
  ],
  defaults: {k8s_version: "", os: "ubuntu-22.04", blueprint: "default-upstream",
    blueprint_version: "", storage: "", location: "", labels: {}, auto_approve: false, ha: false,
    dedicated_master: false, installer_ttl_days: 365, proxy: null, cni: "calico",
    pod_subnet: "10.244.0.0/16", service_subnet: "10.96.0.0/12", reset_enabled: false},
};

function nodesText(required) {
  if (required === null || required === undefined) return "";
  if (typeof required !== "object") return `${required} node(s)`;
  const parts = [`${required.masters} master${required.masters === 1 ? "" : "s"}`];
  if (required.dedicated_workers) parts.push(`${required.dedicated_workers} dedicated worker`);
  return `${required.total ?? ""} node(s): ${parts.join(" + ")}`;
}

function choice(id, values, selected, testid) {
  if (!values || !values.length) {
    return h("input", {type: "text", id, value: selected ?? "", "data-testid": testid});
  }
  return select(values, selected, {id, "data-testid": testid});
}

function text(id, value, attrs = {}) {
  return h("input", {type: "text", id, value: value ?? "", "data-testid": id, ...attrs});
}

function check(id, checked) {
  return h("input", {type: "checkbox", id, checked: Boolean(checked), "data-testid": id});
}

export function mount(main) {
  const status = h("div");
  main.append(h("h1", {tabindex: "-1"}, "New cluster"),
    h("p", {}, h("a", {href: "#/clusters"}, "← Clusters")), status);
  api.call("cluster.options").catch((err) => {
    if (err instanceof api.SessionExpired) throw err;
    clear(status, h("p", {class: "hint"},
      "The controller did not list its options; the fields below hold the documented " +
      "defaults."));
    return FALLBACK;
  }).then((options) => main.append(build(options))).catch((err) => {
    clear(status, errorBox(err) || "");
  });
  return null;
}

function build(options) {
  const d = {...FALLBACK.defaults, ...(options.defaults || {})};
  const blueprints = options.blueprints || {};
  const ctl = {
    name: text("nc-name", "", {required: true, autocomplete: "off"}),
    k8s_version: choice("nc-k8s_version", options.k8s_versions,
      d.k8s_version || options.default_k8s_version, "nc-k8s_version"),
    os: choice("nc-os", options.os, d.os || options.default_os, "nc-os"),
    blueprint: choice("nc-blueprint", Object.keys(blueprints), d.blueprint, "nc-blueprint"),
    blueprint_version: h("select", {id: "nc-blueprint_version",
      "data-testid": "nc-blueprint_version"}),
    storage: h("select", {id: "nc-storage", "data-testid": "nc-storage"}),
    location: text("nc-location", d.location),
    labels: h("textarea", {id: "nc-labels", rows: 3, "data-testid": "nc-labels",
      placeholder: "env=prod"}),
    auto_approve: check("nc-auto_approve", d.auto_approve),
    reset_enabled: check("nc-reset_enabled", d.reset_enabled),
    installer_ttl_days: h("input", {type: "number", id: "nc-installer_ttl_days", min: 1,
      max: 36500, value: d.installer_ttl_days ?? "", "data-testid": "nc-installer_ttl_days"}),
    "proxy.http": text("nc-proxy-http", d.proxy?.http, {placeholder: "http://proxy:3128"}),
    "proxy.https": text("nc-proxy-https", d.proxy?.https, {placeholder: "http://proxy:3128"}),
    "proxy.no_proxy": text("nc-proxy-no_proxy", d.proxy?.no_proxy,
      {placeholder: "10.0.0.0/8,.svc"}),
    "proxy.root_ca": h("textarea", {id: "nc-proxy-root_ca", rows: 3,
      "data-testid": "nc-proxy-root_ca", placeholder: "-----BEGIN CERTIFICATE-----"}),
    cni: choice("nc-cni", options.cni, d.cni, "nc-cni"),
    pod_subnet: text("nc-pod_subnet", d.pod_subnet),
    service_subnet: text("nc-service_subnet", d.service_subnet),
  };
  ctl.labels.value = Object.entries(d.labels || {}).map(([k, v]) => `${k}=${v}`).join("\n");
  ctl["proxy.root_ca"].value = d.proxy?.root_ca || "";

  const fillBlueprint = () => {
    const bp = blueprints[ctl.blueprint.value] || {};
    const versions = bp.versions || [];
    const wanted = ctl.blueprint.value === d.blueprint && d.blueprint_version
      ? d.blueprint_version : bp.default_version;
    clear(ctl.blueprint_version, ...(versions.length ? versions : [""]).map((v) =>
      h("option", {value: v, selected: v === wanted}, v || "newest")));
    const storage = Array.isArray(bp.storage) ? bp.storage : [bp.storage].filter(Boolean);
    clear(ctl.storage, h("option", {value: ""},
      storage.length ? `the blueprint's (${storage.join(", ")})` : "none (the blueprint's)"),
    ...storage.map((s) => h("option", {value: s}, s)));
  };
  ctl.blueprint.addEventListener("change", fillBlueprint);
  fillBlueprint();

  const types = options.types && options.types.length ? options.types : FALLBACK.types;
  const radios = types.map((t, i) => {
    const id = `nc-type-${i}`;
    const input = h("input", {type: "radio", name: "type", id, value: String(i),
      checked: Boolean(t.ha) === Boolean(d.ha) &&
        Boolean(t.dedicated_master) === Boolean(d.dedicated_master),
      "data-testid": `nc-type-${t.type}`, "aria-describedby": `${id}-desc`});
    return h("div", {class: "type-choice"}, input,
      h("label", {for: id}, h("strong", {}, t.type)),
      h("p", {class: "hint", id: `${id}-desc`},
        [t.description, nodesText(t.nodes_required)].filter(Boolean).join(" · ")));
  });

  const f = (name, label, hint) => field({name, label, control: ctl[name], hint});
  const box = formError("create-error");
  const submit = h("button", {type: "submit", class: "primary", "data-testid": "create-submit"},
    "Create cluster");
  const form = h("form", {class: "cluster-form", novalidate: true, "data-testid": "new-form"},
    f("name", "Name", "Lower-case letters, digits and dashes"),
    group({legend: "Cluster type", fields: ["type", "ha", "dedicated_master"], children: radios}),
    h("div", {class: "grid"},
      f("k8s_version", "Kubernetes version"),
      f("os", "Operating system"),
      f("blueprint", "Blueprint"),
      f("blueprint_version", "Blueprint version"),
      f("storage", "Storage", "default-upstream manages rook-ceph; minimal has none"),
      f("installer_ttl_days", "Installer credentials valid (days)", "1 to 36500")),
    f("location", "Location", "One line, e.g. store-42"),
    f("labels", "Labels", "One key=value per line"),
    f("auto_approve", "Approve nodes with valid credentials automatically"),
    f("reset_enabled", "Allow reset of this cluster"),
    h("details", {class: "advanced", "data-testid": "advanced"},
      h("summary", {}, "Advanced: proxy, CNI and subnets"),
      h("fieldset", {class: "field", "data-field": "proxy"},
        h("legend", {}, "Proxy (cannot change later)"),
        f("proxy.http", "HTTP proxy"),
        f("proxy.https", "HTTPS proxy"),
        f("proxy.no_proxy", "No proxy for"),
        f("proxy.root_ca", "Root CA of a TLS-terminating proxy (PEM)"),
        h("p", {class: "field-error", hidden: true, "data-testid": "error-proxy"})),
      h("div", {class: "grid"},
        f("cni", "CNI"),
        f("pod_subnet", "Pod subnet"),
        f("service_subnet", "Service subnet"))),
    box, h("div", {class: "form-buttons"}, submit));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    let body;
    try {
      body = payload(ctl, types, form, d);
    } catch (errors) {
      openAdvancedFor(form, errors);
      showErrors(form, errors);
      return;
    }
    submit.disabled = true;
    try {
      const created = await api.call("cluster.create", body);
      notify(`Cluster ${created.name || body.name} created.`);
      location.hash = `#/clusters/${encodeURIComponent(created.name || body.name)}/install`;
    } catch (err) {
      if (err instanceof api.SessionExpired) return;
      openAdvancedFor(form, err.errors || []);
      showErrors(form, err.errors, err.message);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function openAdvancedFor(form, errors) {
  const advanced = form.querySelector("details.advanced");
  const inside = ["proxy", "cni", "pod_subnet", "service_subnet"];
  if (errors.some((e) => inside.includes(String(e.field || "").split(".")[0]))) {
    advanced.open = true;
  }
}

function payload(ctl, types, form, d) {
  const body = {name: ctl.name.value.trim()};
  const chosen = types[Number(form.querySelector("input[name=type]:checked")?.value ?? 0)];
  if (Boolean(chosen.ha) !== Boolean(d.ha)) body.ha = Boolean(chosen.ha);
  if (Boolean(chosen.dedicated_master) !== Boolean(d.dedicated_master)) {
    body.dedicated_master = Boolean(chosen.dedicated_master);
  }
  for (const key of ["k8s_version", "os", "blueprint", "blueprint_version", "location", "cni",
    "pod_subnet", "service_subnet"]) {
    const value = ctl[key].value.trim();
    if (value !== String(d[key] ?? "") && value !== "") body[key] = value;
    else if (key === "location" && value !== String(d.location ?? "")) body[key] = value;
  }
  if (ctl.storage.value) body.storage = ctl.storage.value;
  for (const key of ["auto_approve", "reset_enabled"]) {
    if (ctl[key].checked !== Boolean(d[key])) body[key] = ctl[key].checked;
  }
  const ttl = ctl.installer_ttl_days.value.trim();
  if (ttl !== String(d.installer_ttl_days ?? "")) body.installer_ttl_days = /^\d+$/.test(ttl)
    ? Number(ttl) : ttl;
  const labels = parseLabels(ctl.labels.value);
  if (Object.keys(labels).length) body.labels = labels;
  const proxy = {};
  for (const key of ["http", "https", "no_proxy", "root_ca"]) {
    const value = ctl[`proxy.${key}`].value.trim();
    if (value) proxy[key] = value;
  }
  if (Object.keys(proxy).length) body.proxy = proxy;
  return body;
}
