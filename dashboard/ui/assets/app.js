// The router: the hash names a view (#/queues/mail/dead), the nav lists
// the views that have an entry, and the current view refreshes itself
// every two seconds while the tab is visible, one refresh at a time.
import { api, el, toast, fill } from "./core.js";
import { views } from "./views.js";

const nav = document.getElementById("nav");
const main = document.getElementById("main");
const status = document.getElementById("status");
let current = null; // {view, key, mounted}
let busy = false;

// route parses the hash into a view and its arguments and query.
function route() {
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const id = parts.shift() || "overview";
  let view = views.find(v => v.id === id) || views[0];
  if (view.detail && parts.length) view = views.find(v => v.id === view.detail);
  return { view, args: parts, query: new URLSearchParams(query || "") };
}

function renderNav(active) {
  fill(nav, ...views.filter(v => v.nav).map(v =>
    el("a", { href: "#/" + v.id, class: v.id === active || v.detailOf === active ? "active" : null, "data-view": v.id }, v.title)));
}

async function show() {
  const r = route();
  const active = r.view.detailOf || r.view.id;
  renderNav(active);
  document.title = r.view.title + " · Conveyor";
  fill(main, );
  main.dataset.view = r.view.id;
  current = { r, mounted: r.view.mount(main, r.args, r.query) };
  await refresh();
}

async function refresh() {
  if (busy || !current) return;
  busy = true;
  const mine = current;
  try {
    await mine.mounted.refresh();
    if (mine === current) {
      status.textContent = "updated " + new Date().toLocaleTimeString();
      status.className = "";
    }
  } catch (e) {
    if (e.status !== 401) {
      status.textContent = e.message;
      status.className = "error";
    }
  } finally {
    busy = false;
  }
}

window.addEventListener("hashchange", show);
document.getElementById("logout").addEventListener("click", async () => {
  await fetch("logout", { method: "POST", credentials: "same-origin" });
  location.assign("login?out");
});
window.addEventListener("unhandledrejection", ev => toast(String(ev.reason && ev.reason.message || ev.reason), true));
const after = sessionStorage.getItem("conveyor.after");
if (after) {
  sessionStorage.removeItem("conveyor.after");
  if (!location.hash) location.hash = after;
}
api("api/session").then(s => {
  document.getElementById("logout").hidden = !s.auth;
  if (s.read_only) document.body.classList.add("read-only");
}).catch(() => {});
show();
setInterval(() => { if (!document.hidden) refresh(); }, 2000);
