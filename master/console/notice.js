// One line of news at the top of the page ("Cluster edge1 created."), and error boxes.

import {ApiError, SessionExpired} from "./api.js";
import {h} from "./dom.js";

let timer = null;

export function notify(message, kind = "ok") {
  const el = document.getElementById("notice");
  if (!el) return;
  el.className = `notice ${kind}`;
  el.textContent = message;
  clearTimeout(timer);
  timer = setTimeout(() => {
    el.textContent = "";
    el.className = "notice";
  }, 8000);
}

/** An error as a box for a page or panel; nothing for an ended session. */
export function errorBox(err, testid = "page-error") {
  if (err instanceof SessionExpired) return null;
  let message = err && err.message ? err.message : String(err);
  if (err instanceof ApiError && err.status === 403) message = err.message;
  return h("div", {class: "form-error", role: "alert", "data-testid": testid}, message);
}

export function reportError(err) {
  if (err instanceof SessionExpired) return;
  notify(err && err.message ? err.message : String(err), "error");
}
