"""Measures, on the cluster's device, what RayLAN's end-to-end figure is compared against.

    python -m raylan_bench.run --model M --images DIR --mode model_only|ultralytics|seed [--batch 8 ...]

Prints one line `RAYLAN_BENCH {json}` for `raylan bench` to read from the job's log.
- model_only: the model's forward pass alone on preprocessed tensors (letterboxed to imgsz), per batch size.
- ultralytics: `model.predict` over the decoded images, batched, as a user would write it without RayLAN.
- seed: the seed's pattern — one Ray task per image that loads the model inside the task.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_AUTOINSTALL", "false")
# A job's entrypoint inherits OMP_NUM_THREADS=1 from Ray's job supervisor (an actor that holds no CPU), which would
# hold torch to one thread. The references stand for a user's own loop run on the host, which has no such limit:
# torch then takes the host's cores. (The seed's tasks keep Ray's setting: that is the seed's pattern.)
if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and os.environ.get("OMP_NUM_THREADS") == "1":
    del os.environ["OMP_NUM_THREADS"]


def load_images(folder: str, limit: int):
    import cv2

    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"})
    images = [cv2.imread(str(p)) for p in paths[:limit]]
    return [image for image in images if image is not None]


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    import platform

    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def model_only(args) -> dict:
    import torch
    from ultralytics import YOLO

    model = YOLO(args.model)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    half = device.startswith("cuda")
    net = model.model.to(device).eval()
    net = net.half() if half else net.float()
    sizes = sorted({int(b) for b in args.batches.split(",")})
    results = {}
    with torch.inference_mode():
        for batch in sizes:
            x = torch.rand(batch, 3, args.imgsz, args.imgsz, device=device)
            x = x.half() if half else x
            for _ in range(2):
                net(x)
            if half:
                torch.cuda.synchronize()
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                net(x)
                count += batch
            if half:
                torch.cuda.synchronize()
            results[str(batch)] = count / (time.perf_counter() - start)
    best = max(results, key=results.get)
    return {"mode": "model_only", "device": device_name(device), "half": half, "imgsz": args.imgsz, "images_per_second": results,
            "best_batch": int(best), "best_images_per_second": results[best]}


def ultralytics_loop(args) -> dict:
    import torch
    from ultralytics import YOLO

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    images = load_images(args.images, args.limit)
    model = YOLO(args.model)
    model.predict(images[:1], imgsz=args.imgsz, device=device, half=device.startswith("cuda"), verbose=False)
    start = time.perf_counter()
    done = 0
    while True:
        for i in range(0, len(images), args.batch):
            model.predict(images[i:i + args.batch], imgsz=args.imgsz, device=device, half=device.startswith("cuda"),
                          verbose=False)
            done += len(images[i:i + args.batch])
        if time.perf_counter() - start >= args.seconds:
            break
    seconds = time.perf_counter() - start
    return {"mode": "ultralytics", "device": device_name(device), "batch": args.batch, "images": done,
            "images_per_second": done / seconds}


def seed_pattern(args) -> dict:
    import ray

    ray.init()
    images = load_images(args.images, args.limit)
    model_path = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model

    @ray.remote(num_gpus=args.gpus)
    def detect(image):
        from ultralytics import YOLO  # the seed: the model is loaded inside every task

        model = YOLO(model_path)
        return len(model.predict(image, imgsz=args.imgsz, verbose=False)[0].boxes)

    start = time.perf_counter()
    ray.get([detect.remote(image) for image in images])
    seconds = time.perf_counter() - start
    return {"mode": "seed", "images": len(images), "images_per_second": len(images) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["model_only", "ultralytics", "seed"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", default="bench_images")
    parser.add_argument("--imgsz", type=int, default=None, help="default: the model's own size, as the service uses")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=256)
    parser.add_argument("--gpus", type=float, default=0)
    args = parser.parse_args()
    if args.imgsz is None:
        from ultralytics import YOLO

        from raylan_detect.backend import trained_size

        args.imgsz = trained_size(YOLO(args.model), args.model) or 640
    run = {"model_only": model_only, "ultralytics": ultralytics_loop, "seed": seed_pattern}[args.mode]
    print("RAYLAN_BENCH " + json.dumps(run(args)), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
