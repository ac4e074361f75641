// The views of what runs the jobs: periodic entries and worker processes.
import { api, act, el, link, button, when, num, ms, table, queueHref, fill } from "./core.js";

export function schedulesView(root) {
  const box = el("div");
  root.append(el("h1", null, "Schedules"), box);
  return {
    async refresh() {
      const entries = await api("api/schedules");
      fill(box, table([
        ["entry", e => e.name],
        ["schedule", e => el("code", null, e.schedule)],
        ["task", e => e.task],
        ["queue", e => e.queue ? link(queueHref(e.queue), e.queue) : el("span", { class: "muted" }, "the task's")],
        ["missed ticks", e => e.misfire],
        ["last tick", e => when(e.last)],
        ["next tick", e => e.paused ? el("span", { class: "muted" }, "paused") : when(e.next)],
        ["", e => e.paused ? el("span", { class: "badge paused" }, "paused") : ""],
        ["", e => {
          const n = encodeURIComponent(e.name);
          return e.paused
            ? button("Resume", () => act("api/schedules/" + n + "/resume"), { "data-action": "resume" })
            : button("Pause", () => act("api/schedules/" + n + "/pause", undefined, "Pause " + e.name + "? Its ticks are skipped until resumed."), { "data-action": "pause" });
        }],
      ], entries, { id: "schedules", rowAttrs: e => ({ "data-entry": e.name }), empty: "no periodic tasks: a scheduler registers them" }));
    },
  };
}

function breakers(w) {
  if (!w.breakers.length) return el("span", { class: "muted" }, "none");
  return w.breakers.map(b => el("span", { class: "badge breaker " + b.state, title: num(b.consecutive_failures) + " consecutive failures" +
    (b.open_until ? ", open until " + new Date(b.open_until).toLocaleTimeString() : "") }, b.name + ": " + b.state));
}

// fair marks a queue served fairly between its groups, with their weights
// (a group not listed takes one job a turn).
function fair(weights) {
  if (!weights) return null;
  const ws = Object.entries(weights).sort(([a], [b]) => a < b ? -1 : 1).map(([g, n]) => g + "=" + n);
  return el("span", { class: "badge fair", title: "served round-robin between its groups" + (ws.length ? "; weights " + ws.join(", ") : ", each weight 1") },
    ws.length ? "fair " + ws.join(" ") : "fair");
}

export function workersView(root) {
  const box = el("div");
  root.append(el("h1", null, "Workers"), box);
  return {
    async refresh() {
      const ws = await api("api/workers");
      fill(box, table([
        ["worker", w => el("span", { class: "mono" }, w.id)],
        ["host", w => w.host],
        ["pid", w => String(w.pid), { cls: "n" }],
        ["queues", w => w.queues.map((q, i) => [i ? ", " : "", link(queueHref(q), q), fair(w.fair[q])])],
        ["running", w => num(w.running) + " / " + num(w.concurrency), { cls: "n" }],
        ["pickup p50", w => ms(w.pickup_p50_ms), { cls: "n" }],
        ["pickup p99", w => ms(w.pickup_p99_ms), { cls: "n" }],
        ["breakers", breakers],
        ["started", w => when(w.started)],
        ["heartbeat", w => when(w.heartbeat)],
      ], ws, { id: "workers", rowAttrs: w => ({ "data-worker": w.id }), empty: "no live workers: start one, or its heartbeats stopped" }));
    },
  };
}
