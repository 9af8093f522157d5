// RayLAN's view of a run: a gallery of its inputs with their boxes, filters by class and score, a detail view,
// and the run's progress. It reads the server's api/run (what changed since a version) and image/N; nothing else.
// The filters and the open image live in the URL's fragment (#classes=a,b&score=0.5&image=3), so a view can be
// shared or reloaded as it is.
"use strict";

const state = {
  version: 0,
  entries: new Map(),   // index → entry (api/run's shape)
  classes: new Map(),   // class name → {id, count}
  filter: { classes: null, score: 0 },  // classes: a Set of names, or null for all
  detail: null,         // the open entry's index
  finished: false,
};

function visible(detection) {
  const { classes, score } = state.filter;
  return detection.score >= score && (classes === null || classes.has(detection.class_name));
}

// The picture with its boxes: the image where the server has one, else a grey field of the image's size.
function frame(entry, labels) {
  const box = el("div", { class: "frame" });
  if (entry.width && entry.height) box.style.aspectRatio = `${entry.width} / ${entry.height}`;
  else box.classList.add("empty");
  if (entry.has_image) {
    const img = el("img", { alt: entry.name, loading: "lazy", src: `image/${entry.index}?v=${entry.version}` });
    img.addEventListener("load", () => img.setAttribute("data-loaded", "1"));
    box.append(img);
  } else if (!entry.width) {
    box.textContent = "no picture";
  }
  if (entry.width && entry.height && !entry.boxes_drawn) {
    box.append(boxes(entry.width, entry.height, entry.detections, { labels, visible }));
  }
  return box;
}

function summary(entry) {
  const counts = new Map();
  for (const detection of entry.detections) {
    if (visible(detection)) counts.set(detection.class_name, (counts.get(detection.class_name) || 0) + 1);
  }
  return [...counts.entries()].sort().map(([name, count]) => `${count} ${name}`).join(", ");
}

function card(entry) {
  const figure = el("figure", { "data-index": entry.index });
  const shown = entry.detections.filter(visible).length;
  figure.setAttribute("data-visible-boxes", shown);
  if (entry.error) figure.classList.add("failed");
  figure.append(frame(entry, false));
  const caption = el("figcaption");
  caption.append(el("div", { class: "name" }, entry.name));
  if (entry.error) caption.append(el("div", { class: "error" }, `${entry.error.code}: ${entry.error.message}`));
  else caption.append(el("div", { class: "summary" },
    (entry.width ? `${entry.width}×${entry.height} · ` : "") + (summary(entry) || "nothing shown")
    + (entry.boxes_drawn ? " · boxes drawn on the cluster" : "")));
  figure.append(caption);
  if (!entry.error) figure.addEventListener("click", () => openDetail(entry.index));
  // A class filter shows the inputs that have one of its classes.
  figure.hidden = state.filter.classes !== null && shown === 0;
  return figure;
}

function renderClasses() {
  const holder = document.getElementById("classes");
  holder.replaceChildren();
  const names = [...state.classes.keys()].sort();
  for (const name of names) {
    const { id, count } = state.classes.get(name);
    const input = el("input", { type: "checkbox", value: name, "data-class": name });
    input.checked = state.filter.classes === null || state.filter.classes.has(name);
    input.addEventListener("change", () => {
      const checked = [...holder.querySelectorAll("input:checked")].map((box) => box.value);
      state.filter.classes = checked.length === names.length ? null : new Set(checked);
      writeHash();
      renderAll();
    });
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colour(id);
    const label = el("label");
    label.append(input, swatch, document.createTextNode(` ${name} (${count})`));
    holder.append(label);
  }
  if (names.length === 0) holder.textContent = "none yet";
}

function renderAll() {
  const gallery = document.getElementById("gallery");
  const sorted = [...state.entries.values()].sort((a, b) => a.index - b.index);
  gallery.replaceChildren(...sorted.map(card));
  const shown = gallery.querySelectorAll("figure:not([hidden])").length;
  document.getElementById("shown").textContent = `${shown} of ${sorted.length} shown`;
  if (state.detail !== null) renderDetail();
}

function renderDetail() {
  const entry = state.entries.get(state.detail);
  const panel = document.getElementById("detail");
  if (!entry) { panel.hidden = true; return; }
  document.getElementById("detail-name").textContent = entry.name;
  const picture = frame(entry, true);
  // As large as the window allows, keeping the picture's shape.
  if (entry.width && entry.height) {
    picture.style.width = `${Math.min(1000, innerWidth * 0.85, innerHeight * 0.62 * entry.width / entry.height)}px`;
  }
  document.getElementById("detail-frame").replaceChildren(picture);
  const rows = entry.detections.filter(visible).map((detection) => {
    const row = el("tr");
    row.append(el("td", {}, detection.track_id == null ? detection.class_name : `${detection.class_name} #${detection.track_id}`),
      el("td", {}, detection.score.toFixed(3)), el("td", {}, detection.box.map((v) => v.toFixed(1)).join(", ")));
    return row;
  });
  document.querySelector("#detail-table tbody").replaceChildren(...rows);
  panel.hidden = false;
}

function openDetail(index) {
  state.detail = index;
  writeHash();
  renderDetail();
}

function closeDetail() {
  state.detail = null;
  document.getElementById("detail").hidden = true;
  writeHash();
}

function writeHash() {
  const parts = [];
  if (state.filter.classes !== null) parts.push(`classes=${[...state.filter.classes].map(encodeURIComponent).join(",")}`);
  if (state.filter.score > 0) parts.push(`score=${state.filter.score}`);
  if (state.detail !== null) parts.push(`image=${state.detail}`);
  history.replaceState(null, "", parts.length ? `#${parts.join("&")}` : location.pathname + location.search);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const classes = params.get("classes");
  state.filter.classes = classes === null ? null : new Set(classes.split(",").filter(Boolean).map(decodeURIComponent));
  const score = Number(params.get("score") || 0);
  state.filter.score = Number.isFinite(score) ? Math.min(Math.max(score, 0), 1) : 0;
  const image = params.get("image");
  state.detail = image === null ? null : Number(image);
  document.getElementById("score").value = state.filter.score;
  document.getElementById("score-value").textContent = state.filter.score.toFixed(2);
}

function renderProgress(page) {
  const { state: runState, total, done, failed } = page.progress;
  const bar = document.getElementById("progress");
  bar.max = total || Math.max(done, 1);
  bar.value = done;
  const of = total ? ` of ${total}` : "";
  document.getElementById("stats").textContent =
    `${done}${of} answered · ${failed} failed · ${runState === "running" ? "running" : "finished"}`;
  document.getElementById("title").textContent = page.title;
  document.title = `${page.title} · RayLAN view`;
}

function apply(page) {
  for (const entry of page.entries) state.entries.set(entry.index, entry);
  state.version = page.version;
  state.classes = new Map();
  for (const entry of state.entries.values()) {
    for (const detection of entry.detections) {
      const known = state.classes.get(detection.class_name);
      if (known) known.count += 1;
      else state.classes.set(detection.class_name, { id: detection.class_id, count: 1 });
    }
  }
  renderProgress(page);
  if (page.entries.length > 0 || state.version === 0) {
    renderClasses();
    renderAll();
  }
  state.finished = page.progress.state !== "running";
}

async function poll() {
  try {
    const response = await fetch(`api/run?since=${state.version}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`the view's server answered ${response.status}`);
    apply(await response.json());
  } catch (error) {
    document.getElementById("stats").textContent = `the view's server does not answer (${error.message})`;
    return;
  }
  if (!state.finished) setTimeout(poll, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  readHash();
  document.getElementById("score").addEventListener("input", (event) => {
    state.filter.score = Number(event.target.value);
    document.getElementById("score-value").textContent = state.filter.score.toFixed(2);
    writeHash();
    renderAll();
  });
  document.getElementById("close").addEventListener("click", closeDetail);
  document.getElementById("detail").addEventListener("click", (event) => {
    if (event.target.id === "detail") closeDetail();
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDetail(); });
  window.addEventListener("hashchange", () => { readHash(); renderClasses(); renderAll(); });
  poll();
});
