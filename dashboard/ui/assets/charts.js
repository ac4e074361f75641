// Charts of the history the backend keeps (GET /api/history): SVG with
// axes, units and gaps where no process sampled, over a range the
// operator picks. No library: lines, ticks and labels are drawn here.
import { api, el, fill } from "./core.js";

const svgNS = "http://www.w3.org/2000/svg";
const palette = ["#36c", "#2a7", "#c80", "#85c", "#0aa", "#a63", "#c33", "#777"];
const ranges = ["1h", "6h", "24h", "7d"];
let range = "1h"; // shared by every view's charts

function svg(tag, attrs, text) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// nice rounds up to 1, 2 or 5 times a power of ten.
function nice(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
  return String(Math.round(v * 100) / 100);
}

const tickSteps = [5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map(m => m * 60e3);

// lineChart draws series [{name, color, points: [[ms, value]]}] from..to
// (ms), with points step ms apart; unit labels the y axis.
export function lineChart({ id, title, unit, from, to, step, series }) {
  const W = 560, H = 190, L = 56, R = 14, T = 12, B = 26;
  const pw = W - L - R, ph = H - T - B;
  const top = nice(Math.max(0, ...series.flatMap(s => s.points.map(p => p[1]))));
  const x = t => L + (t - from) / (to - from) * pw;
  const y = v => T + ph - v / top * ph;
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": title + " in " + unit });
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4;
    g.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: i ? "grid" : "axis" }));
    g.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, label(v)));
  }
  g.appendChild(svg("text", { x: 12, y: T + ph / 2, transform: `rotate(-90 12 ${T + ph / 2})`, "text-anchor": "middle", class: "unit" }, unit));
  const every = tickSteps.find(s => (to - from) / s <= 7) || tickSteps.at(-1);
  const offset = new Date().getTimezoneOffset() * 60e3; // ticks on local hours and days
  for (let t = Math.ceil((from - offset) / every) * every + offset; t <= to; t += every) {
    const d = new Date(t);
    const txt = every >= 1440 * 60e3 ? d.toLocaleDateString([], { weekday: "short", day: "numeric" })
      : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    g.appendChild(svg("line", { x1: x(t), x2: x(t), y1: T + ph, y2: T + ph + 4, class: "axis" }));
    g.appendChild(svg("text", { x: x(t), y: H - 6, "text-anchor": "middle", class: "tick" }, txt));
  }
  for (const s of series) {
    let run = [];
    const flush = () => {
      if (run.length > 1) g.appendChild(svg("polyline", { points: run.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.6 }));
      run = [];
    };
    let last = null;
    for (const [t, v] of s.points) {
      if (last !== null && t - last > step * 1.5) flush(); // a gap: nobody sampled
      run.push(x(t).toFixed(1) + "," + y(v).toFixed(1));
      last = t;
    }
    flush();
    if (s.points.length <= 120) {
      for (const [t, v] of s.points) {
        const c = svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.2, fill: s.color });
        c.appendChild(svg("title", {}, s.name + ": " + label(v) + " " + unit + " at " + new Date(t).toLocaleString()));
        g.appendChild(c);
      }
    }
  }
  if (!series.some(s => s.points.length)) {
    g.appendChild(svg("text", { x: L + pw / 2, y: T + ph / 2, "text-anchor": "middle", class: "none" }, "no readings in this range yet"));
  }
  const legend = el("div", { class: "legend" }, series.map(s => {
    const swatch = el("i");
    swatch.style.background = s.color; // a property, not a style attribute: the page's CSP allows no inline styles
    return el("span", { class: "key" }, swatch, s.name);
  }));
  const box = el("figure", { class: "chart", "data-chart": id }, el("figcaption", null, title), g, legend);
  return box;
}

// activity is the charts block of a view: throughput, depth and pickup
// latency of one queue (or all), with the range picker.
export function activity({ queue }) {
  const picker = el("div", { class: "ranges", role: "group", "aria-label": "range" });
  const charts = el("div", { class: "charts" });
  const node = el("section", { class: "activity" }, el("div", { class: "bar" }, el("h2", null, "Activity"), picker), charts);
  let refresh;
  const drawPicker = () => fill(picker, ...ranges.map(r => el("button", { type: "button", class: r === range ? "on" : null,
    "data-range": r, onclick: () => { range = r; drawPicker(); refresh(); } }, r)));
  drawPicker();
  refresh = async () => {
    const h = await api("api/history?range=" + range + (queue ? "&queue=" + encodeURIComponent(queue) : ""));
    const from = new Date(h.from).getTime(), to = new Date(h.to).getTime(), step = h.step_seconds * 1000;
    const perMin = 60 / h.step_seconds;
    const sum = (points, key) => {
      const m = new Map();
      for (const p of points) { const t = new Date(p.at).getTime(); m.set(t, (m.get(t) || 0) + p[key]); }
      return [...m.entries()].sort((a, b) => a[0] - b[0]);
    };
    const done = sum(h.throughput, "done").map(([t, v]) => [t, v * perMin]);
    const dead = sum(h.throughput, "dead").map(([t, v]) => [t, v * perMin]);
    const depth = h.queues.slice(0, palette.length).map((q, i) => ({ name: q, color: palette[i],
      points: h.depth.filter(p => p.queue === q).map(p => [new Date(p.at).getTime(), p.depth]) }));
    const pick = key => h.pickup.map(p => [new Date(p.at).getTime(), p[key]]);
    const common = { from, to, step };
    fill(charts, 
      lineChart({ ...common, id: "throughput", title: "Finished" + (queue ? "" : ", all queues"), unit: "jobs/min",
        series: [{ name: "done", color: "#2a7", points: done }, { name: "dead", color: "#c33", points: dead }] }),
      lineChart({ ...common, id: "depth", title: "Depth (unfinished jobs)", unit: "jobs", series: depth }),
      lineChart({ ...common, id: "pickup", title: "Pickup latency, slowest worker", unit: "ms",
        series: [{ name: "p50", color: "#36c", points: pick("p50_ms") }, { name: "p99", color: "#c80", points: pick("p99_ms") }] }),
    );
  };
  return { node, refresh: () => refresh() };
}
