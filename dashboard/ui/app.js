// The page reads the JSON API every second and rebuilds its tables with
// textContent only, so nothing the API returns is ever parsed as markup.
// URLs are relative: the page works wherever the handler is mounted.
"use strict";

const states = ["pending", "scheduled", "running", "retrying", "done", "dead", "cancelled"];
let deadQueue = "";

// tbody empties a table's body and returns it.
function tbody(table) {
  const body = document.querySelector(table + " tbody");
  body.replaceChildren();
  return body;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function button(td, label, onclick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", onclick);
  td.appendChild(b);
}

async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(path + ": " + res.status);
  return res.json();
}

async function post(path, body, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  const res = await fetch(path, { method: "POST", body: body ? JSON.stringify(body) : undefined });
  if (!res.ok) {
    const e = await res.json().catch(() => ({ error: res.statusText }));
    window.alert(e.error);
  }
  refresh();
}

function renderQueues(queues) {
  const body = tbody("#queues");
  for (const q of queues) {
    const row = body.insertRow();
    row.dataset.queue = q.queue;
    cell(row, q.queue + (q.paused ? " (paused)" : ""), q.paused ? "paused" : "");
    for (const s of states) cell(row, String(q.counts[s] || 0)).dataset.state = s;
    cell(row, q.bound ? q.depth + " / " + q.bound + " (" + Math.round(100 * q.depth / q.bound) + "%)" : String(q.depth));
    const actions = row.insertCell();
    const qp = encodeURIComponent(q.queue);
    if (q.paused) button(actions, "Resume", () => post("api/queues/" + qp + "/resume"));
    else button(actions, "Pause", () => post("api/queues/" + qp + "/pause"));
    button(actions, "Dead letters", () => { deadQueue = q.queue; refresh(); });
  }
}

function renderDead(page) {
  document.getElementById("dead-queue").textContent = deadQueue ? "in " + deadQueue : "(pick a queue)";
  const body = tbody("#dead");
  for (const j of page.jobs) {
    const row = body.insertRow();
    row.dataset.job = j.id;
    cell(row, j.id);
    cell(row, j.task);
    cell(row, String((j.attempts || []).length));
    const last = (j.attempts || []).at(-1);
    cell(row, last ? last.error : "");
    const actions = row.insertCell();
    const id = encodeURIComponent(j.id);
    button(actions, "Replay", () => post("api/jobs/" + id + "/replay"));
    button(actions, "Delete", () => post("api/jobs/" + id + "/delete", null, "Delete job " + j.id + " for good?"));
  }
  if (deadQueue && page.jobs.length) {
    const row = body.insertRow();
    cell(row, "");
    const td = row.insertCell();
    button(td, "Replay all", () => post("api/queues/" + encodeURIComponent(deadQueue) + "/replay", null,
      "Replay every dead job of " + deadQueue + "?"));
  }
}

function renderWorkers(workers) {
  const body = tbody("#workers");
  for (const w of workers) {
    const row = body.insertRow();
    cell(row, w.id);
    cell(row, w.host);
    cell(row, String(w.pid));
    cell(row, (w.queues || []).join(", "));
    cell(row, String(w.running));
    cell(row, String(w.concurrency));
    cell(row, (w.breakers || []).map(b => b.name + ": " + b.state).join(", "));
    cell(row, new Date(w.heartbeat).toLocaleTimeString());
  }
}

// chart draws lines of points over the last hour, scaled to the highest.
function chart(name, title, points, lines) {
  const ns = "http://www.w3.org/2000/svg", w = 360, h = 80;
  const end = Date.now(), start = end - 3600e3;
  const top = Math.max(1, ...points.flatMap(p => lines.map(([key]) => p[key])));
  const div = document.createElement("div");
  div.className = "chart";
  div.dataset.chart = name;
  const head = document.createElement("div");
  head.textContent = title + " (peak " + top.toFixed(1) + ")";
  div.appendChild(head);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  for (const [key, color] of lines) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", color);
    line.setAttribute("points", points.map(p =>
      ((new Date(p.at) - start) / 3600e3 * w).toFixed(1) + "," + (h - 2 - p[key] / top * (h - 4)).toFixed(1)).join(" "));
    svg.appendChild(line);
  }
  div.appendChild(svg);
  return div;
}

// renderCharts draws, per queue, the done and dead rates of the last hour,
// and the slowest worker's pickup latency.
function renderCharts(history) {
  const box = document.getElementById("charts");
  box.replaceChildren();
  const byQueue = new Map();
  for (const p of history.rates) {
    if (!byQueue.has(p.queue)) byQueue.set(p.queue, []);
    byQueue.get(p.queue).push(p);
  }
  for (const [queue, ps] of byQueue) {
    const last = ps[ps.length - 1];
    box.appendChild(chart("queue-" + queue, queue + ": " + last.done_per_s.toFixed(1) + " done/s, " +
      last.dead_per_s.toFixed(1) + " dead/s", ps, [["done_per_s", "#2a7"], ["dead_per_s", "#c33"]]));
  }
  if (history.pickup.length) {
    const last = history.pickup[history.pickup.length - 1];
    box.appendChild(chart("pickup", "pickup: p50 " + last.p50_ms.toFixed(1) + " ms, p99 " + last.p99_ms.toFixed(1) + " ms",
      history.pickup, [["p50_ms", "#36c"], ["p99_ms", "#c80"]]));
  }
}

function time(t) {
  return t ? new Date(t).toLocaleString() : "";
}

function renderSchedules(entries) {
  const body = tbody("#schedules");
  for (const e of entries) {
    const row = body.insertRow();
    row.dataset.entry = e.name;
    cell(row, e.name + (e.paused ? " (paused)" : ""), e.paused ? "paused" : "");
    cell(row, e.schedule);
    cell(row, e.task);
    cell(row, time(e.last));
    cell(row, time(e.next));
    const actions = row.insertCell();
    const n = encodeURIComponent(e.name);
    if (e.paused) button(actions, "Resume", () => post("api/schedules/" + n + "/resume"));
    else button(actions, "Pause", () => post("api/schedules/" + n + "/pause"));
  }
}

// Jobs: a search by state, queue and text; a click shows a job in full.
let detailID = "";

let nextCursor = "";

// search lists the jobs that match the form; "more" shows the next page.
async function search(ev) {
  if (ev && ev.preventDefault) ev.preventDefault();
  const params = new URLSearchParams({ state: document.getElementById("job-state").value, limit: "100" });
  const q = document.getElementById("job-queue").value.trim();
  const text = document.getElementById("job-text").value.trim();
  if (q) params.set("queue", q);
  if (text) params.set("q", text);
  const body = document.querySelector("#jobs tbody");
  if (ev !== "more") nextCursor = "";
  if (nextCursor) params.set("cursor", nextCursor);
  try {
    const page = await getJSON("api/jobs?" + params);
    body.replaceChildren();
    nextCursor = page.next || "";
    document.getElementById("jobs-more").hidden = !nextCursor;
    for (const j of page.jobs) {
      const row = body.insertRow();
      row.dataset.job = j.id;
      cell(row, j.id);
      cell(row, j.queue);
      cell(row, j.task);
      cell(row, j.state);
      cell(row, String((j.attempts || []).length));
      cell(row, time(j.created_at));
      row.addEventListener("click", () => { detailID = j.id; showDetail(); });
    }
  } catch (e) {
    window.alert(String(e));
  }
}

async function showDetail() {
  if (!detailID) return;
  const box = document.getElementById("detail");
  let j;
  try {
    j = await getJSON("api/jobs/" + encodeURIComponent(detailID));
  } catch (e) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  document.getElementById("detail-id").textContent = j.id;
  document.getElementById("detail-state").textContent = "(" + j.state + ")";
  document.getElementById("detail-meta").textContent = j.task + " in " + j.queue + ", " + j.deliveries +
    " deliveries, created " + time(j.created_at) + (j.finished_at ? ", finished " + time(j.finished_at) : "") +
    (j.headers ? ", headers " + JSON.stringify(j.headers) : "");
  const args = document.getElementById("detail-args");
  if (document.activeElement !== args) args.value = j.args ? JSON.stringify(j.args, null, 2) : "";
  const attempts = tbody("#detail-attempts");
  for (const a of j.attempts || []) {
    const row = attempts.insertRow();
    cell(row, String(a.attempt));
    cell(row, time(a.at));
    cell(row, a.error + (a.stack ? "\n" + a.stack : ""));
  }
  document.getElementById("detail-result").textContent = j.result ? "result: " + JSON.stringify(j.result) : "";
  const finished = ["dead", "cancelled"].includes(j.state);
  document.getElementById("detail-replay").disabled = !finished;
  document.getElementById("detail-cancel").disabled = !["pending", "scheduled", "retrying", "running"].includes(j.state);
  document.getElementById("detail-delete").disabled = j.state === "running";
}

function detailAction(verb, confirmText) {
  return () => {
    const id = encodeURIComponent(detailID);
    let body = null;
    if (verb === "replay") {
      try {
        const text = document.getElementById("detail-args").value.trim();
        body = text ? { args: JSON.parse(text) } : null;
      } catch (e) {
        window.alert("the arguments are not JSON: " + e.message);
        return;
      }
    }
    post("api/jobs/" + id + "/" + verb, body, confirmText);
  };
}

function setupJobs() {
  const sel = document.getElementById("job-state");
  for (const s of states) {
    const o = document.createElement("option");
    o.value = o.textContent = s;
    sel.appendChild(o);
  }
  sel.value = "dead";
  document.getElementById("search").addEventListener("submit", search);
  document.getElementById("jobs-more").addEventListener("click", () => search("more"));
  document.getElementById("detail-replay").addEventListener("click", detailAction("replay", "Replay this job?"));
  document.getElementById("detail-cancel").addEventListener("click", detailAction("cancel", "Cancel this job?"));
  document.getElementById("detail-delete").addEventListener("click", detailAction("delete", "Delete this job for good?"));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    renderQueues(await getJSON("api/queues"));
    renderDead(deadQueue
      ? await getJSON("api/jobs?state=dead&limit=100&queue=" + encodeURIComponent(deadQueue))
      : { jobs: [] });
    renderWorkers(await getJSON("api/workers").catch(() => []));
    renderSchedules(await getJSON("api/schedules").catch(() => []));
    renderCharts(await getJSON("api/history"));
    await showDetail();
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (e) {
    status.textContent = String(e);
    status.className = "error";
  }
}

setupJobs();
refresh();
setInterval(refresh, 1000);
