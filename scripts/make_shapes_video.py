#!/usr/bin/env python3
"""Writes a test video of moving shapes and its ground truth, for the video sessions' tests.

Three shapes of the shipped demo model's classes (models/shapes: circle, square, triangle, star; three
different ones, drawn as make_model.py draws its training images) move on a static textured background.
The frame is cut into three strips along its longer side and each shape bounces on a straight line inside
its own strip, turning slowly, so the shapes never overlap and each keeps its identity: a tracker that
switches ids has made a mistake. Sizes are within the model's training range: a radius of 5–22% of the
model's square input, which the frame's longer side fills once letterboxed (here about 7–13% of that side).

    python scripts/make_shapes_video.py OUT.mp4 --frames 90 --fps 30 --width 640 --height 360 --seed 0 \
        --truth OUT.json

With --crossing, three shapes of one class and one colour instead cross each other's paths and occlude each
other (generate_crossing_frames): only their motion tells them apart, which is what a tracker is for.

Ground truth (--truth): {"fps", "width", "height", "classes", "frames": [{"frame": i, "objects":
[{"id": shape id (0–2), "class_id", "class", "box": [x1, y1, x2, y2]}]}]}, boxes in pixels: the exact
extent of the drawn shape. The video is MPEG-4 Part 2 ('mp4v') at OpenCV's default bit rate for it, one
bit per pixel per frame (width × height × fps bits a second): good quality, about the model's JPEG training
images' (quality 92). generate_frames() is also what scripts/mjpeg_server.py serves.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "shapes"))
from make_model import CLASSES, background, polygon  # noqa: E402 - the training images' drawing

#: Shapes in a video, one per strip.
SHAPES = 3
#: Blank pixels between two strips (no two shapes' boxes come closer than this).
GAP = 8


class Shape:
    """One shape bouncing inside its strip: position, velocity, size, turn and colour."""

    def __init__(self, ident: int, kind: str, strip: tuple[int, int, int, int], rng: np.random.Generator,
                 scale: float):
        """scale: the frame's longer side, which the model's input side stands for."""
        self.ident, self.kind = ident, kind
        x1, y1, x2, y2 = strip
        self.strip = strip
        self.r = float(min(rng.uniform(0.32, 0.42) * min(x2 - x1, y2 - y1), 0.2 * scale))
        self.cx = float(rng.uniform(x1 + self.r, x2 - self.r))
        self.cy = float(rng.uniform(y1 + self.r, y2 - self.r))
        speed = rng.uniform(0.006, 0.015) * scale  # pixels a frame
        heading = rng.uniform(0, 2 * math.pi)
        self.vx, self.vy = speed * math.cos(heading), speed * math.sin(heading)
        self.angle = float(rng.uniform(0, 2 * math.pi))
        self.turn = float(rng.uniform(-0.03, 0.03))  # radians a frame
        self.color = (0, 0, 0)

    def points(self) -> np.ndarray | None:
        return None if self.kind == "circle" else polygon(self.kind, self.cx, self.cy, self.r, self.angle)

    def box(self) -> list[float]:
        pts = self.points()
        if pts is None:
            return [self.cx - self.r, self.cy - self.r, self.cx + self.r, self.cy + self.r]
        return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]

    def draw(self, image: np.ndarray) -> None:
        pts = self.points()
        if pts is None:
            cv2.circle(image, (int(round(self.cx * 16)), int(round(self.cy * 16))), int(round(self.r * 16)),
                       self.color, -1, cv2.LINE_AA, shift=4)
        else:
            cv2.fillPoly(image, [np.round(pts * 16).astype(np.int32)], self.color, cv2.LINE_AA, shift=4)

    def step(self) -> None:
        """One frame on: straight on, bouncing off the strip's edges (the box, not the centre, stays inside)."""
        x1, y1, x2, y2 = self.strip
        self.cx += self.vx
        self.cy += self.vy
        self.angle += self.turn
        bx1, by1, bx2, by2 = self.box()
        if bx1 < x1 or bx2 > x2:
            self.vx = -self.vx
            self.cx += (x1 - bx1) if bx1 < x1 else (x2 - bx2)
        if by1 < y1 or by2 > y2:
            self.vy = -self.vy
            self.cy += (y1 - by1) if by1 < y1 else (y2 - by2)


def strips(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The three strips, side by side along the frame's longer side, GAP pixels apart."""
    long_side = max(width, height)
    size = (long_side - (SHAPES + 1) * GAP) / SHAPES
    out = []
    for k in range(SHAPES):
        start = int(round(GAP + k * (size + GAP)))
        end = int(round(start + size))
        out.append((start, GAP, end, height - GAP) if width >= height else (GAP, start, width - GAP, end))
    return out


def contrasting_color(image: np.ndarray, strip: tuple[int, int, int, int], rng: np.random.Generator) -> tuple:
    """A colour far (in summed absolute BGR difference) from every part of the strip's background."""
    x1, y1, x2, y2 = strip
    region = image[y1:y2, x1:x2].astype(np.float32)
    cells = cv2.resize(region, (8, 8), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    candidates = rng.integers(0, 256, size=(200, 3)).astype(np.float32)
    nearest = np.abs(candidates[:, None, :] - cells[None, :, :]).sum(axis=2).min(axis=1)
    return tuple(int(c) for c in candidates[int(nearest.argmax())])


def generate_frames(width: int, height: int, seed: int, frames: int | None = None
                    ) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """BGR frames and their objects (as the ground truth's "objects"); forever when frames is None."""
    rng = np.random.default_rng(seed)
    scene = background(rng, height, width)
    kinds = [CLASSES[int(k)] for k in rng.choice(len(CLASSES), size=SHAPES, replace=False)]
    scale = max(width, height)
    shapes = [Shape(i, kind, strip, rng, scale) for i, (kind, strip) in enumerate(zip(kinds, strips(width, height)))]
    for shape in shapes:
        shape.color = contrasting_color(scene, shape.strip, rng)
    index = 0
    while frames is None or index < frames:
        image = scene.copy()
        objects = []
        for shape in shapes:
            shape.draw(image)
            objects.append({"id": shape.ident, "class_id": CLASSES.index(shape.kind), "class": shape.kind,
                            "box": [round(v, 2) for v in shape.box()]})
        yield image, objects
        for shape in shapes:
            shape.step()
        index += 1


def generate_crossing_frames(width: int, height: int, seed: int, frames: int
                             ) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """Three shapes of one class and one colour that cross (--crossing): shape 0 goes left to right and shape
    1 right to left on nearly the same line, passing in front of it (shape 0 is drawn last) mid-video, so each
    ends where the other began; shape 2 goes top to bottom across both their paths at a third of the width.
    Only motion tells them apart: a tracker that keys on the class (or the colour) gives all three one id."""
    rng = np.random.default_rng(seed)
    scene = background(rng, height, width)
    kind = CLASSES[int(rng.integers(len(CLASSES)))]
    scale = max(width, height)
    r = 0.09 * scale
    margin = r + GAP
    whole = (0, 0, width, height)
    shapes = [Shape(i, kind, whole, rng, scale) for i in range(SHAPES)]
    color = contrasting_color(scene, whole, rng)
    steps = max(1, frames - 1)
    apart = 0.5 * r  # each of the two lines this far from the middle: the shapes overlap by half as they pass
    paths = [((margin, height / 2 - apart), (width - margin, height / 2 - apart)),
             ((width - margin, height / 2 + apart), (margin, height / 2 + apart)),
             ((width / 3, margin), (width / 3, height - margin))]
    for shape, ((x1, y1), (x2, y2)) in zip(shapes, paths):
        shape.r, shape.color = r, color
        shape.cx, shape.cy = x1, y1
        shape.vx, shape.vy = (x2 - x1) / steps, (y2 - y1) / steps
    order = [2, 1, 0]  # drawn back to front: 0 passes in front of 1
    for _ in range(frames):
        image = scene.copy()
        for index in order:
            shapes[index].draw(image)
        yield image, [{"id": shape.ident, "class_id": CLASSES.index(kind), "class": kind,
                       "box": [round(v, 2) for v in shape.box()]} for shape in shapes]
        for shape in shapes:
            shape.cx += shape.vx
            shape.cy += shape.vy
            shape.angle += shape.turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the video to write (.mp4)")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", help="where to write the ground truth (JSON)")
    parser.add_argument("--crossing", action="store_true",
                        help="three shapes of one class and colour whose paths cross (see generate_crossing_frames)")
    args = parser.parse_args()
    if args.frames < 1 or args.fps <= 0 or args.width < 96 or args.height < 96:
        parser.error("--frames must be at least 1, --fps positive, --width and --height at least 96")
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (args.width, args.height))
    if not writer.isOpened():
        sys.exit(f"error: OpenCV cannot write {args.out} with the 'mp4v' codec")
    truth = {"fps": args.fps, "width": args.width, "height": args.height, "classes": CLASSES, "frames": []}
    generate = generate_crossing_frames if args.crossing else generate_frames
    for index, (image, objects) in enumerate(generate(args.width, args.height, args.seed, args.frames)):
        writer.write(image)
        truth["frames"].append({"frame": index, "objects": objects})
    writer.release()
    if args.truth:
        Path(args.truth).write_text(json.dumps(truth, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}: {args.frames} frames, {args.width}x{args.height} at {args.fps:g} fps")


if __name__ == "__main__":
    main()
