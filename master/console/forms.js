// Labelled form fields and the API's errors [{field, message}] shown beside the field they
// name (a dotted field such as "labels.env" falls back to "labels"); the rest in a form-level
// box.

import {h} from "./dom.js";

let counter = 0;

/**
 * A labelled field. `name` is the API's field name (e.g. "pod_subnet", "proxy.http");
 * `control` is the input/select/textarea (given an id here when it has none).
 */
export function field({name, label, control, hint, fields = [name], testid}) {
  if (!control.id) control.id = `f-${(name || "x").replace(/[^A-Za-z0-9_-]/g, "-")}-${++counter}`;
  const id = control.id;
  const errorEl = h("p", {class: "field-error", id: `${id}-error`, hidden: true,
    "data-testid": testid || `error-${name}`});
  const describedBy = [];
  let hintEl = null;
  if (hint) {
    hintEl = h("p", {class: "hint", id: `${id}-hint`}, hint);
    describedBy.push(hintEl.id);
  }
  describedBy.push(errorEl.id);
  control.setAttribute("aria-describedby", describedBy.join(" "));
  if (name && !control.name) control.name = name;
  const isCheck = control.type === "checkbox" || control.type === "radio";
  const labelEl = h("label", {for: id}, label);
  return h("div", {class: `field${isCheck ? " check" : ""}`, "data-field": fields.join(" ")},
    isCheck ? [control, labelEl] : [labelEl, control], hintEl, errorEl);
}

/** A group of related controls (radios, checkboxes) with a legend and one error slot. */
export function group({legend, fields, children, testid}) {
  const errorEl = h("p", {class: "field-error", id: `g-${++counter}-error`, hidden: true,
    "data-testid": testid || `error-${fields[0]}`});
  const fieldset = h("fieldset", {class: "field group", "data-field": fields.join(" "),
    "aria-describedby": errorEl.id}, h("legend", {}, legend), children, errorEl);
  return fieldset;
}

export function formError(testid = "form-error") {
  return h("div", {class: "form-error", role: "alert", hidden: true, "data-testid": testid});
}

export function clearErrors(form) {
  form.querySelectorAll(".field-error").forEach((el) => {
    el.hidden = true;
    el.replaceChildren();
  });
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  form.querySelectorAll(".form-error").forEach((el) => {
    el.hidden = true;
    el.replaceChildren();
  });
}

function findField(form, name) {
  const wrappers = [...form.querySelectorAll("[data-field]")];
  let candidate = String(name || "");
  while (candidate) {
    const found = wrappers.find((w) => w.dataset.field.split(" ").includes(candidate));
    if (found) return found;
    const dot = candidate.lastIndexOf(".");
    if (dot < 0) break;
    candidate = candidate.slice(0, dot);
  }
  return null;
}

/** Show each error beside its field; those no field claims go to the form's error box. */
export function showErrors(form, errors, fallbackMessage) {
  clearErrors(form);
  const box = form.querySelector(".form-error");
  const general = [];
  let first = null;
  for (const error of errors || []) {
    const wrapper = findField(form, error.field);
    if (!wrapper) {
      general.push(error.field ? `${error.field}: ${error.message}` : error.message);
      continue;
    }
    const slot = wrapper.querySelector(":scope > .field-error");
    slot.hidden = false;
    slot.appendChild(h("span", {}, error.message));
    wrapper.querySelectorAll("input, select, textarea").forEach((c) => {
      c.setAttribute("aria-invalid", "true");
    });
    first = first || wrapper.querySelector("input, select, textarea");
  }
  if (!errors || !errors.length) general.push(fallbackMessage || "The request failed.");
  if (general.length && box) {
    box.hidden = false;
    box.replaceChildren(...general.map((m) => h("p", {}, m)));
  }
  if (first) first.focus();
  else if (box && general.length) box.focus?.();
}

/** "key=value" lines to an object; throws [{field, message}] for a malformed line. */
export function parseLabels(text, fieldName = "labels") {
  const labels = {};
  const errors = [];
  String(text || "").split(/\n/).map((l) => l.trim()).filter(Boolean).forEach((line) => {
    const eq = line.indexOf("=");
    if (eq <= 0) {
      errors.push({field: fieldName, message: `"${line}" is not key=value`});
      return;
    }
    labels[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  });
  if (errors.length) throw errors;
  return labels;
}

export function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join("\n");
}

export function select(options, selected, attrs = {}) {
  return h("select", attrs, options.map((o) => {
    const [value, text, extra] = Array.isArray(o) ? o : [o, o, {}];
    return h("option", {value, selected: String(value) === String(selected), ...(extra || {})},
      text);
  }));
}
