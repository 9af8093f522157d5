"""The detection service as a Ray Serve application (import path `raylan_detect.app:build`).

HTTP API (under the application's route prefix, e.g. /raylan/<app>):
  POST /detect          body: one encoded image (JPEG, PNG, WebP, BMP; an animated one on its first frame).
                        Query: conf and iou (numbers from 0 to 1), classes (comma-separated class ids,
                        0 ≤ id < 2**31), annotate (1/true/yes or 0/false/no: the annotated JPEG, base64).
                        200 → one result; 4xx → {"error": {"code", "message"}}.
  POST /detect/batch    body: several images, each a 4-byte big-endian length then its bytes; same query.
                        200 → {"results": [...]}, one per image in order, each a result or an error;
                        4xx → {"error": {"code", "message"}} for the whole request.
  GET  /models          the model this application serves (its file name, never a path on the cluster), and
                        the backend that runs it (tensor or ultralytics) with the reason it was chosen.
  GET  /healthz         200 once the model is loaded and warmed up; never needs the key.
Service key: with the deploy arg `api_key` (a non-empty string) or `api_key_sha256` (its verifier, on a cluster
with a token), every route but GET /healthz requires `Authorization: Bearer <key>`, unknown paths and wrong methods included; anything else is answered 401
`unauthorized` with `WWW-Authenticate: Bearer`, before the body is read. Without it the service is open.
Status codes of a refusal, the same in both forms:
  400 bad_request       a query value out of range or unparsable, batch framing cut short or a frame
                        length past the body's end;
  401 unauthorized      no or a wrong service key;
  413 body_too_large    a body over max_body_bytes (Content-Length, or counted while reading);
  413 too_many_frames   /detect/batch with more than max_frames images;
  413 too_large         an image over max_pixels, or whose decoding (read from its header) would take the
                        request over max_decoded_bytes;
  422 empty, unsupported_format, decode_failed, inference_failed (the model failed on this image alone).
In a batch, an image's own refusal (too_large, the 422 codes) is an error item in the 200 answer; only a
refusal of the request (400, 401, 413 body_too_large / too_many_frames) refuses the whole batch.
Limits (deploy args, each checked before the work it guards): max_frames=64 images per batch request,
max_body_bytes=64 MiB per request, max_decoded_bytes=512 MiB per request (sum over its images of what
decoding holds, from each header: width × height × 4 to 12 bytes by mode, see codec.Header), max_pixels=50 MP
per image. Animated images are decoded on their first frame.
A result: {"model", "image": {"width", "height", "format"}, "detections": [{"box": [x1, y1, x2, y2] in
original pixels, "score", "class_id", "class_name"}], "batch_size", "timings_ms": {"queue", "decode",
"preprocess", "inference", "postprocess", "total"}}.
"""
import asyncio
import logging
import math
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from raylan_common import contract
from raylan_common import compat  # noqa: F401 - before any @serve.ingress: FastAPI apps picklable on Ray 2.45
from raylan_common.http import (BadContentLength, BodyTooLarge, ServiceKey, forget_ray_auth_token, keep_replica_grpc_on_loopback,
                                 key_verifier)
from raylan_common.http import read_body as common_read_body

from .backend import Backend, Options, Prediction
from .codec import (DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, DecodedImage, Header, ImageError, configure_pil,
                    decode, inspect, split_frames, too_large)
from .models import Encoded, Runner, budget, inference_failed

logger = logging.getLogger("ray.serve")

#: The error code of a malformed request (query or batch framing), answered with HTTP 400.
BAD_REQUEST = "bad_request"
#: HTTP status of each refusal code; any other code (an unusable image) is 422.
STATUS = {
    BAD_REQUEST: 400, "unauthorized": 401, "body_too_large": 413, "too_many_frames": 413, "too_large": 413,
    "over_budget": 413,
}
#: Most images one /detect/batch request may hold. Override with the deployment's max_frames.
DEFAULT_MAX_FRAMES = 64
#: Largest request body, in bytes. Override with the deployment's max_body_bytes.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: Largest class id accepted in `classes` (exclusive).
CLASS_ID_LIMIT = contract.CLASS_ID_LIMIT


api = FastAPI(title="RayLAN detection service")
api.add_middleware(ServiceKey)


class Decoded(NamedTuple):
    """One image of a request, decoded on the decode pool."""
    image: DecodedImage
    decode_s: float  # seconds decoding took, measured in the decoding thread
    ready: float  # perf_counter() when decoding would have ended without waiting for a decode thread


class BatchItem(NamedTuple):
    """What one image hands to the dynamic batch."""
    pixels: Any  # what the backend's predict() takes (codec's BGR array, an RGB tensor), or Encoded
    options: Options
    ready: float  # perf_counter() when the image was decoded: its queue time runs from here


class Inferred(NamedTuple):
    """What the dynamic batch hands back for one image."""
    prediction: Prediction | ImageError  # ImageError(inference_failed) if the model failed on it alone
    queue_s: float  # from decoded to the batch's start
    batch_size: int  # how many images shared the batch
    decode_s: float = 0.0  # its share of the batch's decoding on the device (Encoded items)


def make_answer(model_id: str, image: DecodedImage, prediction: Prediction, batch_size: int, queue_ms: float,
                decode_ms: float, received: float) -> dict:
    """One image's result, as /detect answers it and /detect/batch lists it. `received` is the
    perf_counter() when the request arrived: timings_ms.total runs from it to now."""
    return contract.detection_result(
        model_id, contract.image(image.width, image.height, image.format), prediction.detections, batch_size,
        {"queue": round(queue_ms, 3), "decode": round(decode_ms, 3), **prediction.timings_ms,
         "total": round((time.perf_counter() - received) * 1000, 3)},
        prediction.annotated_jpeg)


def error_answer(error: ImageError) -> JSONResponse:
    """A refused request: 400 bad_request, 413 for a limit, 422 for an unusable image (see STATUS)."""
    return JSONResponse(contract.error_answer(error.as_dict()), status_code=STATUS.get(error.code, 422))


def bad_query(name: str, value: str, expected: str) -> ImageError:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return ImageError(BAD_REQUEST, f"invalid query parameter {name}={shown!r}: {expected}")


def unit_interval(query: Any, name: str, default: float) -> float:
    value = query.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise bad_query(name, value, "expected a number from 0 to 1")
    return number


def class_ids(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    ids = []
    for item in (item.strip() for item in value.split(",")):
        if not item:
            continue
        if not re.fullmatch(r"[0-9]{1,10}", item) or int(item) >= CLASS_ID_LIMIT:
            raise bad_query("classes", value, f"expected comma-separated class ids from 0 to {CLASS_ID_LIMIT - 1}")
        ids.append(int(item))
    return tuple(ids) or None


def flag(query: Any, name: str) -> bool:
    value = query.get(name, "0")
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise bad_query(name, value, "expected 1, true, yes, 0, false or no")


def parse_options(request: Request) -> Options:
    """The query's options, each checked, so that no bad value reaches the shared batch. Raises
    ImageError(bad_request) naming the parameter."""
    query = request.query_params
    return Options(conf=unit_interval(query, "conf", 0.25), iou=unit_interval(query, "iou", 0.7),
                   classes=class_ids(query.get("classes")), annotate=flag(query, "annotate"))


async def read_body(request: Request, limit: int) -> bytearray:
    """The body, refused with body_too_large as soon as it is known to exceed `limit` bytes."""
    try:
        return await common_read_body(request, limit)
    except BadContentLength as error:
        raise ImageError(BAD_REQUEST, str(error)) from None
    except BodyTooLarge:
        raise ImageError("body_too_large", f"the body is over {limit} bytes ({limit / 2**20:.0f} MiB), the most "
                                           f"one request may send; send fewer or smaller images per request") from None


def inspect_all(frames: list[memoryview], max_pixels: int) -> list[Header | ImageError]:
    out: list[Header | ImageError] = []
    for frame in frames:
        try:
            out.append(inspect(frame, max_pixels))
        except ImageError as error:
            out.append(error)
    return out


def positive(args: dict, name: str, default: int) -> int:
    value = int(args.get(name, default))
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


@serve.deployment(name="Detector")
@serve.ingress(api)
class Detector:
    def __init__(self, model: str, imgsz: int | None = None, max_batch: int = 8, batch_wait_ms: float = 10.0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, device: str | None = None, half: bool | None = None,
                 decode_threads: int | None = None, max_frames: int = DEFAULT_MAX_FRAMES,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
                 api_key: str | None = None, backend: str = "auto", api_key_sha256: str | None = None):
        forget_ray_auth_token()
        keep_replica_grpc_on_loopback()
        self.service_key = key_verifier(api_key, api_key_sha256)
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.max_body_bytes = max_body_bytes
        self.max_decoded_bytes = max_decoded_bytes
        configure_pil(max_pixels, max_decoded_bytes)
        self.max_batch = max_batch
        # The model layer (models.Runner): decoding on its own small pool, the device decode, the predict
        # that fails one image alone. Batching across requests is Serve's (infer).
        self.runner = Runner.load(backend, model, imgsz=imgsz, device=device, half=half, max_pixels=max_pixels,
                                  max_decoded_bytes=max_decoded_bytes, decode_threads=decode_threads)
        self.infer.set_max_batch_size(max_batch)
        self.infer.set_batch_wait_timeout_s(batch_wait_ms / 1000.0)

    @property
    def backend(self) -> Any:
        return self.runner.backend

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", "model": self.backend.model_id}

    @api.get("/models")
    def models(self) -> dict:
        backend = self.backend
        return {"models": [{
            "id": backend.model_id, "source": Path(backend.source).name, "imgsz": backend.imgsz,
            "device": backend.device, "half": backend.half, "max_batch": self.max_batch,
            "decode_threads": self.runner.decode_threads, "backend": backend.kind,
            "backend_reason": self.runner.reason,
            "classes": backend.names}]}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def infer(self, items: list[BatchItem]) -> list[Inferred]:
        """One dynamic batch: images from concurrent requests, predicted together per option set. It never
        raises for one image: @serve.batch would fail every request of the batch with it."""
        started = time.perf_counter()
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.options.key(), []).append(index)
        results: list[Inferred | None] = [None] * len(items)
        pixels, decode_s = [item.pixels for item in items], 0.0
        if any(isinstance(one, Encoded) for one in pixels):
            pixels, decode_s = await asyncio.to_thread(self.runner.decode_on_device, pixels)
        for index, one in enumerate(pixels):
            if isinstance(one, ImageError):
                results[index] = Inferred(one, queue_s=started - items[index].ready, batch_size=len(items))
        for indices in groups.values():
            indices = [i for i in indices if results[i] is None]
            if not indices:
                continue
            outcomes = await asyncio.to_thread(
                self.runner.predict, [pixels[i] for i in indices], items[indices[0]].options)
            for i, outcome in zip(indices, outcomes):
                results[i] = Inferred(outcome, queue_s=started - items[i].ready, batch_size=len(items),
                                      decode_s=decode_s if isinstance(items[i].pixels, Encoded) else 0.0)
        return results

    async def decode_frame(self, data: bytes | bytearray | memoryview) -> Decoded:
        """Decodes on the decode pool. Time spent waiting for a decode thread counts as queueing, not
        decoding: `ready` is when decoding would have ended without that wait."""
        waiting = time.perf_counter()
        image, decode_s = await asyncio.get_running_loop().run_in_executor(
            self.runner.decoder, self.runner.decode, data)
        return Decoded(image, decode_s, ready=waiting + decode_s)

    async def finish(self, decoded: Decoded, options: Options, received: float) -> dict:
        """Predicts one decoded image (in a dynamic batch) and builds its answer. Raises
        ImageError(inference_failed) if the model failed on this image."""
        inferred = await self.infer(BatchItem(decoded.image.pixels, options, decoded.ready))
        if isinstance(inferred.prediction, ImageError):
            raise inferred.prediction
        return make_answer(
            self.backend.model_id, decoded.image, inferred.prediction, batch_size=inferred.batch_size,
            queue_ms=inferred.queue_s * 1000, decode_ms=(decoded.decode_s + inferred.decode_s) * 1000,
            received=received)

    async def detect_frames(self, frames: list, options: dict | None = None) -> list:
        """Detection for decoded frames from inside the cluster (a DeploymentHandle call, not a route: the
        video sessions use it): each frame an H×W×3 BGR uint8 array, in the same dynamic batches as /detect.
        Options: conf, iou, classes. Returns per frame its detections (a list), or {"error": {"code",
        "message"}} for a frame that is not such an array, is over max_pixels or that the model failed on.
        Raises ValueError for more than max_frames frames."""
        if len(frames) > self.max_frames:
            raise ValueError(f"at most {self.max_frames} frames per call, not {len(frames)}")
        options = options or {}
        chosen = Options(conf=float(options.get("conf", 0.25)), iou=float(options.get("iou", 0.7)),
                         classes=tuple(int(c) for c in options["classes"]) if options.get("classes") else None)

        async def one(frame: Any) -> list | dict:
            shape = getattr(frame, "shape", ())
            if getattr(frame, "dtype", None) != "uint8" or len(shape) != 3 or shape[2] != 3:
                return contract.error_answer(contract.error("unsupported_format", "a frame must be an H×W×3 uint8 array"))
            if shape[0] * shape[1] > self.max_pixels:
                return contract.error_answer(too_large(shape[1], shape[0], f"over {self.max_pixels} pixels").as_dict())
            inferred = await self.infer(BatchItem(frame, chosen, time.perf_counter()))
            if isinstance(inferred.prediction, ImageError):
                return contract.error_answer(inferred.prediction.as_dict())
            return inferred.prediction.detections

        return list(await asyncio.gather(*(one(frame) for frame in frames)))

    @api.post("/detect")
    async def detect(self, request: Request):
        received = time.perf_counter()
        try:
            options = parse_options(request)
            body = await read_body(request, self.max_body_bytes)
            return await self.finish(await self.decode_frame(body), options, received)
        except ImageError as error:
            return error_answer(error)

    @api.post("/detect/batch")
    async def detect_batch(self, request: Request):
        received = time.perf_counter()
        try:
            options = parse_options(request)
            frames = split_frames(await read_body(request, self.max_body_bytes), self.max_frames)
        except ImageError as error:
            return error_answer(error)
        # The request's decoded-memory budget, from the headers alone: nothing is decoded yet.
        headers = budget(await asyncio.get_running_loop().run_in_executor(
            self.runner.decoder, inspect_all, frames, self.max_pixels), self.max_decoded_bytes)

        async def decoded(frame: memoryview, header: Header | ImageError) -> Decoded | ImageError:
            if isinstance(header, ImageError):
                return header
            try:
                return await self.decode_frame(frame)
            except ImageError as error:
                return error

        # Decode every frame first, then hand them to the batcher together, so that one request's images
        # share a batch instead of trickling in one decode apart.
        images = await asyncio.gather(*(decoded(frame, header) for frame, header in zip(frames, headers)))

        async def one(image: Decoded | ImageError) -> dict:
            if isinstance(image, ImageError):
                return contract.error_answer(image.as_dict())
            try:
                return await self.finish(image, options, received)
            except ImageError as error:
                return contract.error_answer(error.as_dict())

        return {"results": await asyncio.gather(*(one(image) for image in images))}


def build(args: dict) -> Any:
    """The application builder Serve calls with the config's `args`: model (required), imgsz, max_batch (8),
    batch_wait_ms (10), max_pixels (50 MP), device, half, max_frames (64), max_body_bytes (64 MiB),
    max_decoded_bytes (512 MiB), api_key or api_key_sha256 (the key in clear, or its verifier with key_salt on a
    cluster with a token; the replica keeps only the verifier; both absent or empty: an open service), backend (auto: the batched
    tensor backend where it matches the Ultralytics one at start-up, see models.load_backend; tensor;
    ultralytics). Any other key is refused (contract.SHAPES["service_args"])."""
    contract.check("service_args", args)
    return Detector.bind(
        model=args["model"], imgsz=int(args["imgsz"]) if args.get("imgsz") else None,
        max_batch=int(args.get("max_batch", 8)), batch_wait_ms=float(args.get("batch_wait_ms", 10)),
        max_pixels=positive(args, "max_pixels", DEFAULT_MAX_PIXELS), device=args.get("device"),
        half=args.get("half"), max_frames=positive(args, "max_frames", DEFAULT_MAX_FRAMES),
        max_body_bytes=positive(args, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        max_decoded_bytes=positive(args, "max_decoded_bytes", DEFAULT_MAX_DECODED_BYTES),
        api_key_sha256=key_verifier(args.get("api_key"), args.get("api_key_sha256")), backend=backend_kind(args))


def backend_kind(args: dict) -> str:
    kind = str(args.get("backend") or "auto")
    if kind not in contract.BACKENDS:
        raise contract.backend_error(kind)
    return kind


naive_api = FastAPI(title="RayLAN detection service, naive form (for benchmarks)")
naive_api.add_middleware(ServiceKey)


@serve.deployment(name="NaiveDetector")
@serve.ingress(naive_api)
class NaiveDetector:
    """Ray Serve's quick-start shape, for `raylan bench` to compare against: one image per request,
    predicted on its own, no @serve.batch. Same /detect answer (batch_size is always 1), same key and
    limits."""

    def __init__(self, model: str, imgsz: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 device: str | None = None, half: bool | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, api_key: str | None = None,
                 api_key_sha256: str | None = None):
        forget_ray_auth_token()
        keep_replica_grpc_on_loopback()
        self.service_key = key_verifier(api_key, api_key_sha256)
        self.max_pixels = max_pixels
        self.max_body_bytes = max_body_bytes
        self.max_decoded_bytes = max_decoded_bytes
        configure_pil(max_pixels, max_decoded_bytes)
        self.backend = Backend(model, imgsz=imgsz, device=device, half=half)
        self.backend.warm_up()

    @naive_api.post("/detect")
    async def detect(self, request: Request):
        received = time.perf_counter()
        try:
            image = decode(await read_body(request, self.max_body_bytes), self.max_pixels, self.max_decoded_bytes)
        except ImageError as error:
            return error_answer(error)
        decoded = time.perf_counter()
        try:
            prediction = self.backend.predict([image.pixels], Options())[0]
        except Exception as error:  # noqa: BLE001 - this image's own error
            return error_answer(inference_failed(error))
        return make_answer(self.backend.model_id, image, prediction, batch_size=1, queue_ms=0.0,
                           decode_ms=(decoded - received) * 1000, received=received)


def build_naive(args: dict) -> Any:
    """The naive form's application builder: model, imgsz, max_pixels, device, half, max_body_bytes,
    max_decoded_bytes, api_key (as build()). Any other key is refused."""
    contract.check("naive_service_args", args)
    return NaiveDetector.bind(
        model=args["model"], imgsz=int(args["imgsz"]) if args.get("imgsz") else None,
        max_pixels=positive(args, "max_pixels", DEFAULT_MAX_PIXELS), device=args.get("device"),
        half=args.get("half"), max_body_bytes=positive(args, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        max_decoded_bytes=positive(args, "max_decoded_bytes", DEFAULT_MAX_DECODED_BYTES),
        api_key_sha256=key_verifier(args.get("api_key"), args.get("api_key_sha256")))
