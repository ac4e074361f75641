// The flow limits in force: each one's figures, use and held-back jobs,
// summed over the live workers, and its override, set or removed here
// for every worker at once.
import { api, act, el, button, num, table, fill, when, toast } from "./core.js";

// dur writes an interval in seconds in the largest unit that divides
// it: "minute", "5 min"; no interval is the default second.
function dur(s) {
  if (!s) return "second";
  for (const [n, one, u] of [[86400, "day", "d"], [3600, "hour", "h"], [60, "minute", "min"], [1, "second", "s"]]) {
    if (s >= n && s % n === 0) return s === n ? one : s / n + " " + u;
  }
  return s < 1 ? Math.round(s * 1000) + " ms" : s + " s";
}

// figures are a limit's: "100 per min, burst 200" or "3 at once".
function figures(kind, limit, per, burst) {
  if (kind === "concurrency") return num(limit) + " at once";
  return num(limit) + " per " + dur(per) + (burst && burst !== limit ? ", burst " + num(burst) : "");
}

function override(l) {
  const o = l.override;
  if (!o) return el("span", { class: "muted" }, "declared");
  return [el("span", { class: "badge paused", "data-override": String(o.limit) },
    "override: " + figures(l.kind, o.limit, o.per_seconds || l.per_seconds, o.burst)), " ", when(o.set_at)];
}

// change asks for a new limit and sets it as the override; the interval
// and burst stay as they are.
async function change(l) {
  const unit = l.kind === "concurrency" ? "jobs at once" : "jobs per " + dur(l.per_seconds);
  const cur = l.override ? l.override.limit : l.limit;
  const v = window.prompt("New limit for " + l.name + " (" + unit + "), on every worker:", String(cur || ""));
  if (v === null) return;
  const n = Number(v.trim());
  if (!Number.isInteger(n) || n < 1) {
    toast("the limit must be a whole number of at least 1", true);
    return;
  }
  const path = "api/limits/" + l.kind + "/" + encodeURIComponent(l.name);
  if (await act(path + "/override", { limit: n })) toast(l.name + ": " + unit.replace(/^jobs/, n + " jobs") + " within a second on every worker");
}

export function limitsView(root) {
  const box = el("div");
  root.append(el("h1", null, "Limits"), box);
  return {
    async refresh() {
      const ls = await api("api/limits");
      fill(box, table([
        ["limit", l => el("span", { class: "mono" }, l.name)],
        ["kind", l => l.kind],
        ["in force", l => l.workers ? figures(l.kind, l.limit, l.per_seconds, l.burst) : el("span", { class: "muted" }, "no live worker declares it")],
        ["per key", l => l.per_key ? "yes" : "no"],
        ["in use", l => num(l.in_use) + (l.kind === "rate" ? " started in the last " + dur(l.per_seconds) : " running"), { cls: "n" }],
        ["held back", l => num(l.held_back) + " waiting (" + num(l.held_back_total) + " in all)", { cls: "n" }],
        ["workers", l => num(l.workers), { cls: "n" }],
        ["override", override],
        ["", l => {
          const path = "api/limits/" + l.kind + "/" + encodeURIComponent(l.name);
          return [button("Change", () => change(l), { "data-action": "override" }),
            l.override ? button("Reset", () => act(path + "/reset", undefined, "Remove the override of " + l.name + "? The declared figures hold again."), { "data-action": "reset" }) : null];
        }],
      ], ls, { id: "limits", rowAttrs: l => ({ "data-limit": l.kind + "/" + l.name }), empty: "no limits: no live worker's tasks or queues declare one" }));
    },
  };
}
