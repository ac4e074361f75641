// The views of jobs: the job list (filters, sort), one job, a queue's
// page (its jobs by state, bulk actions, its charts) and the dead letters.
import { api, act, el, link, button, when, ago, num, badge, table, states, waiting, jobHref, queueHref, Selection, bulk, toast, pauseButton, fill } from "./core.js";
import { activity } from "./charts.js";
import { workflowHref } from "./workflows.js";

const lastError = j => { const a = (j.attempts || []).at(-1); return a ? a.error : ""; };
const finishedOrDue = j => j.finished_at ? when(j.finished_at) : when(j.run_at);

// jobColumns are the columns of a job table; sel adds a tick box.
function jobColumns(sel, shown, redraw, opts = {}) {
  const cols = [];
  if (sel) cols.push([sel.all(shown, redraw), j => sel.box(j.id, redraw), { cls: "tick" }]);
  cols.push(["job", j => link(jobHref(j.id), j.id, { class: "mono" })]);
  if (!opts.noQueue) cols.push(["queue", j => link(queueHref(j.queue), j.queue), { sort: "queue" }]);
  cols.push(["task", j => j.task, { sort: "task" }]);
  if (!opts.noState) cols.push(["state", j => badge(j.state), { sort: "state" }]);
  cols.push(["attempts", j => num((j.attempts || []).length), { cls: "n", sort: "attempts" }]);
  if (opts.error) cols.push(["last error", j => el("span", { class: "err" }, lastError(j))]);
  cols.push(["created", j => when(j.created_at), { sort: "created_at" }]);
  cols.push(["due / finished", finishedOrDue, { sort: "finished_at" }]);
  return cols;
}

// bulkBar offers the actions that fit the state shown (all: every one).
function bulkBar(sel, state, after) {
  const n = sel.ids.size;
  const can = a => !state || (a === "replay" ? ["dead", "cancelled"].includes(state)
    : a === "cancel" ? waiting.includes(state) : state !== "running");
  const b = (a, label, confirmText) => can(a)
    ? button(label + (n ? " (" + n + ")" : ""), async () => { await bulk(sel, a, confirmText); after(); }, { disabled: !n, "data-bulk": a })
    : null;
  return el("div", { class: "bulk" },
    b("replay", "Replay selected", "Replay %d jobs?"),
    b("cancel", "Cancel selected", "Cancel %d jobs?"),
    b("delete", "Delete selected", "Delete %d jobs for good?"));
}

// jobsView is the job list: every state newest first, or one state in
// the backend's order with paging; filters and sort live in the hash.
export function jobsView(root, _args, query) {
  const state = query.get("state") || "", queue = query.get("queue") || "", text = query.get("q") || "", sort = query.get("sort") || "";
  let cursor = "", next = "";
  const go = changes => {
    const q = new URLSearchParams({ state, queue, q: text, sort, ...changes });
    for (const [k, v] of [...q]) if (!v) q.delete(k);
    location.hash = "#/jobs" + (q.toString() ? "?" + q : "");
  };
  const stateSel = el("select", { id: "job-state", "aria-label": "state" }, el("option", { value: "" }, "every state"),
    states.map(s => el("option", { value: s, selected: s === state }, s)));
  const queueSel = el("select", { id: "job-queue", "aria-label": "queue" }, el("option", { value: "" }, "every queue"));
  const textIn = el("input", { id: "job-text", type: "search", value: text, placeholder: "ID, task or argument text", size: 28 });
  const form = el("form", { id: "search", class: "filters", onsubmit: ev => { ev.preventDefault(); go({ state: stateSel.value, queue: queueSel.value, q: textIn.value.trim() }); } },
    stateSel, queueSel, textIn, el("button", { type: "submit" }, "Filter"),
    (state || queue || text || sort) ? button("Clear", () => go({ state: "", queue: "", q: "", sort: "" })) : null);
  const list = el("div");
  const more = el("p", { class: "paging" });
  const sel = new Selection();
  root.append(el("h1", null, "Jobs"), form, list, more);
  let jobs = [];
  const draw = () => {
    const ids = jobs.map(j => j.id);
    sel.keep(ids);
    fill(list, bulkBar(sel, state, refresh), table(jobColumns(sel, ids, draw), jobs,
      { id: "jobs", sort, onSort: s => go({ sort: s }), rowAttrs: j => ({ "data-job": j.id }), empty: "no jobs match" }));
  };
  async function refresh() {
    const p = new URLSearchParams({ limit: "100" });
    if (state) p.set("state", state);
    if (queue) p.set("queue", queue);
    if (text) p.set("q", text);
    if (sort) p.set("sort", sort);
    if (cursor) p.set("cursor", cursor);
    const [page, qs] = await Promise.all([api("api/jobs?" + p), queueSel.options.length > 1 ? null : api("api/queues")]);
    if (qs) for (const q of qs) queueSel.appendChild(el("option", { value: q.queue, selected: q.queue === queue }, q.queue));
    jobs = page.jobs;
    next = page.next || "";
    draw();
    fill(more, 
      cursor ? button("First page", () => { cursor = ""; refresh(); }) : null,
      next ? button("Next page", () => { cursor = next; refresh(); }, { id: "jobs-more" }) : null,
      state ? null : el("span", { class: "muted" }, "every state: the first 100 of each, newest first; pick a state to page through it"));
  }
  return { refresh };
}

// jobView is one job: arguments (editable for a replay), attempts with
// their errors, result, headers and times; replay, cancel, delete.
export function jobView(root, args) {
  const id = args[0];
  const head = el("div");
  const argsBox = el("textarea", { id: "detail-args", rows: 6, cols: 80, spellcheck: "false", "aria-label": "arguments" });
  const replay = button("Replay with these arguments", () => {
    let body;
    const txt = argsBox.value.trim();
    try {
      body = txt ? { args: JSON.parse(txt) } : undefined;
    } catch (e) {
      toast("the arguments are not JSON: " + e.message, true);
      return;
    }
    act("api/jobs/" + encodeURIComponent(id) + "/replay", body, "Replay this job?").then(r => r && refresh());
  }, { id: "detail-replay" });
  const cancel = button("Cancel", () => act("api/jobs/" + encodeURIComponent(id) + "/cancel", undefined, "Cancel this job?").then(r => r && refresh()), { id: "detail-cancel" });
  const del = button("Delete", () => act("api/jobs/" + encodeURIComponent(id) + "/delete", undefined, "Delete this job for good?").then(r => r && (location.hash = "#/jobs")), { id: "detail-delete" });
  const rest = el("div");
  root.append(head, el("label", { class: "block" }, "arguments", argsBox), el("p", { class: "actions" }, replay, cancel, del), rest);
  let edited = false;
  argsBox.addEventListener("input", () => { edited = true; });
  async function refresh() {
    const j = await api("api/jobs/" + encodeURIComponent(id));
    fill(head, el("h1", null, "Job ", el("span", { class: "mono", id: "detail-id" }, j.id), " ", el("span", { id: "detail-state" }, badge(j.state))),
      el("dl", { class: "facts" },
        el("dt", null, "task"), el("dd", null, j.task),
        el("dt", null, "queue"), el("dd", null, link(queueHref(j.queue), j.queue)),
        j.headers && j.headers["conveyor-workflow"] ? [el("dt", null, "workflow"), el("dd", null,
          link(workflowHref(j.headers["conveyor-workflow"]), j.headers["conveyor-workflow"], { id: "detail-workflow", class: "mono" }),
          " step " + (j.headers["conveyor-workflow-step"] || ""))] : null,
        el("dt", null, "priority"), el("dd", null, num(j.priority)),
        el("dt", null, "deliveries"), el("dd", null, num(j.deliveries) + (j.max_deliveries ? " of at most " + num(j.max_deliveries) : "")),
        el("dt", null, "created"), el("dd", null, when(j.created_at)),
        el("dt", null, "due"), el("dd", null, when(j.run_at)),
        el("dt", null, "started"), el("dd", null, when(j.started_at)),
        el("dt", null, "finished"), el("dd", null, when(j.finished_at)),
        j.lease_expires_at ? [el("dt", null, "lease ends"), el("dd", null, when(j.lease_expires_at))] : null,
        j.cancel_requested ? [el("dt", null, "cancel"), el("dd", null, "requested")] : null));
    if (!edited && document.activeElement !== argsBox) argsBox.value = j.args !== undefined ? JSON.stringify(j.args, null, 2) : "";
    replay.disabled = !["dead", "cancelled"].includes(j.state);
    cancel.disabled = !waiting.includes(j.state);
    del.disabled = j.state === "running";
    fill(rest, 
      notesView(j.notes),
      el("h2", null, "Attempts"),
      table([["attempt", a => num(a.attempt), { cls: "n" }], ["at", a => when(a.at)], ["error", a => el("pre", { class: "err" }, a.error + (a.stack ? "\n" + a.stack : ""))]],
        j.attempts || [], { id: "detail-attempts", empty: "no failed attempts" }),
      j.result !== undefined ? [el("h2", null, "Result"), el("pre", { id: "detail-result" }, JSON.stringify(j.result, null, 2))] : null,
      j.headers ? [el("h2", null, "Headers"), table([["header", ([k]) => k], ["value", ([, v]) => v]], Object.entries(j.headers))] : null);
  }
  return { refresh };
}

// notesView shows what a long job's handler left with it: progress, a
// flag if a handler ignored its cancellation, the checkpoint, the kept log
// lines with the count of those dropped.
function notesView(n) {
  if (!n) return null;
  const out = [];
  if (n.ignored_cancel) {
    const ic = n.ignored_cancel;
    out.push(el("p", { class: "flag", id: "detail-ignored" }, "ignored cancellation (" + ic.cause + ") for " + num(Math.round(ic.seconds)) + " s on worker " + ic.worker + ", " + ago(ic.at) + "; it runs again elsewhere"));
  }
  if (n.progress) {
    const pct = Math.round(100 * Math.min(Math.max(n.progress.fraction, 0), 1));
    out.push(el("h2", null, "Progress"),
      el("p", { id: "detail-progress" }, el("progress", { max: "100", value: String(pct) }), " " + pct + "%",
        n.progress.message ? " — " + n.progress.message : "", n.progress.at ? el("span", { class: "muted" }, " (" + ago(n.progress.at) + ")") : null));
    if (n.progress.output !== undefined) out.push(el("pre", null, JSON.stringify(n.progress.output, null, 2)));
  }
  if (n.checkpoint !== undefined) {
    out.push(el("h2", null, "Checkpoint"), el("pre", { id: "detail-checkpoint" }, JSON.stringify(n.checkpoint, null, 2)),
      n.checkpoint_at ? el("p", { class: "muted" }, "written " + ago(n.checkpoint_at)) : null);
  }
  if ((n.logs || []).length || n.logs_dropped) {
    out.push(el("h2", null, "Log"),
      n.logs_dropped ? el("p", { class: "muted" }, num(n.logs_dropped) + " older lines dropped") : null,
      table([["at", l => when(l.at)], ["level", l => l.level], ["message", l => l.msg + (l.attrs ? " " + l.attrs : "")]],
        n.logs || [], { id: "detail-logs" }));
  }
  return out;
}

// queueView is one queue: its counts as tabs, its jobs in the chosen
// state with bulk actions, pause and resume, its dead letters replayed
// or purged at once, and its charts.
export function queueView(root, args) {
  const name = args[0], state = args[1] || "pending";
  const qp = encodeURIComponent(name);
  const head = el("div"), tabs = el("nav", { class: "tabs" }), list = el("div"), more = el("p", { class: "paging" });
  const charts = activity({ queue: name });
  const sel = new Selection();
  root.append(head, tabs, list, more, charts.node);
  let jobs = [], cursor = "";
  const draw = () => {
    const ids = jobs.map(j => j.id);
    sel.keep(ids);
    fill(list, bulkBar(sel, state, refresh), table(jobColumns(sel, ids, draw, { noQueue: true, noState: true, error: ["dead", "retrying"].includes(state) }),
      jobs, { id: "queue-jobs", rowAttrs: j => ({ "data-job": j.id }), empty: "no " + state + " jobs" }));
  };
  async function refresh() {
    const p = new URLSearchParams({ queue: name, state, limit: "100" });
    if (cursor) p.set("cursor", cursor);
    const [qs, page] = await Promise.all([api("api/queues"), api("api/jobs?" + p)]);
    const q = qs.find(q => q.queue === name) || { queue: name, counts: {}, depth: 0, paused: false };
    const dead = q.counts.dead || 0;
    fill(head, el("h1", null, "Queue ", name, " ", q.paused ? el("span", { class: "badge paused" }, "paused") : null),
      el("p", { class: "actions" }, "depth " + num(q.depth) + (q.bound ? " of " + num(q.bound) : " (unbounded)") + " ", pauseButton(q),
        dead ? button("Replay all " + num(dead) + " dead", () => act("api/queues/" + qp + "/replay", undefined, "Replay every dead job of " + name + "?").then(refresh), { "data-action": "replay-all" }) : null,
        dead ? button("Delete all dead", () => act("api/queues/" + qp + "/purge?state=dead", undefined, "Delete every dead job of " + name + " for good?").then(refresh), { "data-action": "purge-dead" }) : null));
    fill(tabs, ...states.map(s => link(queueHref(name, s), s + " " + num(q.counts[s]), { class: s === state ? "active" : null, "data-state": s })));
    jobs = page.jobs;
    draw();
    fill(more, cursor ? button("First page", () => { cursor = ""; refresh(); }) : null,
      page.next ? button("Next page", () => { cursor = page.next; refresh(); }) : null);
    await charts.refresh();
  }
  return { refresh };
}

// deadView is every queue's dead letters: the reason each died, bulk
// replay or delete, and per queue a replay of them all.
export function deadView(root) {
  const summary = el("div"), list = el("div");
  const sel = new Selection();
  root.append(el("h1", null, "Dead letters"), summary, list);
  let jobs = [];
  const draw = () => {
    const ids = jobs.map(j => j.id);
    sel.keep(ids);
    fill(list, bulkBar(sel, "dead", refresh), table(jobColumns(sel, ids, draw, { noState: true, error: true }), jobs,
      { id: "dead", rowAttrs: j => ({ "data-job": j.id }), empty: "no dead letters" }));
  };
  async function refresh() {
    const [qs, page] = await Promise.all([api("api/queues"), api("api/jobs?state=dead&limit=200")]);
    const withDead = qs.filter(q => q.counts.dead);
    fill(summary, withDead.length ? table([
      ["queue", q => link(queueHref(q.queue, "dead"), q.queue)],
      ["dead", q => num(q.counts.dead), { cls: "n" }],
      ["", q => button("Replay all", () => act("api/queues/" + encodeURIComponent(q.queue) + "/replay", undefined, "Replay every dead job of " + q.queue + "?").then(refresh))],
    ], withDead, { id: "dead-queues" }) : el("p", { class: "muted" }, "No queue has dead letters."));
    jobs = page.jobs;
    draw();
  }
  return { refresh };
}
