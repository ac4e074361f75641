// The page reads the JSON API every second and rebuilds its tables with
// textContent only, so nothing the API returns is ever parsed as markup.
// URLs are relative: the page works wherever the handler is mounted.
"use strict";

const states = ["pending", "scheduled", "running", "retrying", "done", "dead", "cancelled"];
let deadQueue = "";

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
  const body = document.querySelector("#queues tbody");
  body.replaceChildren();
  for (const q of queues) {
    const row = body.insertRow();
    row.dataset.queue = q.queue;
    cell(row, q.queue + (q.paused ? " (paused)" : ""), q.paused ? "paused" : "");
    for (const s of states) cell(row, String(q.counts[s] || 0)).dataset.state = s;
    cell(row, String(q.depth));
    const actions = row.insertCell();
    const qp = encodeURIComponent(q.queue);
    if (q.paused) button(actions, "Resume", () => post("api/queues/" + qp + "/resume"));
    else button(actions, "Pause", () => post("api/queues/" + qp + "/pause"));
    button(actions, "Dead letters", () => { deadQueue = q.queue; refresh(); });
  }
}

function renderDead(page) {
  document.getElementById("dead-queue").textContent = deadQueue ? "in " + deadQueue : "(pick a queue)";
  const body = document.querySelector("#dead tbody");
  body.replaceChildren();
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
  const body = document.querySelector("#workers tbody");
  body.replaceChildren();
  for (const w of workers) {
    const row = body.insertRow();
    cell(row, w.id);
    cell(row, w.host);
    cell(row, String(w.pid));
    cell(row, (w.queues || []).join(", "));
    cell(row, String(w.running));
    cell(row, String(w.concurrency));
    cell(row, (w.breakers || []).map(b => b.Name + ": " + b.State).join(", "));
    cell(row, new Date(w.heartbeat).toLocaleTimeString());
  }
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    renderQueues(await getJSON("api/queues"));
    renderDead(deadQueue
      ? await getJSON("api/jobs?state=dead&limit=100&queue=" + encodeURIComponent(deadQueue))
      : { jobs: [] });
    renderWorkers(await getJSON("api/workers").catch(() => []));
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (e) {
    status.textContent = String(e);
    status.className = "error";
  }
}

refresh();
setInterval(refresh, 1000);
