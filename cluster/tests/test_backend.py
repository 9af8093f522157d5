"""The shipped model through the service's backend: ground truth, and .pt and .onnx agree."""
import json
from pathlib import Path

import pytest

from raylan_detect.backend import Backend, Options
from raylan_detect.codec import decode

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
TRUTH = json.loads((SAMPLES / "ground_truth.json").read_text())["images"]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def images():
    return {name: decode((SAMPLES / name).read_bytes()) for name in sorted(TRUTH)}


@pytest.fixture(scope="module", params=["pt", "onnx"])
def backend(request):
    model = Backend(str(ROOT / "models" / "shapes" / f"shapes-yolo11n.{request.param}"), device="cpu")
    model.warm_up()
    return model


def test_input_size_comes_from_the_model(backend):
    assert backend.imgsz == 320  # trained at 320; the default for unknown models is 640


def test_backend_finds_the_ground_truth(backend, images):
    """Held-out mAP50-95 is 0.967 and recall 0.98: on the samples at least 90% of shapes must be found
    with IoU ≥ 0.5 and the right class, and at least 90% of detections must be right."""
    found = missed = wrong = 0
    predictions = backend.predict([image.pixels for image in images.values()], Options(conf=0.25))
    for name, prediction in zip(images, predictions):
        used = set()
        for truth in TRUTH[name]["objects"]:
            candidates = [(iou(truth["box"], d["box"]), i) for i, d in enumerate(prediction.detections)
                          if d["class_id"] == truth["class_id"] and i not in used]
            best = max(candidates, default=(0.0, -1))
            if best[0] >= 0.5:
                found += 1
                used.add(best[1])
            else:
                missed += 1
        wrong += len(prediction.detections) - len(used)
    assert found / (found + missed) >= 0.9
    assert found / (found + wrong) >= 0.9
    assert backend.names == {0: "circle", 1: "square", 2: "triangle", 3: "star"}


def test_pt_and_onnx_give_the_same_boxes(images):
    pt = Backend(str(ROOT / "models/shapes/shapes-yolo11n.pt"), imgsz=320, device="cpu")
    onnx = Backend(str(ROOT / "models/shapes/shapes-yolo11n.onnx"), imgsz=320, device="cpu")
    pixels = [image.pixels for image in images.values()]
    for a, b in zip(pt.predict(pixels, Options(conf=0.3)), onnx.predict(pixels, Options(conf=0.3))):
        assert len(a.detections) == len(b.detections)
        for da, db in zip(sorted(a.detections, key=lambda d: d["box"]), sorted(b.detections, key=lambda d: d["box"])):
            assert da["class_id"] == db["class_id"]
            assert max(abs(x - y) for x, y in zip(da["box"], db["box"])) < 1.0
            assert abs(da["score"] - db["score"]) < 0.01


def test_class_filter_and_annotation(backend, images):
    """shapes_08.jpg holds two circles among triangles and a star: filtering to circles (class 0) must drop
    the others and keep both circles."""
    image = images["shapes_08.jpg"]
    everything = backend.predict([image.pixels], Options())[0]
    assert {d["class_id"] for d in everything.detections} - {0}, "the image must hold other classes than 0"
    only_circles = backend.predict([image.pixels], Options(classes=(0,), annotate=True))[0]
    assert len(only_circles.detections) >= 2
    assert all(d["class_id"] == 0 for d in only_circles.detections)
    assert len(only_circles.detections) == sum(d["class_id"] == 0 for d in everything.detections)
    assert only_circles.annotated_jpeg[:2] == b"\xff\xd8"
