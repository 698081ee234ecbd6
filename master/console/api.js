// The REST API (salt-api behind kubesalt_api): runner calls with the session token in the
// X-Auth-Token header (never cookies), login, logout and installer downloads. A 401 or a
// passed expiry ends the session and goes back to the login page with a message.

import * as session from "./session.js";

export class ApiError extends Error {
  constructor(status, message, errors = []) {
    super(message);
    this.status = status;
    this.errors = errors;
  }
}

/** Thrown after the session ended; the page is already on its way to the login page. */
export class SessionExpired extends Error {}

export function expire(message = session.EXPIRED_MESSAGE) {
  session.clear();
  session.setFlash(message);
  if (location.hash !== "#/login") location.hash = "#/login";
  else window.dispatchEvent(new HashChangeEvent("hashchange"));
  return new SessionExpired(message);
}

function headers(withToken = true) {
  const out = {"Content-Type": "application/json", Accept: "application/json"};
  if (withToken) {
    const current = session.get();
    if (!current || session.expired(current)) throw expire();
    out["X-Auth-Token"] = current.token;
  }
  return out;
}

async function readJson(resp) {
  try {
    return await resp.json();
  } catch {
    return null;
  }
}

function refusal(result) {
  return result && typeof result === "object" && !Array.isArray(result) &&
    result.result === false && Array.isArray(result.errors);
}

async function failure(resp, data, withToken = true) {
  if (resp.status === 401 && withToken) return expire();
  let errors = [];
  if (data && Array.isArray(data.return)) {
    const refused = data.return.find(refusal);
    if (refused) errors = refused.errors;
  }
  let message = errors.map((e) => e.message).join("; ");
  if (!message && data && typeof data.return === "string") message = data.return;
  if (resp.status === 403) {
    message = `Your role may not do this${message ? ` (${message})` : ""}.`;
  }
  if (resp.status === 429) {
    const wait = resp.headers.get("Retry-After");
    message = `Too many failed logins; try again${wait ? ` in ${wait} s` : " later"}.`;
  }
  return new ApiError(resp.status, message || `The controller answered ${resp.status}.`, errors);
}

async function post(path, body, withToken = true) {
  const resp = await fetch(path, {
    method: "POST", headers: headers(withToken), body: JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
  const data = await readJson(resp);
  if (!resp.ok) throw await failure(resp, data, withToken);
  return data;
}

/** Several runner calls in one request (up to 10): their results, in order. */
export async function calls(list) {
  const body = list.map(([fun, kwargs]) => ({client: "runner", fun, ...(kwargs || {})}));
  const data = await post("/", body);
  const results = data.return || [];
  const refused = results.find(refusal);
  if (refused) {
    throw new ApiError(400, refused.errors.map((e) => e.message).join("; "), refused.errors);
  }
  return results;
}

/** One runner call: its result. */
export async function call(fun, kwargs = {}) {
  const [result] = await calls([[fun, kwargs]]);
  return result;
}

export async function login(username, password, eauth) {
  let data;
  try {
    data = await post("/login", {username, password, eauth}, false);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      throw new ApiError(401, "Wrong user name or password.");
    }
    throw err;
  }
  const answer = (data.return || [])[0] || {};
  const current = {
    token: answer.token, user: answer.user || username, eauth: answer.eauth || eauth,
    expire: answer.expire, role: session.roleFromPerms(answer.perms || []),
  };
  session.save(current);
  return current;
}

export async function logout() {
  const current = session.get();
  session.clear();
  if (!current) return;
  try {
    await fetch("/logout", {
      method: "POST", body: "{}", credentials: "omit", cache: "no-store",
      headers: {"Content-Type": "application/json", "X-Auth-Token": current.token},
    });
  } catch {
    // Logged out here either way; the token expires on the controller by itself.
  }
}

/** GET /installer/CLUSTER/FILE with the token, saved by the browser as FILE. */
export async function download(cluster, file) {
  const url = `/installer/${encodeURIComponent(cluster)}/${encodeURIComponent(file)}`;
  const hdrs = headers(true);
  delete hdrs["Content-Type"];
  hdrs.Accept = "*/*";
  const resp = await fetch(url, {headers: hdrs, credentials: "omit", cache: "no-store"});
  if (!resp.ok) throw await failure(resp, await readJson(resp));
  const blob = await resp.blob();
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = file;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}
