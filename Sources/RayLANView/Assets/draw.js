// What both of RayLAN's pages draw: class colours, elements, and a picture's boxes as an SVG in the picture's own
// pixels (so that it lies on the picture at any size).
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function colour(classID) {
  return `hsl(${(classID * 137.508) % 360}, 80%, 48%)`;
}

function el(tag, attributes = {}, text) {
  const node = ["svg", "rect", "text", "title", "polyline", "line"].includes(tag)
    ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// The boxes of `detections` (x1, y1, x2, y2 in a width × height picture) for which `visible` holds, each in its
// class's colour, labelled (class, track id, score) when `labels`.
function boxes(width, height, detections, { labels = false, visible = () => true } = {}) {
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const fontSize = Math.max(height / 28, 8);
  for (const detection of detections) {
    if (!visible(detection)) continue;
    const [x1, y1, x2, y2] = detection.box;
    const rect = el("rect", {
      x: x1, y: y1, width: Math.max(x2 - x1, 0), height: Math.max(y2 - y1, 0), stroke: colour(detection.class_id),
      "data-class": detection.class_name,
    });
    const name = detection.track_id == null ? detection.class_name : `${detection.class_name} #${detection.track_id}`;
    rect.append(el("title", {}, `${name} ${detection.score.toFixed(2)}`));
    svg.append(rect);
    if (labels) {
      svg.append(el("text", { x: x1 + 2, y: Math.max(y1 - 3, fontSize), "font-size": fontSize },
        `${name} ${detection.score.toFixed(2)}`));
    }
  }
  return svg;
}
