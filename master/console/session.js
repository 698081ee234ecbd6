// The login session in sessionStorage: token, user, role and expiry; and the one message the
// login page shows after a redirect (expiry, logout).

const KEY = "kubesalt.session";
const FLASH = "kubesalt.flash";
export const EXPIRED_MESSAGE = "Your session has expired; log in again.";

export function get() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function save(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clear() {
  sessionStorage.removeItem(KEY);
}

export function expired(session = get()) {
  return Boolean(session) && Date.now() / 1000 >= Number(session.expire);
}

export function isOperator() {
  const session = get();
  return Boolean(session) && session.role === "operator";
}

export function setFlash(message) {
  sessionStorage.setItem(FLASH, message);
}

export function takeFlash() {
  const message = sessionStorage.getItem(FLASH);
  sessionStorage.removeItem(FLASH);
  return message;
}

function allows(pattern, fun) {
  if (pattern === fun) return true;
  try {
    return new RegExp(`^${pattern}$`).test(fun);
  } catch {
    return false;
  }
}

/** Salt's ACL (e.g. [{"@runner": ["cluster.create", ...]}]) names cluster.create: operator. */
export function roleFromPerms(perms) {
  const names = [];
  const walk = (value) => {
    if (typeof value === "string") names.push(value);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === "object") Object.values(value).forEach(walk);
  };
  walk(perms);
  return names.some((name) => allows(name, "cluster.create")) ? "operator" : "viewer";
}
