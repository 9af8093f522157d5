"""One YOLO model in one replica: loading (.pt or .onnx through Ultralytics), warm-up, batched predict."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raylan_common import contract

from .codec import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, DecodedImage, decode

@dataclass
class Options:
    conf: float = 0.25
    iou: float = 0.7
    classes: tuple[int, ...] | None = None
    annotate: bool = False

    def key(self) -> tuple:
        return (self.conf, self.iou, self.classes, self.annotate)


@dataclass
class Prediction:
    detections: list[dict]
    timings_ms: dict[str, float] = field(default_factory=dict)
    annotated_jpeg: bytes | None = None
    #: How many images the model predicted together with this one (models.Runner sets it).
    batch_size: int = 1


def trained_size(model, source: str) -> int | None:
    """The input size a model was trained or exported at: .pt train_args, ONNX metadata."""
    try:
        if source.endswith(".onnx"):
            import ast
            import onnxruntime

            session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
            value = ast.literal_eval(session.get_modelmeta().custom_metadata_map.get("imgsz", "None"))
        else:
            value = ((getattr(model, "ckpt", None) or {}).get("train_args") or {}).get("imgsz")
        if isinstance(value, (list, tuple)):
            value = max(value)
        return int(value) if value else None
    except Exception:  # noqa: BLE001 - an unknown size falls back to the default
        return None


class Backend:
    """Loads the model once. Ultralytics predictors are not thread-safe: call predict from one thread."""

    kind = "ultralytics"
    #: Whether decode_batch decodes on the model's device (tensor.TensorBackend on a GPU); never here.
    decodes_on_device = False

    def __init__(self, source: str, imgsz: int | None = None, device: str | None = None, half: bool | None = None):
        from ultralytics import YOLO
        import torch

        self.source = source
        self.model_id = Path(source).stem
        self.device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.half = self.device.startswith("cuda") if half is None else half
        task = "detect" if source.endswith(".onnx") else None
        self.model = YOLO(source, task=task)
        self.imgsz = imgsz or trained_size(self.model, source) or 640
        self.names: dict[int, str] = dict(self.model.names or {})

    @staticmethod
    def decode(data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> DecodedImage:
        """One image as predict() takes it: codec.decode's BGR array."""
        return decode(data, max_pixels, max_decoded_bytes)

    def warm_up(self) -> None:
        self.predict([np.zeros((self.imgsz, self.imgsz, 3), dtype=np.uint8)], Options())
        if not self.names:
            self.names = dict(self.model.names or {})

    def predict(self, images: list[np.ndarray], options: Options) -> list[Prediction]:
        results = self.model.predict(
            images, imgsz=self.imgsz, conf=options.conf, iou=options.iou,
            classes=list(options.classes) if options.classes else None, device=self.device, half=self.half,
            # Always letterbox to a square: with rect letterboxing, Ultralytics pads a batch of mixed sizes
            # differently from a lone image, so results would depend on what shared the dynamic batch.
            rect=False, verbose=False)
        out = []
        for result in results:
            boxes = result.boxes
            xyxy = boxes.xyxy.cpu().numpy().tolist() if len(boxes) else []
            scores = boxes.conf.cpu().numpy().tolist() if len(boxes) else []
            classes = boxes.cls.cpu().numpy().astype(int).tolist() if len(boxes) else []
            detections = [contract.detection(box, score, cls, self.names) for box, score, cls in zip(xyxy, scores, classes)]
            speed = result.speed or {}
            annotated = None
            if options.annotate:
                import cv2
                ok, buffer = cv2.imencode(".jpg", result.plot(), [cv2.IMWRITE_JPEG_QUALITY, 88])
                annotated = buffer.tobytes() if ok else None
            out.append(Prediction(detections, {
                "preprocess": round(float(speed.get("preprocess", 0.0)), 3),
                "inference": round(float(speed.get("inference", 0.0)), 3),
                "postprocess": round(float(speed.get("postprocess", 0.0)), 3)}, annotated))
        return out
