// The workflow views: one workflow's steps as a graph (each step a box in
// the column of its depth, an arrow from each dependency) and a table, with
// cancel; and the page that finds a workflow by ID.
import { api, act, el, link, button, when, badge, table, jobHref, fill } from "./core.js";

export const workflowHref = id => "#/workflows/" + encodeURIComponent(id);

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

// graph lays the steps out by depth (the longest path from a root) and
// draws each dependency as a line from its step's right edge to the
// dependent's left edge.
function graph(steps) {
  const byName = new Map(steps.map(s => [s.name, s]));
  const depth = new Map();
  const depthOf = (s, seen = new Set()) => {
    if (depth.has(s.name)) return depth.get(s.name);
    if (seen.has(s.name)) return 0; // a cycle cannot be stored; be safe anyway
    seen.add(s.name);
    const d = Math.max(-1, ...s.deps.map(n => byName.has(n) ? depthOf(byName.get(n), seen) : -1)) + 1;
    depth.set(s.name, d);
    return d;
  };
  const columns = [];
  for (const s of steps) (columns[depthOf(s)] ||= []).push(s);
  const w = 150, h = 34, gx = 60, gy = 14;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((s, y) => pos.set(s.name, { x: x * (w + gx), y: y * (h + gy) })));
  const width = columns.length * (w + gx) - gx, height = Math.max(...columns.map(c => c.length)) * (h + gy) - gy;
  const root = svg("svg", { id: "workflow-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "the workflow's steps" });
  for (const s of steps) {
    const to = pos.get(s.name);
    for (const d of s.deps) {
      const from = pos.get(d);
      if (from) root.append(svg("line", { x1: from.x + w, y1: from.y + h / 2, x2: to.x, y2: to.y + h / 2, class: "edge" }));
    }
  }
  for (const s of steps) {
    const p = pos.get(s.name);
    const box = svg("g", { class: "step " + s.state, transform: `translate(${p.x},${p.y})`, "data-step": s.name },
      svg("title", null, s.task + " (" + s.state + ")"),
      svg("rect", { width: w, height: h, rx: 5 }),
      svg("text", { x: 8, y: 14 }, s.name),
      svg("text", { x: 8, y: 28, class: "state" }, s.state));
    root.append(s.job_id ? svg("a", { href: jobHref(s.job_id) }, box) : box);
  }
  return root;
}

export function workflowView(root, args) {
  const id = args[0];
  const head = el("div"), body = el("div");
  const cancel = button("Cancel the workflow", () => act("api/workflows/" + encodeURIComponent(id) + "/cancel", undefined,
    "Cancel this workflow? Running steps are stopped, pending ones never start.").then(r => r && refresh()), { id: "workflow-cancel" });
  root.append(head, el("p", { class: "actions" }, cancel), body);
  async function refresh() {
    const wf = await api("api/workflows/" + encodeURIComponent(id));
    fill(head, el("h1", null, "Workflow ", el("span", { class: "mono", id: "workflow-id" }, wf.id), " ", el("span", { id: "workflow-state" }, badge(wf.state))),
      el("dl", { class: "facts" },
        el("dt", null, "steps"), el("dd", null, String(wf.steps.length)),
        el("dt", null, "created"), el("dd", null, when(wf.created_at)),
        el("dt", null, "finished"), el("dd", null, when(wf.finished_at)),
        wf.cancel_requested ? [el("dt", null, "cancel"), el("dd", null, "requested")] : null));
    cancel.disabled = ["done", "failed", "cancelled"].includes(wf.state) || wf.cancel_requested;
    fill(body, el("div", { class: "graph" }, graph(wf.steps)),
      el("h2", null, "Steps"),
      table([
        ["step", s => s.name],
        ["task", s => s.task],
        ["queue", s => s.queue],
        ["after", s => s.deps.join(", ")],
        ["state", s => badge(s.state)],
        ["job", s => s.job_id ? link(jobHref(s.job_id), s.job_id, { class: "mono" }) : ""],
        ["enqueued", s => when(s.enqueued_at)],
        ["finished", s => when(s.finished_at)],
        ["note", s => [s.reason || "", s.allow_failure ? " (allowed to fail)" : "", s.sink ? " (result)" : ""].join("")],
      ], wf.steps, { id: "workflow-steps" }));
  }
  return { refresh };
}

const workflowStates = ["starting", "running", "done", "failed", "cancelled"];

// workflowsView lists the kept workflows by state, newest first, and finds
// one by ID.
export function workflowsView(root, args, query) {
  const state = (query && query.get("state")) || "";
  const input = el("input", { id: "workflow-find", placeholder: "workflow ID", size: 40, "aria-label": "workflow ID" });
  const go = button("Show", () => { if (input.value.trim()) location.hash = workflowHref(input.value.trim()); }, { id: "workflow-go" });
  input.addEventListener("keydown", e => { if (e.key === "Enter") go.click(); });
  const tabs = el("nav", { class: "tabs" }, link("#/workflows", "all", { class: state ? null : "active" }),
    workflowStates.map(s => link("#/workflows?state=" + s, s, { class: s === state ? "active" : null })));
  const list = el("div");
  root.append(el("h1", null, "Workflows"), el("p", null, input, " ", go), tabs, list);
  async function refresh() {
    const wfs = await api("api/workflows" + (state ? "?state=" + encodeURIComponent(state) : ""));
    fill(list, table([
      ["workflow", w => link(workflowHref(w.id), w.id, { class: "mono" })],
      ["state", w => badge(w.state)],
      ["steps", w => Object.entries(w.steps).map(([s, n]) => n + " " + s).join(", ")],
      ["created", w => when(w.created_at)],
      ["finished", w => when(w.finished_at)],
    ], wfs, { id: "workflows", rowAttrs: w => ({ "data-workflow": w.id }), empty: "no " + (state ? state + " " : "") + "workflows" }));
  }
  return { refresh };
}
