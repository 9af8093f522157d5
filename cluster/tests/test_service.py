"""The service over HTTP without a Ray cluster: FastAPI's TestClient drives the real app, middleware and
routes, on a Detector whose model is a stand-in. Covers the service key, query validation before the
batch, batch failure isolation, and every per-request limit (issue 10)."""
import asyncio
import io
import logging
import os
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from raylan_common.http import verifier_of
from PIL import Image, ImageFile
from starlette.requests import Request

import raylan_detect.app as app
import raylan_detect.codec as codec
from raylan_detect.backend import Prediction
from raylan_detect import models
from raylan_detect.models import Runner
from raylan_detect.codec import ImageError, decode, webp_size

KEY = "k3y-0f-th3-s3rv1c3-42"
AUTH = {"Authorization": f"Bearer {KEY}"}
POISON = 13  # an image of this grey value makes the stand-in model raise


def png(value: int = 100, width: int = 32, height: int = 24, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), value if mode != "RGB" else (value,) * 3).save(buffer, format="PNG")
    return buffer.getvalue()


def frames(*images: bytes) -> bytes:
    return b"".join(len(image).to_bytes(4, "big") + image for image in images)


def bomb_png(side: int = 7071) -> bytes:
    """A 1-bit PNG of side × side, all black, built row by row (never held decoded): about 6 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


class FakeBackend:
    """The model's stand-in: records every predict call; raises on a POISON image."""

    kind = "fake"
    decodes_on_device = False
    decode = staticmethod(decode)

    def __init__(self, source: str, imgsz=None, device=None, half=None):
        self.source, self.model_id, self.imgsz, self.device, self.half = source, "fake", 320, "cpu", False
        self.names = {0: "thing"}
        self.calls: list[int] = []  # the batch size of each predict call

    def warm_up(self) -> None:
        pass

    def predict(self, images, options):
        self.calls.append(len(images))
        if any(int(image[0, 0, 0]) == POISON for image in images):
            raise RuntimeError("the stand-in model cannot take this image")
        return [Prediction([{"box": [0.0, 0.0, 1.0, 1.0], "score": 0.9, "class_id": 0, "class_name": "thing",
                             "grey": int(image[0, 0, 0])}], {"preprocess": 0.0, "inference": 0.0,
                                                            "postprocess": 0.0}) for image in images]


class Counter:
    """Counts calls of a function it wraps."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


@pytest.fixture
def service(monkeypatch):
    """service(**Detector args) → (TestClient, the Detector instance). The routes find the instance
    through Serve's replica context, as in a replica."""
    clients = []

    def make(cls=app.Detector, api=app.api, backend_class=FakeBackend, **kwargs):
        wrapper = cls.func_or_class
        # Serve keeps its own copy of the class's globals: the stand-in model goes there.
        monkeypatch.setitem(wrapper.__bases__[0].__init__.__globals__, "Backend", FakeBackend)
        monkeypatch.setattr(models, "load_backend",
                            lambda kind, source, **options: (backend_class(source, **options), "a stand-in"))
        if hasattr(wrapper, "infer"):
            # @serve.batch keeps one queue per method, bound to the event loop that first used it: in a
            # replica, its only loop; here, each test's TestClient brings a new one.
            monkeypatch.setattr(wrapper.infer.set_max_batch_size.__self__, "_queue", None)
        cls = wrapper.__bases__[0]  # the class as written, without Serve's ASGI wrapper
        instance = cls.__new__(cls)
        monkeypatch.setattr("ray.serve.get_replica_context", lambda: SimpleNamespace(
            servable_object=instance, _deployment_config=SimpleNamespace(max_ongoing_requests=5)))
        cls.__init__(instance, model="/home/someone/secret/models/fake.pt", **kwargs)
        client = TestClient(api)
        client.__enter__()
        clients.append(client)
        return client, instance

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def decoding(monkeypatch):
    """Counts PIL's pixel decoding (ImageFile.load): headers are read without it."""
    counter = Counter(ImageFile.ImageFile.load)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self, *a, **k: counter(self, *a, **k))
    return counter


# The service key

REFUSED = [("POST", "/detect"), ("POST", "/detect/batch"), ("GET", "/models"), ("GET", "/no/such/route"),
           ("DELETE", "/detect"), ("POST", "/healthz"), ("GET", "/docs"), ("GET", "/openapi.json")]
WRONG = [{}, {"Authorization": "Bearer not-the-key"}, {"Authorization": f"Basic {KEY}"},
         {"Authorization": KEY}, {"Authorization": f"Bearer {KEY}x"}, {"X-Api-Key": KEY}]


@pytest.mark.parametrize("method,path", REFUSED)
@pytest.mark.parametrize("headers", WRONG, ids=["none", "wrong", "basic", "bare", "longer", "other-header"])
def test_without_the_key_every_route_is_401(service, method, path, headers):
    client, instance = service(api_key=KEY)
    response = client.request(method, path, headers=headers, content=png() if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and "Bearer" in error["message"]
    assert KEY not in response.text
    assert instance.backend.calls == []


def test_with_the_key_every_route_answers(service):
    client, instance = service(api_key=KEY)
    assert client.post("/detect", content=png(), headers=AUTH).status_code == 200
    batch = client.post("/detect/batch", content=frames(png(), png()), headers=AUTH)
    assert batch.status_code == 200 and len(batch.json()["results"]) == 2
    assert client.get("/models", headers=AUTH).status_code == 200
    assert client.get("/no/such/route", headers=AUTH).status_code == 404
    assert client.post("/detect", content=png(), headers={"Authorization": f"bearer {KEY}"}).status_code == 200


def test_healthz_needs_no_key(service):
    client, _ = service(api_key=KEY)
    assert client.get("/healthz").json() == {"status": "ok", "model": "fake"}


@pytest.mark.parametrize("key", [None, ""])
def test_without_a_key_the_service_is_open(service, key):
    client, _ = service(api_key=key)
    assert client.post("/detect", content=png()).status_code == 200
    assert client.post("/detect/batch", content=frames(png())).status_code == 200
    assert client.get("/models").status_code == 200
    assert client.get("/no/such/route").status_code == 404


def test_the_naive_form_needs_the_key_too(service):
    client, _ = service(cls=app.NaiveDetector, api=app.naive_api, api_key=KEY)
    assert client.post("/detect", content=png()).status_code == 401
    assert client.post("/detect", content=png(), headers=AUTH).status_code == 200


def test_the_key_is_checked_before_the_body_is_read():
    """The middleware alone, on a raw ASGI call whose body must not be touched."""
    async def app_under(scope, receive, send):
        raise AssertionError("the request reached the app")

    async def receive():
        raise AssertionError("the body was read")

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/raylan/m/detect", "root_path": "/raylan/m",
             "headers": [(b"content-length", b"999999999")], "query_string": b""}
    asyncio.run(app.ServiceKey(app_under, key_of=lambda: verifier_of(KEY))(scope, receive, send))
    assert sent[0]["status"] == 401
    healthz = {**scope, "method": "GET", "path": "/raylan/m/healthz"}
    reached = []

    async def healthy(scope, receive, send):
        reached.append(scope["path"])

    asyncio.run(app.ServiceKey(healthy, key_of=lambda: verifier_of(KEY))(healthz, receive, send))
    assert reached == ["/raylan/m/healthz"]


def test_the_key_is_in_no_answer_and_no_log(service, caplog):
    client, _ = service(api_key=KEY)
    caplog.set_level(logging.DEBUG)
    answers = [client.post("/detect", content=png(), headers=headers) for headers in WRONG]
    answers += [client.post("/detect", content=png(), headers=AUTH), client.get("/models", headers=AUTH),
                client.post("/detect?conf=5", content=png(), headers=AUTH)]
    for answer in answers:
        assert KEY not in answer.text and KEY not in str(answer.headers)
    assert KEY not in caplog.text
    with pytest.raises(ValueError) as error:
        app.build({"model": "m.pt", "api_key": 12345})
    assert "12345" not in str(error.value)


def test_models_shows_no_path_on_the_cluster(service):
    client, _ = service()
    source = client.get("/models").json()["models"][0]["source"]
    assert source == "fake.pt"


def test_build_takes_the_key_and_the_limits():
    kwargs = app.build({"model": "m.pt", "api_key": KEY, "max_frames": "8", "max_body_bytes": 1000,
                        "max_decoded_bytes": 5000})._bound_deployment.init_kwargs
    # The replica is given the key's verifier, never the key.
    assert KEY not in repr(kwargs)
    assert (kwargs["api_key_sha256"], kwargs["max_frames"], kwargs["max_body_bytes"], kwargs["max_decoded_bytes"]) == (
        verifier_of(KEY), 8, 1000, 5000)
    defaults = app.build({"model": "m.pt"})._bound_deployment.init_kwargs
    assert (defaults["api_key_sha256"], defaults["max_frames"], defaults["max_body_bytes"],
            defaults["max_decoded_bytes"]) == (None, 64, 64 * 2**20, 512 * 2**20)
    assert app.build({"model": "m.pt", "api_key": ""})._bound_deployment.init_kwargs["api_key_sha256"] is None
    naive = app.build_naive({"model": "m.pt", "api_key": KEY, "max_body_bytes": 10})._bound_deployment.init_kwargs
    assert (naive["api_key_sha256"], naive["max_body_bytes"]) == (verifier_of(KEY), 10)
    # A cluster with a token: only the verifier (and the salt the client derives the key with) is deployed.
    verified = app.build({"model": "m.pt", "api_key_sha256": verifier_of(KEY), "key_salt": "ab"})
    assert verified._bound_deployment.init_kwargs["api_key_sha256"] == verifier_of(KEY)
    with pytest.raises(ValueError):
        app.build({"model": "m.pt", "api_key_sha256": "not-hex"})
    with pytest.raises(ValueError):
        app.build({"model": "m.pt", "max_frames": 0})


def test_the_replica_forgets_rays_token(monkeypatch):
    import ctypes
    monkeypatch.setitem(os.environ, "RAY_AUTH_TOKEN", "cluster-token-value")
    app.forget_ray_auth_token()
    assert "RAY_AUTH_TOKEN" not in os.environ
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    assert libc.getenv(b"RAY_AUTH_TOKEN") is None


# Query values are checked before anything is batched

BAD_QUERIES = ["conf=5", "conf=nan", "conf=inf", "conf=-0.1", "conf=high", "iou=-1", "iou=1.5", "iou=",
               "classes=" + "1" + "0" * 23, "classes=-1", "classes=x", "classes=2147483648", "classes=1_0",
               "classes=0,circle", "annotate=maybe"]


@pytest.mark.parametrize("query", BAD_QUERIES)
@pytest.mark.parametrize("path", ["/detect", "/detect/batch"])
def test_a_bad_query_value_is_400_before_the_model_runs(service, query, path):
    client, instance = service()
    body = png() if path == "/detect" else frames(png())
    response = client.post(f"{path}?{query}", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request" and query.split("=")[0] in error["message"]
    assert instance.backend.calls == []


@pytest.mark.parametrize("query", ["conf=0", "conf=1", "iou=0.5", "classes=0,2147483647", "classes=", "annotate=no",
                                   "annotate=true"])
def test_edge_values_are_accepted(service, query):
    client, _ = service()
    assert client.post(f"/detect?{query}", content=png()).status_code == 200


# One image the model cannot take fails alone

def test_a_batch_with_one_failing_image_answers_the_others(service):
    client, instance = service()
    response = client.post("/detect/batch", content=frames(png(10), png(POISON), png(30)))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["detections"][0]["grey"] for r in (results[0], results[2])] == [10, 30]
    assert results[1]["error"]["code"] == "inference_failed"
    assert instance.backend.calls == [3, 1, 1, 1]  # together, then one by one
    assert isinstance(instance.runner, Runner) and instance.runner.backend is instance.backend  # the model layer's


def jpeg(value: int, width: int = 32, height: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (value,) * 3).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


class DeviceDecodingBackend(FakeBackend):
    """A stand-in for the tensor backend on a GPU: JPEGs reach the batch encoded and are decoded there, all
    together; it refuses (None) a JPEG whose pixels are grey 50, which then goes through decode()."""

    decodes_on_device = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoded_together: list[int] = []

    def decode_batch(self, frames):
        self.decoded_together.append(len(frames))
        images = []
        for frame in frames:
            try:
                images.append(decode(frame).pixels)
            except ImageError:
                images.append(None)
        return [None if image is None or abs(int(image[0, 0, 0]) - 50) <= 2 else image for image in images]


def test_jpegs_decoded_on_the_device_are_decoded_together_and_each_failure_stays_its_own(service):
    """The GPU path: a request's JPEGs are only inspected on arrival and decoded in the batch; a PNG is
    decoded on arrival; a JPEG the device refuses is decoded by the backend's decode(); a JPEG cut short
    gets its own decode_failed while the others are answered."""
    client, instance = service(backend_class=DeviceDecodingBackend)
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(noise, format="JPEG")
    broken = noise.getvalue()[:-400]  # the header intact, the scan cut short
    body = frames(jpeg(20), png(40), jpeg(50), broken, jpeg(120))
    response = client.post("/detect/batch", content=body, headers={})
    assert response.status_code == 200
    results = response.json()["results"]
    greys = [r["detections"][0]["grey"] if "detections" in r else r["error"]["code"] for r in results]
    assert [g if isinstance(g, str) else round(g / 10) * 10 for g in greys] == [20, 40, 50, "decode_failed", 120]
    assert instance.backend.decoded_together == [4]  # the four JPEGs in one device call
    assert all(r["image"]["format"] == "jpeg" for r in (results[0], results[2], results[4]))
    assert results[0]["image"] == {"width": 32, "height": 24, "format": "jpeg"}


class BrokenDeviceBackend(DeviceDecodingBackend):
    """The device decoder itself raises, and decode() raises something other than ImageError for grey 50."""

    def decode_batch(self, frames):
        raise RuntimeError("nvjpeg: the device ran out of memory")

    def decode(self, data, max_pixels=None, max_decoded_bytes=None):
        image = decode(data)
        if abs(int(image.pixels[0, 0, 0]) - 50) <= 2:
            raise MemoryError("no memory for this one")
        return image


def test_a_failing_device_decoder_fails_no_request(service):
    """nvjpeg raising for the whole batch: each JPEG is decoded on its own; one whose decode raises anything
    gets its own decode_failed, and the others are answered."""
    client, _ = service(backend_class=BrokenDeviceBackend)
    response = client.post("/detect/batch", content=frames(jpeg(20), jpeg(50), jpeg(120)))
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[1]["error"]["code"] == "decode_failed"
    assert [round(r["detections"][0]["grey"] / 10) * 10 for r in (results[0], results[2])] == [20, 120]


def test_a_cmyk_jpeg_is_not_left_for_the_device_decoder(service):
    client, instance = service(backend_class=DeviceDecodingBackend)
    buffer = io.BytesIO()
    Image.new("CMYK", (32, 24), (0, 0, 0, 100)).save(buffer, format="JPEG")
    response = client.post("/detect/batch", content=frames(buffer.getvalue(), jpeg(30)))
    assert response.status_code == 200 and all("detections" in r for r in response.json()["results"])
    assert instance.backend.decoded_together == [1]  # only the RGB one went to the device


def test_a_failing_image_alone_is_422(service):
    client, _ = service()
    response = client.post("/detect", content=png(POISON))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "inference_failed"
    assert client.post("/detect", content=png(20)).status_code == 200  # the service goes on


def test_the_dynamic_batch_never_raises_for_one_image():
    """Detector.infer (the undecorated method, as @serve.batch calls it) with a failing image among others."""
    backend = FakeBackend("m.pt")
    item = lambda value: app.BatchItem(np.full((4, 4, 3), value, dtype=np.uint8), app.Options(), ready=0.0)
    results = asyncio.run(app.Detector.func_or_class.infer.__wrapped__(
        SimpleNamespace(runner=Runner(backend, "a stand-in")), [item(1), item(POISON), item(2)]))
    assert isinstance(results[1].prediction, ImageError) and results[1].prediction.code == "inference_failed"
    assert [r.prediction.detections[0]["grey"] for r in (results[0], results[2])] == [1, 2]


# Limits: each a named error before the work it guards

def test_too_many_frames_is_413(service):
    client, instance = service(max_frames=2)
    response = client.post("/detect/batch", content=frames(png(), png(), png()))
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_frames"
    assert client.post("/detect/batch", content=frames(png(), png())).status_code == 200


@pytest.mark.parametrize("count", [65, 300])
def test_the_default_frame_limit_refuses_a_batch_of_more_than_64(service, count):
    client, instance = service()
    response = client.post("/detect/batch", content=frames(*[png()] * count))
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_frames"
    assert instance.backend.calls == []


def test_a_flood_of_empty_frames_is_refused_without_walking_it(service, monkeypatch):
    """100,000 zero-length frames, then two stray bytes: a walk over the whole body would end on the stray
    bytes (bad_request); the count limit stops after the 65th frame header, and no frame is inspected."""
    client, instance = service()
    inspected = Counter(codec.inspect)
    monkeypatch.setattr(app, "inspect", inspected)
    response = client.post("/detect/batch", content=b"\0\0\0\0" * 100_000 + b"\0\0")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_frames"
    assert inspected.calls == 0 and instance.backend.calls == []


@pytest.mark.parametrize("body", [frames(png())[:-1] + b"", (1000).to_bytes(4, "big") + b"0123456789",
                                  frames(png()) + (2**32 - 1).to_bytes(4, "big"), frames(png()) + b"\0\0"],
                         ids=["short", "lying", "lying-max", "cut-header"])
def test_lying_frame_lengths_are_400(service, body):
    client, instance = service()
    response = client.post("/detect/batch", content=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    assert instance.backend.calls == []


@pytest.mark.parametrize("path", ["/detect", "/detect/batch"])
def test_a_body_over_the_limit_is_413(service, path):
    client, _ = service(max_body_bytes=1000)
    response = client.post(path, content=b"\0" * 1001)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_a_chunked_body_is_not_read_past_the_limit():
    """No Content-Length: read_body stops at the first chunk that crosses the limit."""
    chunk, handed = b"\0" * 1024, []

    async def receive():
        handed.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": True}  # an endless stream

    request = Request({"type": "http", "method": "POST", "path": "/detect", "headers": [], "query_string": b""},
                      receive)
    with pytest.raises(ImageError) as error:
        asyncio.run(app.read_body(request, limit=10 * 1024))
    assert error.value.code == "body_too_large"
    assert len(handed) == 11


def test_an_image_over_the_decoded_budget_is_413_without_decoding(service, decoding):
    image = png(width=100, height=100)  # RGB: 100 × 100 × (4 + 3) = 70,000 bytes decoded
    client, instance = service(max_decoded_bytes=69_999)
    response = client.post("/detect", content=image)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert decoding.calls == 0 and instance.backend.calls == []


def test_a_batch_over_the_decoded_budget_returns_the_images_that_do_not_fit_to_be_sent_again(service, decoding):
    client, instance = service(max_decoded_bytes=150_000)
    big = png(width=200, height=200)  # 280,000 bytes: over the budget even alone
    results = client.post("/detect/batch", content=frames(*[png(width=100, height=100)] * 3, big)).json()["results"]
    assert ["error" in r for r in results] == [False, False, True, True]
    # The third fits alone (send it again by itself); the fourth never fits.
    assert results[2]["error"]["code"] == "over_budget" and "smaller request" in results[2]["error"]["message"]
    assert results[3]["error"]["code"] == "too_large"
    assert decoding.calls == 2


@pytest.mark.parametrize("limits", [{}, {"max_decoded_bytes": 128 * 2**20}], ids=["defaults", "small budget"])
def test_the_bomb_png_is_refused_from_its_header(service, decoding, limits):
    """6 KB of 1-bit PNG that decodes to 7071×7071: 50 MB in PIL's 1-bit image plus the 150 MB BGR array.
    Refused on its header alone — under the default limits by its compression ratio (33,000:1), under a
    small budget by the budget too; no pixel decoded."""
    bomb = bomb_png()
    assert len(bomb) < 10_000
    client, instance = service(**limits)
    response = client.post("/detect", content=bomb)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert "7071×7071" in response.json()["error"]["message"]
    batch = client.post("/detect/batch", content=frames(bomb, png())).json()["results"]
    assert batch[0]["error"]["code"] == "too_large" and "detections" in batch[1]
    assert decoding.calls == 1  # the small PNG only
    assert instance.backend.calls == [1]


def test_pils_bomb_check_follows_our_limits():
    codec.configure_pil(max_pixels=50_000_000, max_decoded_bytes=128 * 2**20)
    try:
        assert Image.MAX_IMAGE_PIXELS == 128 * 2**20 // 4
        # Past twice PIL's limit its own error fires at open: answered as our too_large all the same.
        with pytest.raises(ImageError) as error:
            decode(bomb_png(12000), max_pixels=10**9, max_decoded_bytes=10**12)
        assert error.value.code == "too_large"
    finally:
        codec.configure_pil(codec.DEFAULT_MAX_PIXELS, codec.DEFAULT_MAX_DECODED_BYTES)


# Decoding details the limits rely on

@pytest.mark.parametrize("options", [{}, {"lossless": True}, {"exif": b"Exif\0\0MM\0*\0\0\0\x08\0\0"}],
                         ids=["vp8", "vp8l", "vp8x"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_the_webp_size_comes_from_its_header(options, mode):
    buffer = io.BytesIO()
    Image.new(mode, (123, 45)).save(buffer, format="WEBP", **options)
    assert webp_size(buffer.getvalue()) == (123, 45) == Image.open(buffer).size


@pytest.mark.parametrize("format", ["PNG", "WEBP"])
def test_an_animated_image_is_decoded_on_its_first_frame(format):
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (16, 16), (200, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 200))
    first.save(buffer, format=format, save_all=True, append_images=[second], duration=100, loop=0,
               **({"lossless": True} if format == "WEBP" else {}))
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    image = decode(buffer.getvalue())
    assert image.pixels[0, 0].tolist() == [0, 0, 200]  # BGR of the first frame's red


def test_decoded_bytes_follow_the_mode():
    assert codec.Header("PNG", 7071, 7071, "1").decoded_bytes == 7071 * 7071 * 4
    assert codec.Header("PNG", 100, 100, "L").decoded_bytes == 100 * 100 * 4
    assert codec.Header("JPEG", 100, 100, "RGB").decoded_bytes == 100 * 100 * 7
    assert codec.Header("PNG", 100, 100, "P").decoded_bytes == 100 * 100 * 7
    assert codec.Header("PNG", 100, 100, "RGBA").decoded_bytes == 100 * 100 * 8
    assert codec.Header("WEBP", 100, 100, "RGBA").decoded_bytes == 100 * 100 * 12


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "I;16", "LA"])
def test_every_mode_decodes_to_the_same_bgr_as_pils_rgb(mode):
    pixels = np.random.default_rng(1).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = image.convert("I").point(lambda v: v * 200).convert("I;16")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))[:, :, ::-1]
    decoded = decode(buffer.getvalue())
    assert decoded.pixels.flags["C_CONTIGUOUS"] and decoded.pixels.dtype == np.uint8
    assert np.array_equal(decoded.pixels, expected)


def test_decoding_the_bomb_holds_no_more_than_its_budget():
    """Decoding itself (in a fresh process, so that its peak RSS is its own) stays within decoded_bytes
    (with the ratio check off, so that the bomb is decoded at all)."""
    import subprocess
    import sys
    script = (
        "import resource, sys; sys.path[:0] = sys.argv[1:3]\n"
        "from test_service import bomb_png\n"
        "from raylan_detect import codec\n"
        "from raylan_detect.codec import decode, inspect\n"
        "codec.MAX_COMPRESSION_RATIO = 10**9\n"
        "bomb = bomb_png(); budget = inspect(bomb).decoded_bytes\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "decode(bomb)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before, budget)\n")
    here = os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", script, here, os.path.dirname(here)], capture_output=True,
                         text=True, check=True).stdout.split()
    growth, budget = int(out[-2]), int(out[-1])
    assert budget == 7071 * 7071 * 4
    assert growth <= budget


def test_a_large_photo_like_image_is_not_taken_for_a_bomb():
    """A big image that compresses like a photo (noise: about 1:1) passes the ratio check; the same size
    flat and tiny on disk does not."""
    import numpy as np
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 3400, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=90)
    header = codec.inspect(buffer.getvalue())
    assert header.decoded_bytes > codec.BOMB_MIN_DECODED_BYTES
    flat = io.BytesIO()
    Image.new("RGB", (3000, 3400), (255, 255, 255)).save(flat, format="PNG")
    with pytest.raises(ImageError) as error:
        codec.inspect(flat.getvalue())
    assert error.value.code == "too_large" and "decompression bomb" in error.value.message
