"""The batched tensor backend: a whole batch decoded, letterboxed, inferred and post-processed as tensors.

Ultralytics' predictor (backend.Backend) works image by image in Python around one forward pass: letterbox
with OpenCV, stack, infer, NMS per image, a Results object per image. Here the same steps run on the
model's device as a few tensor operations per batch:

  decode       JPEG with torchvision.io.decode_jpeg: the whole batch in one call, on the GPU through nvjpeg
               when the model runs there (PNG, WebP, BMP and any JPEG it refuses go through PIL, codec.decode);
  letterbox    each image scaled with bilinear interpolation (OpenCV's INTER_LINEAR on a CPU, the very pixels
               Ultralytics makes; torch's bilinear interpolation on a GPU, within 1 of OpenCV's per channel)
               and centred on a square of gray 114, as Ultralytics does with rect=False;
  inference    one forward pass (fp16 on a GPU);
  postprocess  confidence filter, best class, torchvision.ops.batched_nms per image, boxes mapped back to
               original pixels and clipped.

On a CPU it gives the Ultralytics backend's detections (same model through Ultralytics' AutoBackend, .pt or
.onnx; same letterbox pixels; same NMS rule: best class only, class-aware, at most 300 boxes) within a score
of 1e-3 and a tenth of a pixel, which tests check on the samples and on generated images. On a GPU, fp16 and
the letterbox's interpolation make small differences; see models.load_backend for how `auto` judges them. Detection
models only: another task raises Unsupported, and `auto` keeps such a model on the Ultralytics backend.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from raylan_common import contract

from .backend import Options, Prediction, trained_size
from .codec import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, DecodedImage, decode, inspect

#: Ultralytics' NMS limits: at most this many boxes enter NMS (highest scores first) and leave it per image.
MAX_NMS = 30000
MAX_DET = 300
#: Letterbox padding, Ultralytics' gray.
PAD_VALUE = 114


class Unsupported(Exception):
    """The model cannot run on the tensor backend (not a .pt detection model): use the Ultralytics one."""


def cv2_bgr_to_rgb_in_place(pixels: np.ndarray) -> np.ndarray:
    """The H×W×3 BGR array turned RGB in its own memory."""
    import cv2

    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, dst=pixels)


def _timestamp(device: Any) -> float:
    """perf_counter() after the device's queued work has finished (CUDA runs asynchronously)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter()


class TensorBackend:
    """Loads a .pt detection model once. Like Backend, call predict from one thread at a time."""

    kind = "tensor"

    def __init__(self, source: str, imgsz: int | None = None, device: str | None = None, half: bool | None = None):
        import torch
        import torchvision  # noqa: F401 - decode_jpeg and batched_nms; fail here, not in the first batch
        from ultralytics import YOLO
        from ultralytics.nn.autobackend import AutoBackend

        self.source = source
        self.model_id = Path(source).stem
        self.device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.torch_device = torch.device(self.device)
        self.half = self.torch_device.type == "cuda" if half is None else bool(half)
        yolo = YOLO(source, task="detect" if source.endswith(".onnx") else None)
        self.imgsz = imgsz or trained_size(yolo, source) or 640
        # Ultralytics' own loader: fused Conv+BN, fp16 where asked, channels-last on x86 CPUs (a third faster
        # than the plain module there), ONNX through ONNX Runtime.
        weights = yolo.model if isinstance(yolo.model, torch.nn.Module) else source
        self.model = AutoBackend(weights, device=self.torch_device, fp16=self.half, fuse=True, verbose=False)
        task = getattr(self.model, "task", None) or "detect"
        if task != "detect":
            raise Unsupported(f"{Path(source).name} is a {task} model; the tensor backend runs detection only")
        self.model.eval()
        self.half = bool(getattr(self.model, "fp16", self.half))
        self.names: dict[int, str] = dict(self.model.names or {})
        self.end2end = bool(getattr(self.model, "end2end", False))
        self.dtype = torch.float16 if self.half else torch.float32
        self.decodes_on_device = self.torch_device.type == "cuda"

    # Decoding

    def decode(self, data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> DecodedImage:
        """One image, as codec.decode checks and names it, its pixels a 3×H×W RGB uint8 tensor on the CPU.
        JPEG through torchvision (libjpeg-turbo), anything else through PIL."""
        header = inspect(data, max_pixels)
        if header.format == "JPEG" and header.mode in ("RGB", "L", "CMYK") and header.decoded_bytes <= max_decoded_bytes:
            pixels = self._decode_jpegs([data], device=None)[0]
            if pixels is not None:
                return DecodedImage(pixels=pixels, width=header.width, height=header.height, format="jpeg")
        image = decode(data, max_pixels, max_decoded_bytes)
        # In place: the BGR array becomes RGB and the tensor is a view of it, so decoding holds no more than
        # codec's Header.decoded_bytes (a copy would add 3 bytes a pixel).
        pixels = cv2_bgr_to_rgb_in_place(image.pixels)
        return DecodedImage(pixels=self.as_tensor_view(pixels), width=image.width, height=image.height,
                            format=image.format)

    def decode_batch(self, frames: list[bytes | bytearray | memoryview]) -> list[Any | None]:
        """JPEGs decoded together on the model's device (nvjpeg on a GPU): one 3×H×W RGB uint8 tensor each,
        or None where the device decoder refused one (the caller falls back to decode())."""
        return self._decode_jpegs(frames, device=self.torch_device if self.decodes_on_device else None)

    @staticmethod
    def _decode_jpegs(frames: list, device: Any) -> list[Any | None]:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [torch.frombuffer(bytearray(frame), dtype=torch.uint8) for frame in frames]
        device = device or "cpu"
        try:
            if device == "cpu":
                return [decode_jpeg(one, mode=ImageReadMode.RGB) for one in data]
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))  # one nvjpeg call
        except RuntimeError:
            if len(data) == 1:
                return [None]
        out: list[Any | None] = []
        for one in data:  # one bad JPEG: the others still decode
            try:
                out.append(decode_jpeg(one, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
        return out

    @staticmethod
    def as_tensor_view(rgb: np.ndarray) -> Any:
        """A 3×H×W view (no copy) of an H×W×3 RGB array."""
        import torch

        return torch.from_numpy(rgb).permute(2, 0, 1)

    @staticmethod
    def as_tensor(pixels: Any) -> Any:
        """A 3×H×W RGB uint8 tensor from codec's H×W×3 BGR array (or the tensor itself)."""
        import torch

        if isinstance(pixels, torch.Tensor):
            return pixels
        return torch.from_numpy(np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1)))

    # Prediction

    def warm_up(self) -> None:
        self.predict([np.zeros((self.imgsz, self.imgsz, 3), dtype=np.uint8)], Options())
        if self.decodes_on_device:  # the first nvjpeg call creates its decoder: not in the first request's time
            import cv2

            ok, jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), dtype=np.uint8))
            if ok:
                self.decode_batch([jpeg.tobytes()])

    def letterbox(self, images: list[Any]) -> tuple[Any, list[tuple[float, float, int, int]]]:
        """The batch as one N×3×S×S tensor on the device (0–1, the model's dtype), and per image the
        gains and padding that map its boxes back: (gain_x, gain_y, pad_left, pad_top). On a CPU each image
        is scaled with OpenCV, as Ultralytics does (the same pixels); on a GPU with torch's bilinear
        interpolation, which may differ from OpenCV by 1 in a channel."""
        import torch

        size = self.imgsz
        on_cpu = self.torch_device.type == "cpu"
        batch = torch.full((len(images), size, size, 3) if on_cpu else (len(images), 3, size, size), PAD_VALUE,
                           dtype=torch.uint8, device=self.torch_device)
        geometry = []
        for index, image in enumerate(images):
            height, width = self.image_size(image)
            ratio = min(size / height, size / width)
            new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
            left, top = round((size - new_w) / 2 - 0.1), round((size - new_h) / 2 - 0.1)
            if on_cpu:
                batch[index, top:top + new_h, left:left + new_w] = torch.from_numpy(self.resized_rgb(image, new_w, new_h))
            else:
                batch[index, :, top:top + new_h, left:left + new_w] = self.resized_on_device(image, new_w, new_h)
            geometry.append((new_w / width, new_h / height, left, top))
        if on_cpu:
            batch = batch.permute(0, 3, 1, 2)  # N×3×S×S in channels-last memory, as the CPU model runs
        return batch.to(self.dtype).div_(255), geometry

    @staticmethod
    def resized_rgb(image: Any, width: int, height: int) -> np.ndarray:
        """An H×W×3 RGB uint8 array at the new size, scaled by OpenCV (INTER_LINEAR)."""
        import cv2

        if isinstance(image, np.ndarray):  # BGR, from codec
            pixels = image if image.shape[1::-1] == (width, height) else cv2.resize(
                image, (width, height), interpolation=cv2.INTER_LINEAR)
            return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        pixels = np.ascontiguousarray(image.permute(1, 2, 0).numpy())  # RGB tensor, from decode()
        if pixels.shape[1::-1] == (width, height):
            return pixels
        return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)

    def resized_on_device(self, image: Any, width: int, height: int) -> Any:
        """A 3×H×W RGB uint8 tensor on the device at the new size (bilinear, half-pixel centres)."""
        import torch
        import torch.nn.functional as F

        image = self.as_tensor(image).to(self.torch_device, non_blocking=True)
        if tuple(image.shape[1:]) == (height, width):
            return image
        resized = F.interpolate(image[None].float(), size=(height, width), mode="bilinear", align_corners=False,
                                antialias=False)[0]
        return resized.round_().clamp_(0, 255).to(torch.uint8)

    def predict(self, images: list[Any], options: Options) -> list[Prediction]:
        """Detections for each image: codec's BGR arrays or RGB uint8 tensors (decode(), decode_batch())."""
        import torch

        start = _timestamp(self.torch_device)
        with torch.inference_mode():
            batch, geometry = self.letterbox(images)
            letterboxed = _timestamp(self.torch_device)
            output = self.model(batch)
            output = output[0] if isinstance(output, (list, tuple)) else output
            inferred = _timestamp(self.torch_device)
            kept = self.postprocess(output, geometry, images, options)
        done = time.perf_counter()
        count = len(images)
        timings = {"preprocess": round((letterboxed - start) * 1000 / count, 3),
                   "inference": round((inferred - letterboxed) * 1000 / count, 3),
                   "postprocess": round((done - inferred) * 1000 / count, 3)}
        out = []
        for image, rows in zip(images, kept):
            detections = [contract.detection(row[:4], row[4], row[5], self.names) for row in rows]
            annotated = self.annotate(image, detections) if options.annotate else None
            out.append(Prediction(detections, dict(timings), annotated))
        return out

    def postprocess(self, output: Any, geometry: list[tuple[float, float, int, int]], images: list[Any],
                    options: Options) -> list[list[list[float]]]:
        """Per image, rows of x1, y1, x2, y2 (original pixels), score, class: Ultralytics' NMS rule."""
        import torch
        from torchvision.ops import batched_nms

        # As Ultralytics' NMS: scores and corners in the output's own dtype (fp16 on a GPU), then float32.
        classes = torch.tensor(options.classes, device=output.device) if options.classes else None
        results = []
        for index, (gain_x, gain_y, left, top) in enumerate(geometry):
            if self.end2end:  # N×300×6: boxes, score, class, already suppressed
                rows = output[index]
                rows = rows[rows[:, 4] > options.conf].float()
                boxes, scores, labels = rows[:, :4], rows[:, 4], rows[:, 5]
            else:  # N×(4+classes)×anchors: xywh, class scores
                prediction = output[index].transpose(0, 1)
                scores, labels = prediction[:, 4:].max(1)
                keep = scores > options.conf
                prediction, scores, labels = prediction[keep], scores[keep], labels[keep]
                xy, wh = prediction[:, :2], prediction[:, 2:4] / 2
                boxes, scores = torch.cat((xy - wh, xy + wh), 1).float(), scores.float()
            if classes is not None:
                keep = (labels[:, None] == classes).any(1)
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            if not self.end2end and len(scores):
                if len(scores) > MAX_NMS:
                    top_k = scores.argsort(descending=True)[:MAX_NMS]
                    boxes, scores, labels = boxes[top_k], scores[top_k], labels[top_k]
                keep = batched_nms(boxes, scores, labels, options.iou)[:MAX_DET]
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            height, width = self.image_size(images[index])
            boxes = boxes.clone()
            boxes[:, 0::2] = ((boxes[:, 0::2] - left) / gain_x).clamp_(0, width)
            boxes[:, 1::2] = ((boxes[:, 1::2] - top) / gain_y).clamp_(0, height)
            results.append(torch.cat((boxes, scores[:, None], labels[:, None].float()), 1).cpu().tolist())
        return results

    @staticmethod
    def image_size(image: Any) -> tuple[int, int]:
        """(height, width) of a BGR array or an RGB tensor."""
        if isinstance(image, np.ndarray):
            return int(image.shape[0]), int(image.shape[1])
        return int(image.shape[1]), int(image.shape[2])

    def annotate(self, image: Any, detections: list[dict]) -> bytes | None:
        """The image with its boxes drawn, as JPEG (Ultralytics' plotting, as the other backend)."""
        import cv2
        from ultralytics.utils.plotting import Annotator, colors

        pixels = image if isinstance(image, np.ndarray) else image.permute(1, 2, 0).flip(2).cpu().numpy()
        annotator = Annotator(np.ascontiguousarray(pixels), example=str(self.names))
        for detection in detections:
            label = f"{detection['class_name']} {detection['score']:.2f}"
            annotator.box_label(detection["box"], label, color=colors(detection["class_id"], True))
        ok, buffer = cv2.imencode(".jpg", annotator.result(), [cv2.IMWRITE_JPEG_QUALITY, 88])
        return buffer.tobytes() if ok else None


#: How close the tensor backend must come to the Ultralytics one for `auto` to choose it on a CPU, where both
#: see the same pixels in fp32 (the tests' tolerance).
SCORE_TOLERANCE = 1e-3
BOX_TOLERANCE_PX = 0.1
#: On a GPU: fp16 and torch's interpolation (within 1 of OpenCV's per channel) move scores and boxes a little;
#: the tolerance the shipped model's .pt and .onnx are held to (tests/test_backend.py).
GPU_SCORE_TOLERANCE = 1e-2
GPU_BOX_TOLERANCE_PX = 1.0
#: The confidence threshold of the start-up comparison: low, so that many boxes are compared.
CHECK_CONF = 0.05


def check_images() -> list[np.ndarray]:
    """Generated BGR images for the start-up comparison: several sizes and aspect ratios (wide, tall, square,
    smaller and larger than the model's input), gradients with filled shapes and noise."""
    import cv2

    rng = np.random.default_rng(7)
    images = []
    for width, height in ((1280, 720), (480, 640), (320, 320), (200, 150), (1000, 1000)):
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        image = np.clip(ramp * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 12, (height, width, 3)), 0, 255)
        image = image.astype(np.uint8)
        for _ in range(6):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            size = int(rng.integers(max(8, min(width, height) // 12), max(9, min(width, height) // 3)))
            if rng.random() < 0.5:
                cv2.circle(image, (x, y), size // 2, color, -1)
            else:
                cv2.rectangle(image, (x, y), (x + size, y + size), color, -1)
        images.append(image)
    return images


def difference(reference: list[Prediction], candidate: list[Prediction], score_tolerance: float = SCORE_TOLERANCE,
               box_tolerance: float = BOX_TOLERANCE_PX) -> str | None:
    """None when both give the same detections within the tolerances (same count and classes, each box matched
    in order of position), else what differs first; lists of other lengths differ in their image count."""
    if len(reference) != len(candidate):
        return f"{len(reference)} vs {len(candidate)} images"
    for index, (a, b) in enumerate(zip(reference, candidate)):
        if len(a.detections) != len(b.detections):
            return f"image {index}: {len(a.detections)} vs {len(b.detections)} detections"
        order = lambda d: (d["class_id"], d["box"])  # noqa: E731
        for da, db in zip(sorted(a.detections, key=order), sorted(b.detections, key=order)):
            box = max(abs(x - y) for x, y in zip(da["box"], db["box"]))
            if da["class_id"] != db["class_id"] or box > box_tolerance or abs(da["score"] - db["score"]) > score_tolerance:
                return (f"image {index}: class {da['class_id']}/{db['class_id']}, box off by {box:.2f} px, score "
                        f"off by {abs(da['score'] - db['score']):.4f}")
    return None
