"""The batched tensor backend against the Ultralytics backend: the same detections on the samples and on a
few hundred generated images, its decoding, its device letterbox, and how `auto` chooses."""
import importlib.util
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from raylan_detect.backend import Backend, Options
from raylan_detect.codec import decode
from raylan_detect.models import load_backend
from raylan_detect.tensor import BOX_TOLERANCE_PX, SCORE_TOLERANCE, TensorBackend, difference

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.jpg"))
MODEL = ROOT / "models" / "shapes" / "shapes-yolo11n"


def make_model_module():
    spec = importlib.util.spec_from_file_location("make_model", ROOT / "models" / "shapes" / "make_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated():
    """240 images drawn as the model's training data was (shapes on textured backgrounds), of 12 sizes
    from 96×96 to 1600×900, wide, tall and square: held-out pictures for both backends."""
    draw = make_model_module().draw_image
    rng = np.random.default_rng(2026)
    sizes = [(96, 96), (240, 320), (320, 240), (480, 640), (640, 480), (600, 600), (720, 1280), (1280, 720),
             (500, 300), (300, 500), (900, 1600), (333, 777)]
    return [draw(rng, height, width)[0] for _ in range(20) for height, width in sizes]


@pytest.fixture(scope="module", params=["pt", "onnx"])
def backends(request):
    source = f"{MODEL}.{request.param}"
    tensor = TensorBackend(source, device="cpu")
    reference = Backend(source, imgsz=tensor.imgsz, device="cpu")
    return reference, tensor


def agree(reference, tensor, images, options):
    """Asserts the same detections within the tests' tolerance; returns how many boxes were compared."""
    expected, got = reference.predict(images, options), tensor.predict(images, options)
    assert difference(expected, got) is None, difference(expected, got)
    return sum(len(p.detections) for p in expected)


def test_same_detections_as_ultralytics_on_the_samples(backends):
    reference, tensor = backends
    images = [decode(path.read_bytes()).pixels for path in SAMPLES]
    compared = agree(reference, tensor, images, Options())
    assert compared >= 38  # 40 of the 42 shapes are found (models/shapes/README.md): boxes really compared
    agree(reference, tensor, images, Options(conf=0.05, iou=0.5, classes=(0, 3)))


def test_same_detections_as_ultralytics_on_generated_images(backends, generated):
    reference, tensor = backends
    compared = 0
    for start in range(0, len(generated), 16):  # batches of 16, as a dynamic batch would mix sizes
        compared += agree(reference, tensor, generated[start:start + 16], Options())
    assert compared >= len(generated)  # one to six shapes each: most are found


def test_difference_names_what_differs():
    """The comparison itself can fail: a box moved past the tolerance, a score changed, a box missing."""
    from raylan_detect.backend import Prediction

    box = {"box": [10.0, 10.0, 50.0, 50.0], "score": 0.9, "class_id": 1, "class_name": "square"}
    same = [Prediction([dict(box)])]
    assert difference(same, [Prediction([dict(box)])]) is None
    moved = dict(box, box=[10.0, 10.0, 50.0 + 2 * BOX_TOLERANCE_PX, 50.0])
    assert "box off" in difference(same, [Prediction([moved])])
    assert "score off" in difference(same, [Prediction([dict(box, score=0.9 + 2 * SCORE_TOLERANCE)])])
    assert "1 vs 0 detections" in difference(same, [Prediction([])])
    # A backend that drops an image (or adds one) differs, whatever the images both have say.
    assert difference(same, []) == "1 vs 0 images"
    assert difference(same, same + same) == "1 vs 2 images"


def test_decoding_gives_pils_pixels():
    """torchvision's JPEG decoder (libjpeg-turbo) gives exactly the pixels PIL gives, as RGB; a PNG goes
    through PIL; a JPEG cut short is the codec's named error."""
    tensor = TensorBackend(f"{MODEL}.pt", device="cpu")
    for path in SAMPLES:
        data = path.read_bytes()
        ours, theirs = tensor.decode(data), decode(data)
        assert (ours.width, ours.height, ours.format) == (theirs.width, theirs.height, "jpeg")
        assert torch.equal(ours.pixels, torch.from_numpy(np.ascontiguousarray(theirs.pixels[:, :, ::-1])).permute(2, 0, 1))
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, format="PNG")
    png = tensor.decode(buffer.getvalue())
    assert png.format == "png" and png.pixels[:, 0, 0].tolist() == [1, 2, 3]
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noise, format="JPEG")
    with pytest.raises(Exception) as error:
        tensor.decode(noise.getvalue()[:-500])
    assert getattr(error.value, "code", None) == "decode_failed"


def test_decode_batch_keeps_the_good_ones_when_one_is_broken():
    tensor = TensorBackend(f"{MODEL}.pt", device="cpu")
    good = SAMPLES[0].read_bytes()
    out = tensor.decode_batch([good, b"\xff\xd8\xff\xe0 not really a jpeg", good])
    assert out[1] is None
    assert torch.equal(out[0], out[2]) and tuple(out[0].shape[1:]) == (decode(good).height, decode(good).width)


def test_the_device_letterbox_is_within_one_level_of_opencv():
    """The GPU path's resize (torch bilinear), run here on the CPU: each channel within 1 of OpenCV's."""
    tensor = TensorBackend(f"{MODEL}.pt", device="cpu")
    for path in SAMPLES[::3]:
        bgr = decode(path.read_bytes()).pixels
        height, width = bgr.shape[:2]
        ratio = min(320 / height, 320 / width)
        size = (max(round(width * ratio), 1), max(round(height * ratio), 1))
        expected = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)[:, :, ::-1].transpose(2, 0, 1)
        got = tensor.resized_on_device(bgr, *size).numpy()
        assert got.shape == expected.shape
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_auto_chooses_the_tensor_backend_where_it_matches():
    backend, why = load_backend("auto", f"{MODEL}.pt", device="cpu")
    assert backend.kind == "tensor" and "matches" in why, why
    assert load_backend("ultralytics", f"{MODEL}.pt", device="cpu")[0].kind == "ultralytics"
    with pytest.raises(ValueError):
        load_backend("fastest", f"{MODEL}.pt")


def test_auto_falls_back_when_the_tensor_backend_differs(monkeypatch):
    """A tensor backend whose letterbox is shifted by three pixel rows gives other boxes: auto keeps Ultralytics."""
    original = TensorBackend.letterbox

    def shifted(self, images):
        batch, geometry = original(self, images)
        return batch.roll(3, dims=2), geometry

    monkeypatch.setattr(TensorBackend, "letterbox", shifted)
    backend, why = load_backend("auto", f"{MODEL}.pt", device="cpu")
    assert backend.kind == "ultralytics" and "differed" in why


def test_class_filter_and_annotation_on_the_tensor_backend():
    tensor = TensorBackend(f"{MODEL}.pt", device="cpu")
    image = decode((ROOT / "samples" / "shapes_08.jpg").read_bytes()).pixels
    only_circles = tensor.predict([image], Options(classes=(0,), annotate=True))[0]
    assert len(only_circles.detections) >= 2 and all(d["class_id"] == 0 for d in only_circles.detections)
    annotated = cv2.imdecode(np.frombuffer(only_circles.annotated_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == image.shape


def test_auto_keeps_ultralytics_when_the_tensor_backend_cannot_load_the_model(monkeypatch):
    """A model the tensor backend refuses (another task, say) still gets served by `auto`."""
    from raylan_detect import tensor

    def refuse(self, source, **options):
        raise tensor.Unsupported("a segment model; the tensor backend runs detection only")

    monkeypatch.setattr(TensorBackend, "__init__", refuse)
    backend, why = load_backend("auto", f"{MODEL}.pt", device="cpu")
    assert backend.kind == "ultralytics" and "cannot load" in why and "segment" in why
    with pytest.raises(tensor.Unsupported):
        load_backend("tensor", f"{MODEL}.pt", device="cpu")


def test_decoding_a_grey_png_holds_no_copy():
    """The PNG path turns codec's BGR array into RGB in place: the tensor is a view of that memory."""
    tensor = TensorBackend(f"{MODEL}.pt", device="cpu")
    buffer = io.BytesIO()
    Image.new("L", (50, 40), 77).save(buffer, format="PNG")
    decoded = tensor.decode(buffer.getvalue())
    assert tuple(decoded.pixels.shape) == (3, 40, 50) and not decoded.pixels.is_contiguous()
    assert decoded.pixels.permute(1, 2, 0).is_contiguous()  # an H×W×3 array underneath, no 3×H×W copy
    assert decoded.pixels[:, 5, 5].tolist() == [77, 77, 77]
