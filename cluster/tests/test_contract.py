"""The golden wire examples in contracts/ against contract.py: each has its shape's keys, and the builders make
each again from its values. The Swift suite ContractTests reads the same files into its Codable types."""
import base64
import json
from pathlib import Path

import pytest

from raylan_common import contract

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
SHAPE_OF = {"detection_result.json": "detection_result", "frame_line.json": "frame_line",
            "frame_line_error.json": "frame_line", "error_answer.json": "error_answer",
            "poll_page.json": "poll_page", "poll_page_failed.json": "poll_page"}


def load(name: str) -> dict:
    return json.loads((CONTRACTS / name).read_text())


def test_every_golden_file_is_named_here_and_in_the_readme():
    files = sorted(path.name for path in CONTRACTS.glob("*.json"))
    assert files == sorted([*SHAPE_OF, "error_codes.json", "vocabulary.json"])
    readme = (CONTRACTS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in files)


@pytest.mark.parametrize("name", sorted(SHAPE_OF))
def test_a_golden_file_has_its_shapes_keys(name):
    contract.check(SHAPE_OF[name], load(name))


def rebuilt_detection(item: dict) -> dict:
    made = contract.detection(item["box"], item["score"], item["class_id"],
                              {item["class_id"]: item["class_name"]} if item["class_name"] != str(item["class_id"])
                              else {})
    return contract.tracked([made], {0: item["track_id"]})[0] if "track_id" in item else made


def test_the_builders_make_the_golden_files_again():
    result = load("detection_result.json")
    assert contract.detection_result(
        result["model"], contract.image(**result["image"]), [rebuilt_detection(d) for d in result["detections"]],
        result["batch_size"], result["timings_ms"], base64.b64decode(result["annotated_jpeg"])) == result
    frame = load("frame_line.json")
    assert contract.frame_line(frame["frame"], frame["time"], [rebuilt_detection(d) for d in frame["detections"]]) \
        == frame
    failed = load("frame_line_error.json")
    assert contract.frame_line(failed["frame"], failed["time"], error=contract.error(**failed["error"])) == failed
    answer = load("error_answer.json")
    assert contract.error_answer(contract.error(**answer["error"])) == answer
    for name in ("poll_page.json", "poll_page_failed.json"):
        page = load(name)
        error = contract.session_failure(**page["error"]) if "error" in page else None
        made = contract.poll_page(page["items"], page["cursor"], page["state"], page["progress"], error)
        assert {key: value for key, value in made.items() if value is not None} == page


@pytest.mark.parametrize("shape, value, named", [
    ("detection", {"box": [0, 0, 1, 1], "score": 0.5, "class_id": 0}, "class_name"),
    ("detection", {"box": [0, 0, 1, 1], "score": 0.5, "class_id": 0, "class_name": "a", "label": "a"}, "label"),
    ("detection_result", {**json.loads((CONTRACTS / "detection_result.json").read_text()), "batch": 1}, "batch"),
    ("frame_line", {"type": "frame", "frame": 1, "time": 0.0, "detections": [{"box": []}]}, "score"),
    ("error_answer", {"error": {"code": "x"}}, "message"),
])
def test_check_names_a_missing_or_unknown_key_also_nested(shape, value, named):
    with pytest.raises(ValueError, match=named):
        contract.check(shape, value)


def test_a_null_counts_as_absent():
    contract.check("detection", {"box": [0, 0, 1, 1], "score": 0.5, "class_id": 0, "class_name": "a",
                                 "track_id": None})
    with pytest.raises(ValueError, match="class_name"):
        contract.check("detection", {"box": [0, 0, 1, 1], "score": 0.5, "class_id": 0, "class_name": None})


def codes_sent_by_the_cluster_code() -> dict[str, set[str]]:
    """code -> the files that send it: SessionError(...), ImageError(...), contract.error(...), `"code": "…"`,
    and codec.py's code constants."""
    import re
    found: dict[str, set[str]] = {}
    patterns = [r'SessionError\(\s*"([a-z_]+)"', r'ImageError\(\s*"([a-z_]+)"', r'contract\.error\(\s*"([a-z_]+)"',
                r'"code": "([a-z_]+)"']
    cluster = CONTRACTS.parent / "cluster"
    for path in [*cluster.glob("raylan_detect/*.py"), *cluster.glob("raylan_common/*.py")]:
        text = path.read_text()
        for pattern in patterns:
            for code in re.findall(pattern, text):
                found.setdefault(code, set()).add(path.name)
    codec = (cluster / "raylan_detect/codec.py").read_text()
    for code in re.findall(r'^[A-Z_]+ = "([a-z_]+)"$', codec, re.M):
        found.setdefault(code, set()).add("codec.py")
    return found


def test_every_error_code_the_cluster_sends_is_in_the_contract():
    listed = json.loads((CONTRACTS / "error_codes.json").read_text())
    known = {code for codes in listed.values() for code in codes}
    sent = codes_sent_by_the_cluster_code()
    assert len(sent) >= 20, sorted(sent)
    missing = {code: sorted(files) for code, files in sent.items() if code not in known}
    assert not missing, f"codes sent but not in contracts/error_codes.json: {missing}"
    assert all(code == code.lower() and " " not in code for code in known)


def test_the_vocabulary_is_the_one_every_module_uses():
    from raylan_detect import app, dataset, video

    words = load("vocabulary.json")
    assert list(contract.BACKENDS) == words["backends"]
    assert list(contract.TRACKERS) == words["trackers"]
    assert contract.CLASS_ID_LIMIT == words["class_id_limit"]
    assert list(contract.IMAGE_SUFFIXES) == words["image_suffixes"]
    assert list(contract.SESSION_STATES) == words["session_states"]
    # The modules that check these values check them against the contract's, not copies of their own.
    assert video.BACKENDS is contract.BACKENDS and video.TRACKERS is contract.TRACKERS
    assert dataset.IMAGE_SUFFIXES is contract.IMAGE_SUFFIXES
    assert app.CLASS_ID_LIMIT == contract.CLASS_ID_LIMIT


@pytest.mark.parametrize("session", ["video", "dataset"])
@pytest.mark.parametrize("limit_ok", [True, False])
def test_every_session_takes_class_ids_up_to_the_one_limit(tmp_path, session, limit_ok):
    from raylan_detect import dataset, video

    highest = contract.CLASS_ID_LIMIT - 1 if limit_ok else contract.CLASS_ID_LIMIT
    if session == "video":
        arguments = dict(source="a.mp4", detector={"app": "x"}, stride=1, track=None, conf=0.25, iou=0.7,
                         classes=[0, highest], batch=8, buffer=16, reconnect_attempts=5, reconnect_delay=0.5,
                         max_reconnect_delay=8.0, chunks=None, sha256=None, name=None, read_timeout=10.0)
        start = lambda: video.validate(**arguments)  # noqa: E731
    else:
        start = lambda: dataset.DatasetSession(["/d"], "models/m.pt", out_dir=str(tmp_path),  # noqa: E731
                                               classes=[0, highest])
    if limit_ok:
        start()
    else:
        with pytest.raises(ValueError, match="classes"):
            start()


def test_a_session_polls_and_fails_in_the_contract_shapes(tmp_path):
    from raylan_detect.session import Session, SessionError

    class Failing(Session):
        def work(self):
            self.emit({"type": "frame", "frame": 0, "time": 0.0, "detections": []})
            raise SessionError("stream_lost", "the stream ended", "Check the camera.")

    session = Failing(str(tmp_path), "test", 60)
    session.start()
    pages = [session.poll(0, wait=5)]
    for _ in range(50):
        if pages[-1]["state"] == "failed":
            break
        pages.append(session.poll(pages[-1]["cursor"], wait=0.2))
    for page in pages:
        contract.check("poll_page", page)
    assert pages[-1]["error"] == contract.session_failure("stream_lost", "the stream ended", "Check the camera.")
    with pytest.raises(ValueError, match="state"):
        contract.poll_page([], 0, "paused", {})
