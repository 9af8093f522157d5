"""The model layer: one way to load a detection model and run images through it, for every path on the cluster.

The Serve replica (app.Detector), the Ray Data actors (dataset.Detector) and a video session's own model
(video.local_detector) load through `load_backend` and run through a `Runner`:

  decode   codec's checks, then the backend's decode; a JPEG that the backend decodes on its device (the tensor
           backend on a GPU) is only inspected and left `Encoded`, for the batch to decode together
  budget   what decoding takes, read from each header before any pixel is decoded, kept within
           max_decoded_bytes (per request in the replica: `budget`; per chunk of a block in `Runner.run`)
  batch    images predicted together with one set of options
  predict  the backend's predict; a batch that raises is predicted image by image, so that an image the model
           cannot take fails alone (`inference_failed`)

Backends (`REGISTRY`, the names of contract.BACKENDS but `auto`) follow `DetectionBackend`. Each makes its
detections with contract.detection, the one definition of a detection's shape. An ONNX model is a file format
both backends take (through Ultralytics' AutoBackend and ONNX Runtime), not a backend of its own.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Protocol, runtime_checkable

from raylan_common import contract

from .backend import Backend, Options, Prediction
from .codec import (DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, DecodedImage, Header, ImageError, inspect,
                    too_large)
from .tensor import (BOX_TOLERANCE_PX, CHECK_CONF, GPU_BOX_TOLERANCE_PX, GPU_SCORE_TOLERANCE, SCORE_TOLERANCE,
                     TensorBackend, check_images, difference)

logger = logging.getLogger("ray.serve")


@runtime_checkable
class DetectionBackend(Protocol):
    """A loaded model. predict is called from one thread at a time (Ultralytics' predictors are not thread-safe)."""

    kind: str  # its name in REGISTRY
    source: str  # the model file
    model_id: str
    device: str
    half: bool
    imgsz: int
    names: dict[int, str]
    #: Whether decode_batch decodes JPEGs on the model's device (then decode leaves them to it).
    decodes_on_device: bool

    def decode(self, data: bytes | bytearray | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> DecodedImage: ...

    def warm_up(self) -> None: ...

    def predict(self, images: list[Any], options: Options) -> list[Prediction]: ...


#: The backends by name: `auto` (load_backend) chooses between them.
REGISTRY: dict[str, Callable[..., DetectionBackend]] = {"ultralytics": Backend, "tensor": TensorBackend}


def load_backend(kind: str, source: str, imgsz: int | None = None, device: str | None = None,
                 half: bool | None = None) -> tuple[DetectionBackend, str]:
    """The backend that runs the model, and why it was chosen. kind: a name in REGISTRY (an error if the model
    cannot run on it), or `auto`: the tensor backend where it gives the Ultralytics backend's detections on
    generated images (within SCORE_TOLERANCE and BOX_TOLERANCE_PX on a CPU, the GPU_ ones on a GPU), else the
    Ultralytics backend, also when the tensor backend cannot load or run the model."""
    if kind not in contract.BACKENDS:
        raise contract.backend_error(kind)
    if kind != "auto":
        return REGISTRY[kind](source, imgsz=imgsz, device=device, half=half), "asked for"
    try:
        tensor = REGISTRY["tensor"](source, imgsz=imgsz, device=device, half=half)
    except Exception as error:  # noqa: BLE001 - any failure keeps the model on Ultralytics' predictor
        return (REGISTRY["ultralytics"](source, imgsz=imgsz, device=device, half=half),
                f"the tensor backend cannot load it ({error})")
    reference = REGISTRY["ultralytics"](source, imgsz=tensor.imgsz, device=tensor.device, half=tensor.half)
    on_gpu = tensor.device.startswith("cuda")
    tolerances = (GPU_SCORE_TOLERANCE, GPU_BOX_TOLERANCE_PX) if on_gpu else (SCORE_TOLERANCE, BOX_TOLERANCE_PX)
    images, options = check_images(), Options(conf=CHECK_CONF)
    try:
        expected = reference.predict(images, options)
        why = difference(expected, tensor.predict(images, options), *tolerances)
    except Exception as error:  # noqa: BLE001 - as above
        expected, why = [], f"it failed on the check images ({type(error).__name__}: {error})"
    boxes = sum(len(p.detections) for p in expected)
    if why is None:
        chosen, reason = tensor, (f"matches the Ultralytics backend on generated images ({boxes} boxes, score within "
                                  f"{tolerances[0]:g}, box within {tolerances[1]:g} px)")
        if boxes == 0:
            reason = "no boxes to compare on generated images (a model without trained weights?); chosen unchecked"
    else:
        chosen, reason = reference, f"the tensor backend differed from the Ultralytics backend ({why})"
    tensor = reference = None  # the one not chosen is freed (its GPU memory too, below)
    if on_gpu:
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()
    return chosen, reason


# ---------------------------------------------------------------------------------------------- decode
class Encoded(NamedTuple):
    """A JPEG left encoded for the batch to decode on the model's device (nvjpeg), its header already checked."""
    data: bytes | bytearray | memoryview


def budget(headers: list[Header | ImageError], max_decoded_bytes: int) -> list[Header | ImageError]:
    """A request's decoded-memory budget: images in order, each admitted while the sum of their
    decoded_bytes stays within max_decoded_bytes. One that could never fit is too_large; one that fits
    alone but not after the images before it is over_budget, for the client to send again on its own."""
    used, out = 0, []
    for header in headers:
        if isinstance(header, Header):
            if header.decoded_bytes > max_decoded_bytes:
                header = too_large(header.width, header.height, (
                    f"decoding it takes {header.decoded_bytes / 2**20:.0f} MiB, over the budget of "
                    f"{max_decoded_bytes / 2**20:.0f} MiB per request"))
            elif used + header.decoded_bytes > max_decoded_bytes:
                header = ImageError("over_budget", (
                    f"decoding it takes {header.decoded_bytes / 2**20:.0f} MiB and the request's images before it "
                    f"{used / 2**20:.0f} MiB, over the budget of {max_decoded_bytes / 2**20:.0f} MiB per request; "
                    f"send it in a smaller request"))
            else:
                used += header.decoded_bytes
        out.append(header)
    return out


def inference_failed(error: Exception) -> ImageError:
    """The error of an image the model failed on."""
    return ImageError("inference_failed", f"the model failed on this image: {type(error).__name__}: "
                                          f"{str(error)[:200]}")


class Runner:
    """One loaded model and the steps around it: decode → budget → batch → predict. Decoding runs on the
    runner's own small pool (default: half the host's cores, at least 1): Python's default pool would decode
    every image at once and, on a CPU host, take the cores inference needs."""

    def __init__(self, backend: DetectionBackend, reason: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, decode_threads: int | None = None):
        self.backend, self.reason = backend, reason
        self.max_pixels, self.max_decoded_bytes = max_pixels, max_decoded_bytes
        self.decode_threads = decode_threads or max(1, (os.cpu_count() or 2) // 2)
        self.decoder = ThreadPoolExecutor(max_workers=self.decode_threads, thread_name_prefix="raylan-decode")

    @classmethod
    def load(cls, kind: str, source: str, imgsz: int | None = None, device: str | None = None,
             half: bool | None = None, **limits: Any) -> Runner:
        """load_backend's choice, warmed up (the first pass is slow: not while the first images wait)."""
        backend, reason = load_backend(kind, source, imgsz=imgsz, device=device, half=half)
        logger.info("Backend %s (%s).", backend.kind, reason)
        backend.warm_up()
        return cls(backend, reason, **limits)

    def decode(self, data: bytes | bytearray | memoryview) -> tuple[DecodedImage, float]:
        """The backend's decode() and the seconds it took, measured in the decoding thread. A JPEG that the
        backend decodes on its device is only inspected here, its pixels left Encoded for the batch."""
        start = time.perf_counter()
        if self.backend.decodes_on_device:
            header = inspect(data, self.max_pixels)
            if header.format == "JPEG" and header.mode in ("RGB", "L") and header.decoded_bytes <= self.max_decoded_bytes:
                image = DecodedImage(pixels=Encoded(data), width=header.width, height=header.height, format="jpeg")
                return image, time.perf_counter() - start
        image = self.backend.decode(data, self.max_pixels, self.max_decoded_bytes)
        return image, time.perf_counter() - start

    def decode_on_device(self, items: list) -> tuple[list, float]:
        """The batch's pixels, its Encoded JPEGs decoded together on the device (one that the device decoder
        refuses goes through backend.decode, and an undecodable one becomes its ImageError), and the seconds
        that took per decoded image."""
        encoded = [i for i, item in enumerate(items) if isinstance(item, Encoded)]
        if not encoded:
            return list(items), 0.0
        start = time.perf_counter()
        out = list(items)
        try:
            decoded = self.backend.decode_batch([items[i].data for i in encoded])
        except Exception as error:  # noqa: BLE001 - the device decoder failed: each image is decoded on its own below
            logger.warning("Decoding %d JPEGs on the device failed (%s); decoding them one by one.", len(encoded),
                           type(error).__name__)
            decoded = [None] * len(encoded)
        for i, pixels in zip(encoded, decoded):
            if pixels is None:
                try:
                    pixels = self.backend.decode(items[i].data, self.max_pixels, self.max_decoded_bytes).pixels
                except ImageError as error:
                    pixels = error
                except Exception as error:  # noqa: BLE001 - never fail the batch for one image
                    pixels = ImageError("decode_failed", f"the jpeg data cannot be decoded: {error}")
            out[i] = pixels
        return out, (time.perf_counter() - start) / len(encoded)

    def predict(self, pixels: list[Any], options: Options) -> list[Prediction | ImageError]:
        """Predicts the images together; if that raises, each on its own, so that one image the model cannot
        take fails alone (inference_failed) and the others still get their detections."""
        if not pixels:
            return []
        try:
            predictions = self.backend.predict(pixels, options)
            for prediction in predictions:
                prediction.batch_size = len(pixels)
            return predictions
        except Exception as error:  # noqa: BLE001 - answered per image below
            if len(pixels) == 1:
                return [inference_failed(error)]
            logger.warning("A batch of %d images failed (%s); predicting them one by one.", len(pixels),
                           type(error).__name__)
        outcomes: list[Prediction | ImageError] = []
        for one in pixels:
            try:
                outcomes.append(self.backend.predict([one], options)[0])
            except Exception as error:  # noqa: BLE001 - this image's own error
                outcomes.append(inference_failed(error))
        return outcomes

    def run(self, items: list[bytes | bytearray | memoryview | ImageError],
            options: Options) -> list[tuple[DecodedImage, Prediction] | ImageError]:
        """Every step for a list of encoded images (an ImageError stays as it is): in order, chunks whose
        decoding together stays within max_decoded_bytes, each decoded on the pool and predicted as one batch.
        Each outcome is (the decoded image, its prediction) or the image's ImageError."""
        outcomes: list[Any] = list(items)
        chunk: list[int] = []
        used = 0
        for index, item in enumerate(items):
            if isinstance(item, ImageError):
                continue
            try:  # the header alone: the memory decoding takes, so a chunk never holds more than the budget
                need = inspect(item, self.max_pixels).decoded_bytes
            except ImageError as error:
                outcomes[index] = error
                continue
            if chunk and used + need > self.max_decoded_bytes:
                self._run_chunk(items, chunk, options, outcomes)
                chunk, used = [], 0
            chunk.append(index)
            used += need
        if chunk:
            self._run_chunk(items, chunk, options, outcomes)
        return outcomes

    def _decode_or_error(self, data: Any) -> DecodedImage | ImageError:
        try:
            return self.decode(data)[0]
        except ImageError as error:
            return error
        except Exception as error:  # noqa: BLE001 - never fail the chunk for one image
            return ImageError("decode_failed", f"the image cannot be decoded: {type(error).__name__}: {error}")

    def _run_chunk(self, items: list, indices: list[int], options: Options, outcomes: list[Any]) -> None:
        images = list(self.decoder.map(self._decode_or_error, [items[index] for index in indices]))
        live = [(index, image) for index, image in zip(indices, images) if not isinstance(image, ImageError)]
        for index, image in zip(indices, images):
            if isinstance(image, ImageError):
                outcomes[index] = image
        pixels, _ = self.decode_on_device([image.pixels for _, image in live])
        ready = []
        for (index, image), one in zip(live, pixels):
            if isinstance(one, ImageError):
                outcomes[index] = one
            else:
                ready.append((index, image, one))
        for (index, image, _), prediction in zip(ready, self.predict([one for _, _, one in ready], options)):
            outcomes[index] = prediction if isinstance(prediction, ImageError) else (image, prediction)
