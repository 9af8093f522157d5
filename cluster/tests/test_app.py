"""The service's answers without a Ray cluster: the result builder, refusal status codes, the batch's grouping."""
import asyncio
import base64
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
from starlette.requests import Request

from raylan_common import contract
from raylan_detect.app import BatchItem, Detector, error_answer, make_answer, parse_options
from raylan_detect.backend import Options, Prediction
from raylan_detect.models import Runner
from raylan_detect.codec import DecodedImage, ImageError

IMAGE = DecodedImage(pixels=np.zeros((48, 64, 3), dtype=np.uint8), width=64, height=48, format="png")
DETECTION = {"box": [1.0, 2.0, 30.0, 40.0], "score": 0.9, "class_id": 1, "class_name": "square"}
STAGES = {"preprocess": 1.25, "inference": 7.5, "postprocess": 0.5}


def request(query: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/detect", "query_string": query.encode(),
                    "headers": []})


def test_answer_has_the_documented_shape():
    received = time.perf_counter()
    answer = make_answer("shapes-yolo11n", IMAGE, Prediction([DETECTION], dict(STAGES)), batch_size=3,
                         queue_ms=2.00049, decode_ms=4.5, received=received)
    assert answer["model"] == "shapes-yolo11n"
    assert answer["image"] == {"width": 64, "height": 48, "format": "png"}
    assert answer["detections"] == [DETECTION]
    assert answer["batch_size"] == 3
    timings = answer["timings_ms"]
    assert list(timings) == ["queue", "decode", "preprocess", "inference", "postprocess", "total"]
    assert (timings["queue"], timings["decode"]) == (2.0, 4.5)
    assert {stage: timings[stage] for stage in STAGES} == STAGES
    assert 0 <= timings["total"] <= (time.perf_counter() - received) * 1000
    assert "annotated_jpeg" not in answer
    contract.check("detection_result", answer)
    json.dumps(answer)  # plain JSON, as FastAPI sends it


def test_answer_carries_the_annotated_image_in_base64():
    jpeg = b"\xff\xd8\xff\xe0 not really a jpeg"
    answer = make_answer("m", IMAGE, Prediction([], dict(STAGES), jpeg), batch_size=1, queue_ms=0.0,
                         decode_ms=0.0, received=time.perf_counter())
    assert base64.b64decode(answer["annotated_jpeg"]) == jpeg


@pytest.mark.parametrize("query", ["conf=high", "iou=", "classes=0,circle"])
def test_a_bad_query_is_a_bad_request_answered_400(query):
    with pytest.raises(ImageError) as error:
        parse_options(request(query))
    assert error.value.code == "bad_request"
    response = error_answer(error.value)
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "bad_request"


@pytest.mark.parametrize("code", ["empty", "unsupported_format", "decode_failed", "inference_failed"])
def test_an_unusable_image_is_answered_422(code):
    response = error_answer(ImageError(code, "why"))
    assert response.status_code == 422
    assert json.loads(response.body) == {"error": {"code": code, "message": "why"}}


@pytest.mark.parametrize("code", ["too_large", "too_many_frames", "body_too_large"])
def test_a_limit_is_answered_413(code):
    response = error_answer(ImageError(code, "why"))
    assert response.status_code == 413
    assert json.loads(response.body) == {"error": {"code": code, "message": "why"}}


def test_query_options_are_parsed():
    options = parse_options(request("conf=0.5&iou=0.4&classes=0,%202&annotate=1"))
    assert options == Options(conf=0.5, iou=0.4, classes=(0, 2), annotate=True)
    assert parse_options(request("")) == Options()


def test_a_batch_predicts_once_per_option_set_and_answers_in_order():
    """Serve's @serve.batch wraps Detector.infer; the undecorated method runs here on a stand-in backend."""
    calls = []

    def predict(pixels, options):
        calls.append(([int(p[0, 0, 0]) for p in pixels], options))
        return [Prediction([{"image": int(p[0, 0, 0]), "conf": options.conf}], dict(STAGES)) for p in pixels]

    def item(value: int, conf: float) -> BatchItem:
        return BatchItem(np.full((4, 4, 3), value, dtype=np.uint8), Options(conf=conf), ready=time.perf_counter())

    infer = Detector.func_or_class.infer.__wrapped__
    items = [item(0, 0.25), item(1, 0.5), item(2, 0.25)]
    namespace = SimpleNamespace(runner=Runner(SimpleNamespace(predict=predict), "a stand-in"))
    results = asyncio.run(infer(namespace, items))

    assert calls == [([0, 2], Options(conf=0.25)), ([1], Options(conf=0.5))]
    assert [r.prediction.detections for r in results] == [
        [{"image": 0, "conf": 0.25}], [{"image": 1, "conf": 0.5}], [{"image": 2, "conf": 0.25}]]
    assert all(r.batch_size == 3 and r.queue_s >= 0 for r in results)
