"""The model layer (raylan_detect/models.py): the registry and its protocol with the shipped model, the runner's
steps with a stand-in backend (no model: what is asked of the backend is what is checked), and the three paths
that run on it (the Serve replica, the Ray Data actors, a video session's own model)."""
from pathlib import Path

import numpy as np
import pytest

from raylan_common import contract
from raylan_detect import models, video
from raylan_detect.backend import Options, Prediction
from raylan_detect.codec import DecodedImage, ImageError
from raylan_detect.models import REGISTRY, DetectionBackend, Runner

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "shapes" / "shapes-yolo11n.pt"
SAMPLES = sorted((ROOT / "samples").glob("*.jpg"))


class StandIn:
    """A backend that 'detects' one box per image whose first pixel is below 200 and fails on a batch holding an
    image whose first pixel is 255. It records each predict's batch size."""

    kind, source, model_id, device, half, imgsz, names = "stand-in", "m.pt", "m", "cpu", False, 64, {0: "thing"}
    decodes_on_device = False

    def __init__(self):
        self.calls: list[int] = []

    def decode(self, data, max_pixels=0, max_decoded_bytes=0):
        from raylan_detect.codec import decode

        return decode(data, max_pixels or 50_000_000, max_decoded_bytes or 2**30)

    def warm_up(self):
        pass

    def predict(self, images, options):
        self.calls.append(len(images))
        if any(int(np.asarray(image).flat[0]) == 255 for image in images):
            raise RuntimeError("this model cannot take a white corner")
        return [Prediction([contract.detection([0, 0, 1, 1], 0.9, 0, self.names)]) for _ in images]


def test_the_registry_holds_every_backend_the_contract_names_and_each_is_a_detection_backend():
    assert set(REGISTRY) == set(contract.BACKENDS) - {"auto"}
    assert isinstance(StandIn(), DetectionBackend)
    for kind in REGISTRY:
        backend, why = models.load_backend(kind, str(MODEL), device="cpu")
        assert isinstance(backend, DetectionBackend) and backend.kind == kind and why == "asked for"
        assert backend.names and backend.imgsz > 0


def test_the_runner_keeps_order_budget_and_each_images_own_error():
    import cv2

    def jpeg(value: int, side: int) -> bytes:
        return cv2.imencode(".jpg", np.full((side, side, 3), value, np.uint8))[1].tobytes()

    backend = StandIn()
    # Decoding a 100×100 JPEG takes 7 bytes a pixel (codec.Header): 70,000 bytes. A budget of 150,000 holds two.
    runner = Runner(backend, "a stand-in", max_decoded_bytes=150_000, decode_threads=2)
    read_error = ImageError("read_failed", "gone")
    items = [jpeg(10, 100), read_error, b"not an image", jpeg(20, 100), jpeg(255, 100), jpeg(30, 100)]
    outcomes = runner.run(items, Options())
    # Chunks [0, 3] and [4, 5]: the second fails as a batch and is predicted again one image at a time.
    assert backend.calls == [2, 2, 1, 1]
    assert outcomes[1] is read_error
    assert isinstance(outcomes[2], ImageError) and outcomes[2].code == "unsupported_format"
    assert isinstance(outcomes[4], ImageError) and outcomes[4].code == "inference_failed"
    assert "white corner" in outcomes[4].message
    for index in (0, 3, 5):
        image, prediction = outcomes[index]
        assert isinstance(image, DecodedImage) and (image.width, image.height) == (100, 100)
        assert prediction.detections[0]["class_name"] == "thing"


def test_a_video_sessions_own_model_fails_a_frame_alone_and_a_batch_only_when_every_frame_fails(monkeypatch):
    backend = StandIn()
    monkeypatch.setattr(Runner, "load", classmethod(lambda cls, *args, **kwargs: cls(backend, "a stand-in")))
    detect, description = video.local_detector(str(MODEL), "auto", None, 0.25, 0.7, None)
    assert "stand-in" in description
    good, white = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    results = detect([good, white, good])
    assert results[0] == results[2] and results[0][0]["class_id"] == 0
    assert results[1]["error"]["code"] == "inference_failed"
    with pytest.raises(RuntimeError, match="white corner"):
        detect([white, white])


def test_the_dataset_actor_runs_on_the_runner(monkeypatch):
    """The Ray Data actor holds a models.Runner and answers through it: its predict, patched, is what it calls
    (the replica's: test_service.py)."""
    from PIL import Image

    from raylan_detect import dataset

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the detector sets it process-wide
    backend = StandIn()
    monkeypatch.setattr(models, "load_backend", lambda *args, **kwargs: (backend, "a stand-in"))
    actor = dataset.Detector(str(MODEL), "auto", None, 0.25, 0.7, None, False, "cpu")
    assert isinstance(actor.runner, Runner) and actor.runner.backend is backend
    seen = []
    predict = Runner.predict
    monkeypatch.setattr(Runner, "predict", lambda self, pixels, options: seen.append(len(pixels)) or
                        predict(self, pixels, options))
    data = SAMPLES[0].read_bytes()
    rows = actor({"path": ["/a.jpg"], "data": [data], "read_error": [""], "read_node": ["n"]})
    assert seen == [1] and not rows["error"][0]
    assert set(rows["backend"]) == {"stand-in"} and set(rows["reason"]) == {"a stand-in"}
