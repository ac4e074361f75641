// The views the nav lists, in its order. Each has an id (its hash path),
// a title and mount(root, args, query), which builds the view's frame and
// returns {refresh}, called at once and every two seconds. A view with
// detail: "x" hands #/id/<arg> to view x. A new view is one entry here
// and a module like ops.js or workflows.js.
import { api, el, link, num, states, queueHref, pauseButton, fill } from "./core.js";
import { jobsView, jobView, queueView, deadView } from "./jobs.js";
import { schedulesView, workersView } from "./ops.js";
import { workflowsView, workflowView } from "./workflows.js";
import { limitsView } from "./limits.js";
import { activity } from "./charts.js";

export const views = [
  { id: "overview", title: "Overview", nav: true, mount: overview },
  { id: "queues", title: "Queues", nav: true, mount: queuesView, detail: "queue" },
  { id: "queue", title: "Queue", detailOf: "queues", mount: queueView },
  { id: "jobs", title: "Jobs", nav: true, mount: jobsView, detail: "job" },
  { id: "job", title: "Job", detailOf: "jobs", mount: jobView },
  { id: "workflows", title: "Workflows", nav: true, mount: workflowsView, detail: "workflow" },
  { id: "workflow", title: "Workflow", detailOf: "workflows", mount: workflowView },
  { id: "schedules", title: "Schedules", nav: true, mount: schedulesView },
  { id: "workers", title: "Workers", nav: true, mount: workersView },
  { id: "limits", title: "Limits", nav: true, mount: limitsView },
  { id: "dead", title: "Dead letters", nav: true, mount: deadView },
];

// queueTable lists queues with their counts (each a link to the queue's
// jobs in that state), depth against bound, and pause or resume.
export function queueTable(queues, id) {
  const cols = [["queue", q => link(queueHref(q.queue), q.queue)]];
  for (const s of states) cols.push([s, q => link(queueHref(q.queue, s), num(q.counts[s])), { cls: "n", state: s }]);
  cols.push(["depth / bound", q => q.bound ? num(q.depth) + " / " + num(q.bound) + " (" + Math.round(100 * q.depth / q.bound) + "%)" : num(q.depth), { cls: "n" }]);
  cols.push(["", q => q.paused ? el("span", { class: "badge paused" }, "paused") : ""]);
  cols.push(["", q => pauseButton(q)]);
  return queueRows(cols, queues, id);
}

function queueRows(cols, queues, id) {
  const body = el("tbody");
  for (const q of queues) {
    body.appendChild(el("tr", { "data-queue": q.queue }, cols.map(([, f, o = {}]) =>
      el("td", { class: o.cls, "data-state": o.state }, f(q)))));
  }
  if (!queues.length) body.appendChild(el("tr", null, el("td", { colspan: cols.length, class: "empty" }, "no queues yet: enqueue a job")));
  return el("table", { id }, el("thead", null, el("tr", null, cols.map(([h, , o = {}]) => el("th", { class: o.cls }, h)))), body);
}

// card is one figure of the overview.
function card(label, value, href, cls) {
  return el("a", { class: "card " + (cls || ""), href, "data-card": label }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function overview(root) {
  const cards = el("div", { class: "cards" });
  const queues = el("div");
  const charts = activity({});
  root.append(el("h1", null, "Overview"), cards, charts.node, el("h2", null, "Queues"), queues);
  return {
    async refresh() {
      const [qs, ws, ss] = await Promise.all([api("api/queues"), api("api/workers").catch(() => []), api("api/schedules").catch(() => [])]);
      const sum = s => qs.reduce((n, q) => n + (q.counts[s] || 0), 0);
      const open = ws.flatMap(w => w.breakers).filter(b => b.state !== "closed").length;
      fill(cards, 
        card("waiting", num(sum("pending") + sum("scheduled") + sum("retrying")), "#/queues"),
        card("running", num(sum("running")), "#/jobs?state=running"),
        card("dead letters", num(sum("dead")), "#/dead", sum("dead") ? "warn" : ""),
        card("paused queues", num(qs.filter(q => q.paused).length), "#/queues", qs.some(q => q.paused) ? "warn" : ""),
        card("workers", num(ws.length), "#/workers", ws.length ? "" : "warn"),
        card("open breakers", num(open), "#/workers", open ? "warn" : ""),
        card("schedules", num(ss.length) + (ss.some(s => s.paused) ? " (" + ss.filter(s => s.paused).length + " paused)" : ""), "#/schedules"),
      );
      fill(queues, queueTable(qs, "queues"));
      await charts.refresh();
    },
  };
}

function queuesView(root) {
  const box = el("div");
  root.append(el("h1", null, "Queues"), box);
  return {
    async refresh() {
      fill(box, queueTable(await api("api/queues"), "queues"));
    },
  };
}
