"""Makes RayLAN's offline demo detector: a YOLO11n trained on synthetic shapes.

No model hub is needed: the script draws a dataset (circles, squares, triangles and stars of varied size,
colour and rotation on textured backgrounds, with exact ground-truth boxes), trains YOLO11n from scratch
with Ultralytics, measures mAP50-95 on a held-out test split, exports .pt and .onnx, and writes sample
images with their ground truth.

    python models/shapes/make_model.py --device 0 --epochs 60            # on a GPU (minutes)
    python models/shapes/make_model.py --device cpu --train 64 --epochs 1 # a smoke run on CPU
    python models/shapes/make_model.py --samples-only                     # just the sample images

Outputs (in --out, default models/shapes): shapes-yolo11n.pt, shapes-yolo11n.onnx, metrics.json;
in --samples (default samples/): sample images and ground_truth.json (boxes in original pixels).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

CLASSES = ["circle", "square", "triangle", "star"]


# ---------------------------------------------------------------------------------------------- drawing
def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background: a colour gradient, blurred blobs, stripes or noise, mixed."""
    kind = rng.integers(0, 4)
    base = rng.integers(0, 256, size=3).astype(np.float32)
    other = rng.integers(0, 256, size=3).astype(np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    t = (np.cos(angle) * x + np.sin(angle) * y)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    image = base[None, None, :] * (1 - t[..., None]) + other[None, None, :] * t[..., None]
    if kind == 1:  # blurred blobs
        small = rng.integers(0, 256, size=(max(height // 40, 2), max(width // 40, 2), 3)).astype(np.float32)
        image = 0.5 * image + 0.5 * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # stripes
        period = rng.uniform(8, 40)
        stripes = (np.sin((x * np.cos(angle + 1) + y * np.sin(angle + 1)) * 2 * math.pi / period) > 0)
        image = image * (0.75 + 0.25 * stripes[..., None])
    elif kind == 3:  # random lines (distractors)
        image = image.copy()
        for _ in range(rng.integers(3, 12)):
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            color = tuple(int(c) for c in rng.integers(0, 256, size=3))
            cv2.line(image, p1, p2, color, int(rng.integers(1, 4)))
    noise = rng.normal(0, rng.uniform(2, 14), size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if kind == "square":
        points = [(math.cos(angle + k * math.pi / 2 + math.pi / 4), math.sin(angle + k * math.pi / 2 + math.pi / 4)) for k in range(4)]
    elif kind == "triangle":
        points = [(math.cos(angle + k * 2 * math.pi / 3), math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
    else:  # star: 5 outer and 5 inner points
        points = []
        for k in range(10):
            radius = 1.0 if k % 2 == 0 else 0.45
            a = angle + k * math.pi / 5
            points.append((radius * math.cos(a), radius * math.sin(a)))
    return np.array([(cx + r * px, cy + r * py) for px, py in points], dtype=np.float64)


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def draw_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[dict]]:
    """One image and its objects: class and exact box (x1, y1, x2, y2) in pixels."""
    image = background(rng, height, width)
    objects: list[dict] = []
    scale = min(height, width)
    for _ in range(int(rng.integers(1, 7))):
        for _attempt in range(20):
            kind = CLASSES[int(rng.integers(0, len(CLASSES)))]
            r = float(rng.uniform(0.05, 0.22) * scale)
            cx = float(rng.uniform(r, width - r))
            cy = float(rng.uniform(r, height - r))
            angle = float(rng.uniform(0, 2 * math.pi))
            if kind == "circle":
                box = [cx - r, cy - r, cx + r, cy + r]
            else:
                pts = polygon(kind, cx, cy, r, angle)
                box = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
            if all(iou(box, o["box"]) < 0.2 for o in objects):
                break
        else:
            continue
        # A colour that stands out from the local background.
        x1, y1, x2, y2 = (int(max(0, box[0])), int(max(0, box[1])), int(min(width, box[2])), int(min(height, box[3])))
        local = image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)].reshape(-1, 3).mean(axis=0)
        for _ in range(10):
            color = rng.integers(0, 256, size=3)
            if np.abs(color - local).sum() > 180:
                break
        color = tuple(int(c) for c in color)
        if kind == "circle":
            cv2.circle(image, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16)), color, -1, cv2.LINE_AA, shift=4)
        else:
            cv2.fillPoly(image, [np.round(pts * 16).astype(np.int32)], color, cv2.LINE_AA, shift=4)
        objects.append({"class": kind, "class_id": CLASSES.index(kind), "box": [round(v, 2) for v in box]})
    return image, objects


def write_split(root: Path, split: str, count: int, rng: np.random.Generator, size: int) -> None:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height = width = size
        image, objects = draw_image(rng, height, width)
        name = f"{split}_{i:05d}"
        cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        with open(root / "labels" / split / f"{name}.txt", "w") as f:
            for o in objects:
                x1, y1, x2, y2 = o["box"]
                f.write(f"{o['class_id']} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                        f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")


def write_samples(folder: Path, rng: np.random.Generator, count: int) -> None:
    """Demo images of varied sizes (not square, larger than the model's input) and their ground truth."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    sizes = [(480, 640), (720, 1280), (600, 600), (512, 384), (360, 640), (768, 1024)]
    for i in range(count):
        height, width = sizes[i % len(sizes)]
        image, objects = draw_image(rng, height, width)
        name = f"shapes_{i:02d}.jpg"
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        truth[name] = {"width": width, "height": height, "objects": objects}
    (folder / "ground_truth.json").write_text(json.dumps({"classes": CLASSES, "images": truth}, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------- training
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3000, help="training images (default 3000)")
    parser.add_argument("--val", type=int, default=300, help="validation images (default 300)")
    parser.add_argument("--test", type=int, default=300, help="held-out test images (default 300)")
    parser.add_argument("--imgsz", type=int, default=320, help="image and model input size (default 320)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="'cpu' or a CUDA device index such as '0'")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/raylan-shapes", help="dataset and training runs (not kept)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--samples", default=str(Path(__file__).resolve().parents[2] / "samples"))
    parser.add_argument("--sample-count", type=int, default=12, help="demo images to write (0: none)")
    parser.add_argument("--samples-only", action="store_true", help="only write the sample images (no training)")
    args = parser.parse_args()
    if args.samples_only:
        write_samples(Path(args.samples), np.random.default_rng(args.seed + 1), args.sample_count)
        return

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO, settings  # imported late: --help works without Ultralytics
    import torch
    import ultralytics

    settings.update({"sync": False})
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data_root = work / "data"
    rng = np.random.default_rng(args.seed)
    started = time.time()
    for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
        write_split(data_root, split, count, rng, args.imgsz)
    data_yaml = work / "shapes.yaml"
    data_yaml.write_text(
        f"path: {data_root}\ntrain: images/train\nval: images/val\ntest: images/test\n"
        + "names:\n" + "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES)))
    generated = time.time()

    model = YOLO("yolo11n.yaml")  # architecture only: trained from scratch, no download
    model.train(
        data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
        workers=args.workers, project=str(work / "runs"), name="train", exist_ok=True, pretrained=False,
        plots=False, amp=False, seed=args.seed, close_mosaic=max(1, args.epochs // 6), patience=args.epochs, verbose=False)
    trained = time.time()
    best = work / "runs" / "train" / "weights" / "best.pt"
    model = YOLO(str(best))
    test = model.val(data=str(data_yaml), split="test", imgsz=args.imgsz, batch=args.batch, device=args.device,
                     plots=False, project=str(work / "runs"), name="test", exist_ok=True, verbose=False)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(best, out / "shapes-yolo11n.pt")
    onnx_path = YOLO(str(best)).export(format="onnx", imgsz=args.imgsz, dynamic=True, simplify=False, device="cpu")
    shutil.copy(onnx_path, out / "shapes-yolo11n.onnx")

    per_class = {CLASSES[int(c)]: round(float(test.box.maps[int(c)]), 4) for c in range(len(CLASSES))}
    metrics = {
        "model": "shapes-yolo11n", "classes": CLASSES, "imgsz": args.imgsz,
        "test_split": {"images": args.test, "mAP50-95": round(float(test.box.map), 4),
                       "mAP50": round(float(test.box.map50), 4), "precision": round(float(test.box.mp), 4),
                       "recall": round(float(test.box.mr), 4), "mAP50-95_per_class": per_class},
        "dataset": {"train": args.train, "val": args.val, "test": args.test, "seed": args.seed},
        "training": {"epochs": args.epochs, "batch": args.batch, "device": str(args.device),
                     "device_name": torch.cuda.get_device_name(0) if args.device != "cpu" and torch.cuda.is_available() else platform.processor() or "cpu",
                     "dataset_seconds": round(generated - started, 1), "train_seconds": round(trained - generated, 1)},
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if args.sample_count > 0:
        write_samples(Path(args.samples), np.random.default_rng(args.seed + 1), args.sample_count)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
