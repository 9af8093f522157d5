"""The golden wire examples in contracts/ against contract.py: each has its shape's keys, and the builders make
each again from its values. The Swift suite ContractTests reads the same files into its Codable types."""
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from raylan_common import contract
from raylan_detect import session

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
SHAPE_OF = {"detection_result.json": "detection_result", "frame_line.json": "frame_line",
            "frame_line_error.json": "frame_line", "error_answer.json": "error_answer",
            "poll_page.json": "poll_page", "poll_page_failed.json": "poll_page",
            "detection_record.json": "detection_record", "detection_record_error.json": "detection_record",
            "preview_header.json": "preview_header"}


# The sessions' creation keywords, as the Swift client sends them: the golden file -> the session class's module.
SESSION_SPECS = {"video_session.json": "video", "dataset_session.json": "dataset"}


# The Serve applications' configs, as the Swift client writes them: the golden file -> the shape of its args.
SERVE_CONFIGS = {"service_config.json": "service_args", "naive_service_config.json": "naive_service_args",
                 "gateway_config.json": "gateway_args"}


def load(name: str) -> dict:
    return json.loads((CONTRACTS / name).read_text())


def test_every_golden_file_is_named_here_and_in_the_readme():
    files = sorted(path.name for path in CONTRACTS.glob("*.json"))
    assert files == sorted([*SHAPE_OF, *SESSION_SPECS, *SERVE_CONFIGS, "error_codes.json", "vocabulary.json"])
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


def without_nulls(value: Any) -> Any:
    """`value` with null members left out, at every depth (null and absent mean the same on the wire)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    return [without_nulls(item) for item in value] if isinstance(value, list) else value


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
    for name in ("detection_record.json", "detection_record_error.json"):
        line = load(name)
        run = line["run"]
        settings = contract.run_settings(contract.model_identity(**run["model"]), run["conf"], run["iou"],
                                         run.get("classes"), run.get("imgsz"), run["max_side"])
        made = line.get("result")
        if made is not None:
            made = contract.detection_result(made["model"], contract.image(**made["image"]),
                                             [rebuilt_detection(d) for d in made["detections"]], made["batch_size"],
                                             made["timings_ms"])
        error = contract.error(**line["error"]) if "error" in line else None
        record = contract.detection_record(line["path"], settings, made, error, line["node"], line.get("annotated"))
        assert without_nulls({**({"type": "image"} if "type" in line else {}), **record}) == line
    header = load("preview_header.json")
    made = contract.preview(header["frame"], header["time"], header["width"], header["height"],
                            [rebuilt_detection(d) for d in header["detections"]], b"\xff\xd8jpeg", header["latency_ms"])
    assert contract.split_preview(made) == (header, b"\xff\xd8jpeg")
    for name in ("poll_page.json", "poll_page_failed.json"):
        page = load(name)
        error = contract.session_failure(**page["error"]) if "error" in page else None
        made = contract.poll_page(page["lines"], page["cursor"], page["state"], page["progress"], error)
        assert {key: value for key, value in made.items() if value is not None} == page
        for text in page["lines"]:  # each line the very text the session makes of a frame line
            line = json.loads(text)
            contract.check("frame_line", line)
            assert session.line_text(contract.frame_line(line["frame"], line["time"], line["detections"])) == text


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
    assert list(contract.FINAL_ERRORS) == words["final_errors"]
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


@pytest.mark.parametrize("name", sorted(SESSION_SPECS))
def test_a_session_spec_names_the_sessions_parameters(name):
    import importlib
    import inspect

    module = importlib.import_module(f"raylan_detect.{SESSION_SPECS[name]}")
    session = module.VideoSession if SESSION_SPECS[name] == "video" else module.DatasetSession
    parameters = inspect.signature(session.__init__).parameters
    spec = load(name)
    unknown = set(spec) - set(parameters)
    required = {key for key, parameter in parameters.items()
                if key != "self" and parameter.default is inspect.Parameter.empty}
    assert not unknown, f"{name} sends keywords {session.__name__} does not take: {sorted(unknown)}"
    assert required <= set(spec), f"{session.__name__} requires {sorted(required - set(spec))}, absent from {name}"


def test_the_session_specs_values_pass_the_sessions_checks(tmp_path):
    import inspect

    from raylan_detect import dataset, video

    spec = load("video_session.json")
    defaults = {key: parameter.default for key, parameter in inspect.signature(video.VideoSession).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    # The gateway hands the session each ref's bytes.
    values = {**defaults, **spec, "chunks": [b"piece" for _ in spec["chunks"]]}
    checked = inspect.signature(video.validate).parameters
    video.validate(**{key: value for key, value in values.items() if key in checked})
    session = dataset.DatasetSession(**{**load("dataset_session.json"), "out_dir": str(tmp_path)})
    assert (session.classes, session.actors) == (load("dataset_session.json")["classes"], 2)


@pytest.mark.parametrize("name", sorted(SERVE_CONFIGS))
def test_a_serve_config_builds_its_application(name):
    import importlib

    config = load(name)
    module, function = config["import_path"].split(":")
    builder = getattr(importlib.import_module(module), function)
    contract.check(SERVE_CONFIGS[name], config["args"])
    bound = builder(config["args"])._bound_deployment
    assert [bound.name] == [deployment["name"] for deployment in config["deployments"]]
    # The key's verifier reaches the replica; the salt is for clients only.
    assert bound.init_kwargs["api_key_sha256"] == config["args"]["api_key_sha256"]
    with pytest.raises(ValueError, match="unknown"):
        builder({**config["args"], "unheard_of": 1})
