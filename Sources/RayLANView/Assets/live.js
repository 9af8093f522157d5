// RayLAN's live view of videos and streams: per source the newest picture with its boxes, per-class counts over
// time, and how the run keeps up. The server pushes events (live/events): `frame` (a source's newest picture, shrunk
// on the cluster, and its detections), `stats` (every source, each second) and `end`. A picture that comes while
// the last one is still being shown replaces it: the page shows the newest, never a backlog.
"use strict";

const CHART = { width: 600, height: 150 };
const panels = new Map();   // source index → its elements
const pending = new Map();  // source index → the newest frame event not shown yet
let drawing = false;
let ended = false;

function panel(index, name) {
  if (panels.has(index)) return panels.get(index);
  const section = el("section", { class: "source", "data-source": index });
  const picture = el("div", { class: "frame live-frame empty" }, "waiting for the first picture…");
  const stats = el("dl", { class: "stats" });
  const chart = el("svg", { class: "chart", viewBox: `0 0 ${CHART.width} ${CHART.height}`,
    preserveAspectRatio: "none" });
  const legend = el("div", { class: "legend" });
  section.append(el("h2", {}, name), picture, stats,
    el("h3", {}, "Objects per class (most in one frame, each second)"), chart, legend);
  document.getElementById("sources").append(section);
  const made = { section, picture, stats, chart, legend };
  panels.set(index, made);
  return made;
}

function show(frame) {
  const { picture } = panel(frame.source, `source ${frame.source + 1}`);
  const { header } = frame;
  const img = el("img", { alt: `frame ${header.frame}`, src: `data:image/jpeg;base64,${frame.jpeg}` });
  picture.classList.remove("empty");
  picture.style.aspectRatio = `${header.width} / ${header.height}`;
  picture.setAttribute("data-frame", header.frame);
  picture.replaceChildren(img, boxes(header.width, header.height, header.detections, { labels: true }));
}

function drawPending() {
  drawing = false;
  for (const frame of pending.values()) show(frame);
  pending.clear();
}

function stat(list, name, value) {
  list.append(el("dt", {}, name), el("dd", {}, value));
}

function renderStats(snapshot) {
  snapshot.sources.forEach((source, index) => {
    const { section, stats, chart, legend } = panel(index, source.name);
    section.querySelector("h2").textContent = source.name;
    const s = source.stats;
    stats.replaceChildren();
    stat(stats, "state", s.message ? `${s.state}: ${s.message}` : s.state);
    stat(stats, "frames/s", s.fps.toFixed(1));
    stat(stats, "latency", s.latency_ms == null ? "—" : `${Math.round(s.latency_ms)} ms`);
    stat(stats, "processed", s.frames_read ? `${s.frames_processed} of ${s.frames_read} read` : String(s.frames_processed));
    stat(stats, "dropped", s.frames_dropped);
    stat(stats, "reconnects", s.reconnects);
    stat(stats, "errors", s.errors);
    renderChart(chart, legend, source);
  });
}

function renderChart(chart, legend, source) {
  chart.replaceChildren();
  legend.replaceChildren();
  const series = source.series;
  if (series.length === 0) return;
  const first = series[0].time;
  const span = Math.max(series[series.length - 1].time - first, 1);
  const most = Math.max(2, ...series.flatMap((point) => Object.values(point.counts)));
  const x = (time) => ((time - first) / span) * (CHART.width - 40) + 30;
  const y = (count) => CHART.height - 8 - (count / most) * (CHART.height - 16);
  for (const count of [0, most]) {
    chart.append(el("line", { x1: 26, x2: CHART.width, y1: y(count), y2: y(count), class: "grid" }));
    chart.append(el("text", { x: 4, y: y(count) + 4, class: "axis" }, String(count)));
  }
  Object.entries(source.classes).sort().forEach(([name, id], order) => {
    // Lines of equal counts would hide each other: each class is drawn a pixel and a half above the last.
    const points = series.map((point) =>
      `${x(point.time).toFixed(1)},${(y(point.counts[name] || 0) - order * 1.5).toFixed(1)}`);
    chart.append(el("polyline", { points: points.join(" "), stroke: colour(id), "data-class": name,
      "data-points": points.length }));
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colour(id);
    const label = el("span", {});
    label.append(swatch, document.createTextNode(` ${name}`));
    legend.append(label);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const connection = document.getElementById("connection");
  const events = new EventSource("live/events");
  events.addEventListener("open", () => { connection.textContent = "live"; });
  events.addEventListener("frame", (event) => {
    const frame = JSON.parse(event.data);
    pending.set(frame.source, frame);
    if (!drawing) {
      drawing = true;
      requestAnimationFrame(drawPending);
    }
  });
  events.addEventListener("stats", (event) => renderStats(JSON.parse(event.data)));
  events.addEventListener("end", () => {
    ended = true;
    events.close();
    connection.textContent = "the run ended";
    for (const { picture } of panels.values()) {
      if (picture.classList.contains("empty")) picture.textContent = "no picture (a finished run's are in its annotated.mp4)";
    }
  });
  events.addEventListener("error", () => {
    if (!ended) connection.textContent = "the view's server does not answer; trying again…";
  });
});
