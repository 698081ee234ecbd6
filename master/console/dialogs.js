// Confirmations and small forms in a modal <dialog>. The action runs on confirm; if it fails
// the dialog stays open with the error (beside its field when the API names one).

import {ApiError, SessionExpired} from "./api.js";
import {h} from "./dom.js";
import {formError, showErrors} from "./forms.js";

/**
 * openDialog({title, body, confirmLabel, danger, testid, onConfirm, canConfirm})
 * body: nodes inside the dialog's form; onConfirm(form) -> anything (closes) or throws.
 * canConfirm(form) -> bool keeps the confirm button disabled until true (re-checked on input).
 * Resolves with onConfirm's result, or null when cancelled.
 */
export function openDialog({title, body, confirmLabel = "OK", danger = false, testid = "dialog",
  onConfirm = () => true, canConfirm = null}) {
  return new Promise((resolve) => {
    const titleId = `dlg-title-${Date.now()}`;
    const confirm = h("button", {type: "submit", class: danger ? "danger" : "primary",
      "data-testid": `${testid}-confirm`}, confirmLabel);
    const cancel = h("button", {type: "button", class: "secondary",
      "data-testid": `${testid}-cancel`}, "Cancel");
    const box = formError(`${testid}-error`);
    const form = h("form", {method: "dialog", novalidate: true},
      h("h2", {id: titleId}, title), body, box,
      h("div", {class: "dialog-buttons"}, cancel, confirm));
    const dialog = h("dialog", {"aria-labelledby": titleId, "data-testid": testid}, form);
    let result = null;
    const refresh = () => {
      if (canConfirm) confirm.disabled = !canConfirm(form);
    };
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (confirm.disabled) return;
      confirm.disabled = true;
      confirm.setAttribute("aria-busy", "true");
      try {
        result = (await onConfirm(form)) ?? true;
        dialog.close();
      } catch (err) {
        if (err instanceof SessionExpired) {
          dialog.close();
          return;
        }
        if (Array.isArray(err)) showErrors(form, err);
        else showErrors(form, err instanceof ApiError ? err.errors : [], err.message);
      } finally {
        confirm.disabled = false;
        confirm.removeAttribute("aria-busy");
        refresh();
      }
    });
    document.body.appendChild(dialog);
    refresh();
    dialog.showModal();
  });
}

/** A yes/no confirmation with a sentence or two. */
export function confirmAction({title, text, confirmLabel, danger, testid, onConfirm}) {
  const body = (Array.isArray(text) ? text : [text]).map((t) => h("p", {}, t));
  return openDialog({title, body, confirmLabel, danger, testid, onConfirm});
}
