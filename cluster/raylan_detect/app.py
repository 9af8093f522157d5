"""The detection service as a Ray Serve application (import path `raylan_detect.app:build`).

HTTP API (under the application's route prefix, e.g. /raylan/<app>):
  POST /detect          body: one encoded image (JPEG, PNG, WebP, BMP). Query: conf, iou, classes (comma
                        separated class ids), annotate (1 to get the annotated JPEG, base64).
                        200 → one result; 400 or 422 → {"error": {"code", "message"}}.
  POST /detect/batch    body: several images, each a 4-byte big-endian length then its bytes; same query.
                        200 → {"results": [...]}, one per image in order, each a result or an error;
                        400 → {"error": {"code": "bad_request", "message"}}.
  GET  /models          the model this application serves.
  GET  /healthz         200 once the model is loaded and warmed up.
Status codes of a refusal, the same in both forms: 400 for a malformed request (code `bad_request`: a bad
query parameter or batch framing), 422 for a well-formed request whose image is unusable (`empty`,
`unsupported_format`, `decode_failed`, `too_large`). In a batch, an unusable image is an error item of its
own in the 200 answer; only a bad request refuses the whole batch.
A result: {"model", "image": {"width", "height", "format"}, "detections": [{"box": [x1, y1, x2, y2] in
original pixels, "score", "class_id", "class_name"}], "batch_size", "timings_ms": {"queue", "decode",
"preprocess", "inference", "postprocess", "total"}}.
"""
import asyncio
import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from .backend import Backend, Options, Prediction
from .codec import DEFAULT_MAX_PIXELS, DecodedImage, ImageError, decode, split_frames

api = FastAPI(title="RayLAN detection service")

#: The error code of a malformed request (query or batch framing), answered with HTTP 400.
BAD_REQUEST = "bad_request"


class Decoded(NamedTuple):
    """One image of a request, decoded on the decode pool."""
    image: DecodedImage
    decode_s: float  # seconds decoding took, measured in the decoding thread
    ready: float  # perf_counter() when decoding would have ended without waiting for a decode thread


class BatchItem(NamedTuple):
    """What one image hands to the dynamic batch."""
    pixels: np.ndarray
    options: Options
    ready: float  # perf_counter() when the image was decoded: its queue time runs from here


class Inferred(NamedTuple):
    """What the dynamic batch hands back for one image."""
    prediction: Prediction
    queue_s: float  # from decoded to the batch's start
    batch_size: int  # how many images shared the batch


def make_answer(model_id: str, image: DecodedImage, prediction: Prediction, batch_size: int, queue_ms: float,
                decode_ms: float, received: float) -> dict:
    """One image's result, as /detect answers it and /detect/batch lists it. `received` is the
    perf_counter() when the request arrived: timings_ms.total runs from it to now."""
    answer = {
        "model": model_id,
        "image": {"width": image.width, "height": image.height, "format": image.format},
        "detections": prediction.detections, "batch_size": batch_size,
        "timings_ms": {"queue": round(queue_ms, 3), "decode": round(decode_ms, 3), **prediction.timings_ms,
                       "total": round((time.perf_counter() - received) * 1000, 3)}}
    if prediction.annotated_jpeg is not None:
        answer["annotated_jpeg"] = base64.b64encode(prediction.annotated_jpeg).decode()
    return answer


def error_answer(error: ImageError) -> JSONResponse:
    """A refused request: 400 for a malformed one (`bad_request`), 422 for an unusable image."""
    return JSONResponse({"error": error.as_dict()}, status_code=400 if error.code == BAD_REQUEST else 422)


def parse_options(request: Request) -> Options:
    """The query's options. Raises ImageError(bad_request) for a value that does not parse."""
    query = request.query_params
    classes = query.get("classes")
    try:
        return Options(
            conf=float(query.get("conf", 0.25)), iou=float(query.get("iou", 0.7)),
            classes=tuple(int(c) for c in classes.split(",") if c.strip()) if classes else None,
            annotate=query.get("annotate", "0") in ("1", "true", "yes"))
    except ValueError as error:
        raise ImageError(BAD_REQUEST, f"invalid query parameter: {error}")


def timed_decode(data: bytes, max_pixels: int) -> tuple[DecodedImage, float]:
    """decode() and the seconds it took, measured in the decoding thread."""
    start = time.perf_counter()
    image = decode(data, max_pixels)
    return image, time.perf_counter() - start


@serve.deployment(name="Detector")
@serve.ingress(api)
class Detector:
    def __init__(self, model: str, imgsz: int | None = None, max_batch: int = 8, batch_wait_ms: float = 10.0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, device: str | None = None, half: bool | None = None,
                 decode_threads: int | None = None):
        self.max_pixels = max_pixels
        # Decoding gets its own small pool (default: half the host's cores, at least 1). Python's default
        # pool would decode every image of a multi-image request at once and, on a CPU host, take the
        # cores inference needs.
        self.decode_threads = decode_threads or max(1, (os.cpu_count() or 2) // 2)
        self.decoder = ThreadPoolExecutor(max_workers=self.decode_threads, thread_name_prefix="raylan-decode")
        self.max_batch = max_batch
        self.backend = Backend(model, imgsz=imgsz, device=device, half=half)
        self.backend.warm_up()
        self.infer.set_max_batch_size(max_batch)
        self.infer.set_batch_wait_timeout_s(batch_wait_ms / 1000.0)

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", "model": self.backend.model_id}

    @api.get("/models")
    def models(self) -> dict:
        backend = self.backend
        return {"models": [{
            "id": backend.model_id, "source": backend.source, "imgsz": backend.imgsz, "device": backend.device,
            "half": backend.half, "max_batch": self.max_batch, "decode_threads": self.decode_threads,
            "classes": backend.names}]}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def infer(self, items: list[BatchItem]) -> list[Inferred]:
        """One dynamic batch: images from concurrent requests, predicted together per option set."""
        started = time.perf_counter()
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.options.key(), []).append(index)
        results: list[Inferred | None] = [None] * len(items)
        for indices in groups.values():
            predictions = await asyncio.to_thread(
                self.backend.predict, [items[i].pixels for i in indices], items[indices[0]].options)
            for i, prediction in zip(indices, predictions):
                results[i] = Inferred(prediction, queue_s=started - items[i].ready, batch_size=len(items))
        return results

    async def decode_frame(self, data: bytes) -> Decoded:
        """Decodes on the decode pool. Time spent waiting for a decode thread counts as queueing, not
        decoding: `ready` is when decoding would have ended without that wait."""
        waiting = time.perf_counter()
        image, decode_s = await asyncio.get_running_loop().run_in_executor(
            self.decoder, timed_decode, data, self.max_pixels)
        return Decoded(image, decode_s, ready=waiting + decode_s)

    async def finish(self, decoded: Decoded, options: Options, received: float) -> dict:
        """Predicts one decoded image (in a dynamic batch) and builds its answer."""
        inferred = await self.infer(BatchItem(decoded.image.pixels, options, decoded.ready))
        return make_answer(
            self.backend.model_id, decoded.image, inferred.prediction, batch_size=inferred.batch_size,
            queue_ms=inferred.queue_s * 1000, decode_ms=decoded.decode_s * 1000, received=received)

    @api.post("/detect")
    async def detect(self, request: Request):
        received = time.perf_counter()
        try:
            options = parse_options(request)
            return await self.finish(await self.decode_frame(await request.body()), options, received)
        except ImageError as error:
            return error_answer(error)

    @api.post("/detect/batch")
    async def detect_batch(self, request: Request):
        received = time.perf_counter()
        try:
            options = parse_options(request)
            frames = split_frames(await request.body())
        except ImageError as error:
            return error_answer(error)
        except ValueError as error:
            return error_answer(ImageError(BAD_REQUEST, str(error)))

        async def decoded(frame: bytes) -> Decoded | ImageError:
            try:
                return await self.decode_frame(frame)
            except ImageError as error:
                return error

        # Decode every frame first, then hand them to the batcher together, so that one request's images
        # share a batch instead of trickling in one decode apart.
        images = await asyncio.gather(*(decoded(frame) for frame in frames))

        async def one(image: Decoded | ImageError) -> dict:
            if isinstance(image, ImageError):
                return {"error": image.as_dict()}
            return await self.finish(image, options, received)

        return {"results": await asyncio.gather(*(one(image) for image in images))}


def build(args: dict) -> Any:
    """The application builder Serve calls with the config's `args`."""
    return Detector.bind(
        model=args["model"], imgsz=int(args["imgsz"]) if args.get("imgsz") else None, max_batch=int(args.get("max_batch", 8)),
        batch_wait_ms=float(args.get("batch_wait_ms", 10)), max_pixels=int(args.get("max_pixels", DEFAULT_MAX_PIXELS)),
        device=args.get("device"), half=args.get("half"))


naive_api = FastAPI(title="RayLAN detection service, naive form (for benchmarks)")


@serve.deployment(name="NaiveDetector")
@serve.ingress(naive_api)
class NaiveDetector:
    """Ray Serve's quick-start shape, for `raylan bench` to compare against: one image per request,
    predicted on its own, no @serve.batch. Same /detect answer (batch_size is always 1)."""

    def __init__(self, model: str, imgsz: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 device: str | None = None, half: bool | None = None):
        self.max_pixels = max_pixels
        self.backend = Backend(model, imgsz=imgsz, device=device, half=half)
        self.backend.warm_up()

    @naive_api.post("/detect")
    async def detect(self, request: Request):
        received = time.perf_counter()
        body = await request.body()
        try:
            image = decode(body, self.max_pixels)
        except ImageError as error:
            return error_answer(error)
        decoded = time.perf_counter()
        prediction = self.backend.predict([image.pixels], Options())[0]
        return make_answer(self.backend.model_id, image, prediction, batch_size=1, queue_ms=0.0,
                           decode_ms=(decoded - received) * 1000, received=received)


def build_naive(args: dict) -> Any:
    """The naive form's application builder."""
    return NaiveDetector.bind(
        model=args["model"], imgsz=int(args["imgsz"]) if args.get("imgsz") else None,
        max_pixels=int(args.get("max_pixels", DEFAULT_MAX_PIXELS)), device=args.get("device"), half=args.get("half"))
