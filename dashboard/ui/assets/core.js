// What every view shares: the API client, DOM builders, times and
// numbers. The DOM is built with textContent only, so nothing the API
// returns is ever parsed as markup. URLs are relative: the page works
// wherever the handler is mounted.

export const states = ["pending", "scheduled", "running", "retrying", "done", "dead", "cancelled"];
export const waiting = ["pending", "scheduled", "retrying", "running"];

// An error from the API, with its status.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api fetches path as JSON. A 401 sends the browser to the login page,
// which brings it back to this view.
export async function api(path, init = {}) {
  const headers = { Accept: "application/json", "X-Conveyor-UI": "1" };
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { ...init, headers, credentials: "same-origin" });
  if (res.status === 401) {
    sessionStorage.setItem("conveyor.after", location.hash);
    location.assign("login");
    throw new APIError(401, "signed out");
  }
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new APIError(res.status, body.error || res.statusText);
  return body;
}

// act posts an action after the operator confirms it (if confirmText),
// reports the outcome and returns the answer (null if not confirmed or
// failed).
export async function act(path, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return null;
  try {
    const res = await api(path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body) });
    return res || {};
  } catch (e) {
    toast(e.message, true);
    return null;
  }
}

// toast shows a message for a few seconds at the foot of the page.
export function toast(text, isError) {
  const box = document.getElementById("toast");
  const m = el("div", { class: isError ? "msg error" : "msg" }, text);
  box.appendChild(m);
  setTimeout(() => m.remove(), isError ? 8000 : 4000);
}

// el builds an element: attrs are attributes (on*: listeners, class,
// dataset via data-*), children strings or nodes (null skipped).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// fill replaces parent's children as el adds them: arrays flattened, null,
// undefined and false skipped (replaceChildren would print them as text).
export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false));
}

export function link(href, text, attrs) {
  return el("a", { href, ...attrs }, text);
}

export function button(label, onclick, attrs) {
  return el("button", { type: "button", onclick, ...attrs }, label);
}

// jobHref, queueHref: where a job's and a queue's pages are.
export const jobHref = id => "#/jobs/" + encodeURIComponent(id);
export const queueHref = (q, st) => "#/queues/" + encodeURIComponent(q) + (st ? "/" + st : "");

// ago says how long ago (or in how long) t is, in the largest unit that
// fits; "" for none.
export function ago(t) {
  if (!t) return "";
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  const a = Math.abs(s);
  let n, unit;
  if (a < 1) return "now";
  if (a < 90) [n, unit] = [a, "s"];
  else if (a < 90 * 60) [n, unit] = [a / 60, "min"];
  else if (a < 36 * 3600) [n, unit] = [a / 3600, "h"];
  else [n, unit] = [a / 86400, "d"];
  const txt = Math.round(n) + " " + unit;
  return s >= 0 ? txt + " ago" : "in " + txt;
}

// when is a relative time with the absolute one on hover.
export function when(t) {
  if (!t) return el("span", { class: "muted" }, "–");
  return el("time", { datetime: t, title: new Date(t).toLocaleString() }, ago(t));
}

export function num(n) {
  return (n || 0).toLocaleString();
}

// ms formats a latency in milliseconds.
export function ms(v) {
  if (!v) return "–";
  return v < 10 ? v.toFixed(1) + " ms" : v < 10000 ? Math.round(v) + " ms" : (v / 1000).toFixed(1) + " s";
}

export function badge(state) {
  return el("span", { class: "badge " + state }, state);
}

// table builds a table: cols are [header, cell(row) → node|string, opts]
// with opts.cls for the column's class and opts.sort for a sortable
// header (sort key); onSort(key) is called on a header click.
export function table(cols, rows, opts = {}) {
  const head = el("tr", null, cols.map(([h, , o = {}]) => {
    if (!o.sort || !opts.onSort) return el("th", { class: o.cls }, h);
    const cur = opts.sort || "";
    const mark = cur === o.sort ? " ▲" : cur === "-" + o.sort ? " ▼" : "";
    return el("th", { class: (o.cls || "") + " sortable", "data-sort": o.sort,
      onclick: () => opts.onSort(cur === "-" + o.sort ? o.sort : "-" + o.sort) }, h + mark);
  }));
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", opts.rowAttrs ? opts.rowAttrs(r) : null, cols.map(([, f, o = {}]) => el("td", { class: o.cls }, f(r))));
    body.appendChild(tr);
  }
  if (!rows.length) body.appendChild(el("tr", null, el("td", { colspan: cols.length, class: "empty" }, opts.empty || "nothing here")));
  return el("table", { id: opts.id, class: opts.cls }, el("thead", null, head), body);
}

// Selection keeps the IDs ticked in a job table across refreshes.
export class Selection {
  constructor() {
    this.ids = new Set();
  }
  box(id, onchange) {
    return el("input", { type: "checkbox", "aria-label": "select " + id, checked: this.ids.has(id),
      onchange: ev => { ev.target.checked ? this.ids.add(id) : this.ids.delete(id); onchange && onchange(); } });
  }
  all(ids, onchange) {
    const on = ids.length > 0 && ids.every(id => this.ids.has(id));
    return el("input", { type: "checkbox", "aria-label": "select all", checked: on,
      onchange: ev => { for (const id of ids) ev.target.checked ? this.ids.add(id) : this.ids.delete(id); onchange && onchange(); } });
  }
  // keep drops the ticked IDs no longer shown.
  keep(ids) {
    const shown = new Set(ids);
    for (const id of this.ids) if (!shown.has(id)) this.ids.delete(id);
  }
}

// bulk runs action on the selected jobs and reports what happened.
export async function bulk(sel, action, confirmText) {
  const ids = [...sel.ids];
  if (!ids.length) return;
  const res = await act("api/jobs/bulk", { action, ids }, confirmText.replace("%d", ids.length));
  if (!res) return;
  const failed = Object.entries(res.errors || {});
  toast(action + ": " + res.changed + " of " + ids.length + " changed" +
    (failed.length ? "; " + failed.map(([id, why]) => id + ": " + why).join("; ") : ""), failed.length > 0);
  sel.ids.clear();
}

// pauseButton pauses or resumes queue q, as it is.
export function pauseButton(q) {
  const qp = encodeURIComponent(q.queue);
  return q.paused
    ? button("Resume", () => act("api/queues/" + qp + "/resume"), { "data-action": "resume" })
    : button("Pause", () => act("api/queues/" + qp + "/pause", undefined, "Pause queue " + q.queue + "? Workers stop taking its jobs."), { "data-action": "pause" });
}
