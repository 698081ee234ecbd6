// The console's entry point: hash routing (#/login, #/clusters, #/new-cluster,
// #/clusters/NAME/TAB, #/artifacts), the login gate and session expiry, the top bar.

import * as api from "./api.js";
import * as session from "./session.js";
import {clear, h} from "./dom.js";
import {reportError} from "./notice.js";
import * as loginPage from "./pages/login.js";
import * as clustersPage from "./pages/clusters.js";
import * as newClusterPage from "./pages/cluster-new.js";
import * as clusterPage from "./pages/cluster.js";
import * as artifactsPage from "./pages/artifacts.js";

let current = null; // {key, view}
let expiryTimer = null;

export function parse(hash) {
  const raw = hash.replace(/^#/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return {parts, params: new URLSearchParams(query || ""), hash};
}

function resolve(route) {
  const [first, name] = route.parts;
  if (first === "login") return {key: "login", page: loginPage, nav: null, open: true};
  if (first === "clusters" && name) {
    return {key: `cluster:${name}`, page: clusterPage, nav: "clusters"};
  }
  if (first === "clusters") return {key: "clusters", page: clustersPage, nav: "clusters"};
  if (first === "new-cluster") return {key: "new-cluster", page: newClusterPage, nav: "clusters"};
  if (first === "artifacts") return {key: "artifacts", page: artifactsPage, nav: "artifacts"};
  return null;
}

function scheduleExpiry() {
  clearTimeout(expiryTimer);
  const now = session.get();
  if (!now) return;
  const ms = Math.max(0, Number(now.expire) * 1000 - Date.now());
  expiryTimer = setTimeout(() => api.expire(), Math.min(ms, 2 ** 31 - 1));
}

function topbar(target) {
  const now = session.get();
  const bar = document.getElementById("topbar");
  bar.hidden = !now || target.open;
  if (!now) return;
  document.getElementById("whoami").textContent = `${now.user} (${now.role})`;
  bar.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === target.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

function notFound(main, route) {
  clear(main, h("h1", {tabindex: "-1"}, "Not found"),
    h("p", {}, `Nothing lives at ${route.hash}. `, h("a", {href: "#/clusters"}, "Clusters")));
}

function route() {
  const hash = location.hash || "#/clusters";
  if (!hash.startsWith("#/")) return; // e.g. the skip link's #main
  const parsed = parse(hash);
  if (!parsed.parts.length) {
    location.replace("#/clusters");
    return;
  }
  const target = resolve(parsed) || {key: "notfound", page: null, nav: null};
  const now = session.get();
  if (!target.open && (!now || session.expired(now))) {
    if (now) api.expire();
    else location.replace("#/login");
    return;
  }
  scheduleExpiry();
  topbar(target);
  const main = document.getElementById("main");
  if (current && current.key === target.key && current.view && current.view.update) {
    current.view.update(parsed);
    return;
  }
  if (current && current.view && current.view.destroy) current.view.destroy();
  current = {key: target.key, view: null};
  if (!target.page) {
    notFound(main, parsed);
    return;
  }
  clear(main);
  try {
    current.view = target.page.mount(main, parsed) || null;
  } catch (err) {
    reportError(err);
  }
  const heading = main.querySelector("h1");
  if (heading && document.activeElement === document.body) heading.focus({preventScroll: true});
}

async function logout() {
  await api.logout();
  session.setFlash("You have logged out.");
  clearTimeout(expiryTimer);
  location.hash = "#/login";
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => {
  reportError(event.reason);
  event.preventDefault();
});
document.getElementById("logout").addEventListener("click", logout);
route();
