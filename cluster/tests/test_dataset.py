"""`raylan detect --on-cluster` (raylan_detect/dataset.py): the input checks and the journal without Ray; the
detector actor's work on a batch in-process with the shipped model; then the whole session on a local Ray
(2 CPUs) started here, with a working directory laid out as RayLAN uploads it (its packages and models/<file>),
hosted as an actor as the gateway does: results equal the backend's own, a bad file gets its error line, resume,
stop (the detectors released) and the named failures."""
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

import raylan_detect.dataset as dataset
from raylan_detect.backend import Options
from raylan_detect.dataset import (DatasetSession, Detector, annotated_names, compare_listings, expand,
                                   failure_message, plan_nodes, read_files, repeats)
from raylan_common import contract
from raylan_detect.session import SessionError

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "shapes" / "shapes-yolo11n.pt"
SAMPLES = sorted((ROOT / "samples").glob("*.jpg"))
#: How long a run on the cluster may take to give its first answer: each detector loads the model and checks the
#: tensor backend against Ultralytics' before it reads, which has taken up to 5 minutes on this 2-core machine while
#: the test command builds the Swift package beside pytest (about 20 s when idle). A guard against a run that never
#: answers, not a speed target (those live in `raylan bench`).
FIRST_ANSWER_S = 600


def node(ip: str, node_id: str, cpus: float = 4, gpus: float = 0) -> dict:
    return {"NodeID": node_id, "NodeManagerAddress": ip, "Alive": True, "Resources": {"CPU": cpus, "GPU": gpus}}


# ---------------------------------------------------------------------------------------------- no Ray
@pytest.mark.parametrize("kwargs, word", [
    ({"paths": "/data"}, "paths"), ({"paths": []}, "paths"), ({"paths": ["/a", ""]}, "path"),
    ({"model": ""}, "model"), ({"backend": "fast"}, "backend"), ({"imgsz": 0}, "imgsz"), ({"conf": 1.5}, "conf"),
    ({"iou": -0.1}, "iou"), ({"classes": [1, -2]}, "classes"), ({"batch_size": 0}, "batch_size"),
    ({"actors": 0}, "actors"), ({"gpus_per_actor": -1}, "gpus_per_actor"), ({"cpus_per_actor": -1}, "cpus_per_actor"),
    ({"lease_s": 4.5}, "lease_s must be a number of seconds from 5 to 86400"), ({"lease_s": 86_401}, "lease_s"),
    ({"lease_s": None}, "lease_s"),
])
def test_init_refuses_bad_arguments(tmp_path, kwargs, word):
    arguments = {"paths": ["/data"], "model": "models/m.pt", "out_dir": str(tmp_path), **kwargs}
    with pytest.raises(ValueError, match=word):
        DatasetSession(**arguments)


def test_whole_numbers_may_come_as_floats(tmp_path):
    session = DatasetSession(["/d"], "models/m.pt", out_dir=str(tmp_path), batch_size=16.0, imgsz=640.0, actors=2.0,
                             classes=[1.0, 3], gpus_per_actor=0.5)
    assert (session.batch_size, session.imgsz, session.actors, session.classes) == (16, 640, 2, [1, 3])
    with pytest.raises(ValueError, match="batch_size"):
        DatasetSession(["/d"], "models/m.pt", out_dir=str(tmp_path), batch_size=16.5)


def test_expand_files_folders_and_globs(tmp_path):
    for name in ("a/1.jpg", "a/2.PNG", "a/notes.txt", "a/.hidden.jpg", "a/._mac.jpg", "a/.cache/3.jpg",
                 "a/deep/er/4.webp", "b/5.bmp", "b/6.jpeg", "b/7.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert expand(str(tmp_path / "a")) == [str(tmp_path / p) for p in ("a/1.jpg", "a/2.PNG", "a/deep/er/4.webp")]
    assert expand(str(tmp_path / "b" / "*")) == [str(tmp_path / p) for p in ("b/5.bmp", "b/6.jpeg")]
    assert expand(str(tmp_path / "**" / "*.jp*g")) == [str(tmp_path / p) for p in ("a/1.jpg", "b/6.jpeg")]
    assert expand(str(tmp_path / "a" / "notes.txt")) == [str(tmp_path / "a" / "notes.txt")]  # named: any suffix
    assert expand(str(tmp_path / "nope")) == [] and expand(str(tmp_path / "nope*")) == []


def test_a_symlinked_folder_is_followed_once_and_a_file_reached_twice_is_one_input(tmp_path):
    """As the Swift client takes a folder it streams: symlinked folders followed, each once (a loop ends); the same
    file by two paths (a symlink, a hard link) detected once, under the first path."""
    for name in ("real/1.jpg", "real/deep/2.jpg", "other/3.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "real" / "deep" / "loop")  # a loop back to the top
    os.symlink(tmp_path / "other", tmp_path / "real" / "linked")
    found = expand(str(tmp_path / "real"))
    assert found == [str(tmp_path / p) for p in ("real/1.jpg", "real/deep/2.jpg", "real/linked/3.jpg")]
    os.link(tmp_path / "other" / "3.jpg", tmp_path / "other" / "hard.jpg")
    os.symlink(tmp_path / "real" / "1.jpg", tmp_path / "other" / "soft.jpg")
    matches = [expand(str(tmp_path / "real")), expand(str(tmp_path / "other")), [str(tmp_path / "real" / "1.jpg")]]
    first, linked = str(tmp_path / "real/1.jpg"), str(tmp_path / "real/linked/3.jpg")
    # real/linked is other/: its new names are found through it first.
    assert repeats(matches) == {str(tmp_path / "real/linked/hard.jpg"): linked,
                                str(tmp_path / "real/linked/soft.jpg"): first,
                                str(tmp_path / "other/3.jpg"): linked, str(tmp_path / "other/hard.jpg"): linked,
                                str(tmp_path / "other/soft.jpg"): first}


def test_listings_that_agree_give_each_file_once_in_the_first_nodes_order():
    same = [["/d/b.jpg", "/d/a.jpg"], ["/d/a.jpg"]]
    assert compare_listings(["/d", "/d/a.jpg"], {"10.0.0.1": same, "10.0.0.2": same}) == ["/d/b.jpg", "/d/a.jpg"]


def test_a_file_missing_on_a_node_is_named_with_the_nodes():
    with pytest.raises(SessionError) as failure:
        compare_listings(["/d"], {"10.0.0.1": [["/d/a.jpg", "/d/b.jpg", "/d/c.jpg"]],
                                  "10.0.0.2": [["/d/a.jpg"]], "10.0.0.3": [["/d/a.jpg", "/d/c.jpg"]]})
    error = failure.value
    assert error.code == "path_not_on_every_node"
    assert error.message == "/d/b.jpg is on 10.0.0.1 but not on 10.0.0.2, 10.0.0.3 (1 more file missing somewhere)"
    assert "mount every node has at the same path" in error.remedy
    with pytest.raises(SessionError, match=r"^/d/x.jpg is on 10.0.0.2 but not on 10.0.0.1$"):
        compare_listings(["/d"], {"10.0.0.1": [["/d/a.jpg"]], "10.0.0.2": [["/d/a.jpg", "/d/x.jpg"]]})


def test_a_path_that_matches_nothing_on_some_node_or_on_any():
    with pytest.raises(SessionError) as failure:
        compare_listings(["/mnt/nfs/*.jpg"], {"10.0.0.1": [["/mnt/nfs/a.jpg", "/mnt/nfs/b.jpg"]], "10.0.0.2": [[]]})
    assert failure.value.code == "path_not_on_every_node"
    assert failure.value.message == "/mnt/nfs/*.jpg is on 10.0.0.1 (2 files) but not on 10.0.0.2"
    with pytest.raises(SessionError) as failure:
        compare_listings(["/d", "/typo"], {"10.0.0.1": [["/d/a.jpg"], []], "10.0.0.2": [["/d/a.jpg"], []]})
    assert failure.value.code == "no_inputs"
    assert failure.value.message == "nothing matches /typo on any of the 2 nodes (10.0.0.1, 10.0.0.2)"


def test_plan_nodes():
    cpu, gpu = node("10.0.0.1", "n1", cpus=8), node("10.0.0.2", "n2", cpus=8, gpus=2)
    idle = {"n1": {"CPU": 8}, "n2": {"CPU": 8, "GPU": 2}}
    plan = plan_nodes([cpu, gpu], idle, None, 1.0, None)
    assert plan == ([cpu, gpu], [gpu], 1.0, 1.0, 2)  # auto: the GPU node, a detector per GPU
    assert plan_nodes([cpu, gpu], idle, 0, 1.0, None)[1:] == ([cpu, gpu], 0, 1.0, 2)  # one per CPU node
    with pytest.raises(SessionError, match="all of the cluster's 2 GPUs are in use") as failure:
        plan_nodes([cpu, gpu], {"n1": {"CPU": 8}, "n2": {"CPU": 8}}, None, 1.0, None)  # a detection service holds both
    assert failure.value.code == "no_free_gpu"
    with pytest.raises(SessionError, match="no alive node has 1 CPU and 1 GPU") as failure:
        plan_nodes([cpu], {"n1": {"CPU": 8}}, 1, 1.0, None)
    assert failure.value.code == "no_node_fits"
    with pytest.raises(SessionError) as failure:
        plan_nodes([cpu], {"n1": {"CPU": 1.0}}, None, 1.0, None)
    assert failure.value.code == "no_free_cpu" and "1.25" in failure.value.message


@pytest.mark.parametrize("free, chosen", [(16, 1.0), (1.25, 1.0), (1.0, 0.75), (0.8, 0.55), (0.5, 0.25)])
def test_plan_nodes_sizes_a_detector_to_the_free_cpus_when_none_is_asked_for(free, chosen):
    """The embedded cluster has 2 CPUs and a detection service holds one: a detector of 1 CPU and a read of 0.25
    would wait forever (no_free_cpu), so a detector not given --cpus-per-actor takes what is free beside a read."""
    small = node("127.0.0.1", "n1", cpus=2)
    plan = plan_nodes([small], {"n1": {"CPU": free}}, None, None, None)
    assert plan == ([small], [small], 0.0, chosen, 1)
    with pytest.raises(SessionError) as failure:
        plan_nodes([small], {"n1": {"CPU": 0.45}}, None, None, None)  # not even the least detector beside a read
    assert failure.value.code == "no_free_cpu" and "0.5" in failure.value.message


def test_plan_nodes_fits_the_detectors_and_a_read_on_each_nodes_free_cpus():
    """Two 2-CPU nodes whose detection service replicas hold 1 CPU on each: the cluster has 2 CPUs free, but a
    detector spans no two nodes. `--actors 2` sized from the cluster's total (1 CPU each) would fill both nodes and
    leave no room for a read: the run would wait forever. Sized per node, each takes 0.75."""
    head, worker = node("10.0.0.1", "n1", cpus=2), node("10.0.0.2", "n2", cpus=2)
    half = {"n1": {"CPU": 1.0}, "n2": {"CPU": 1.0}}
    assert plan_nodes([head, worker], half, None, None, 2)[2:] == (0.0, 0.75, 2)
    # Asked for 1 CPU each, the same two detectors cannot have a read beside them now (the work would wait).
    with pytest.raises(SessionError) as failure:
        plan_nodes([head, worker], half, None, 1.0, 2)
    assert failure.value.code == "no_free_cpu" and "2 detectors of 1 CPU" in failure.value.message
    # Nor ever: four of 1 CPU fill both idle nodes.
    idle = {"n1": {"CPU": 2.0}, "n2": {"CPU": 2.0}}
    with pytest.raises(SessionError) as failure:
        plan_nodes([head, worker], idle, None, 1.0, 4)
    assert failure.value.code == "no_node_fits" and "4 detectors" in failure.value.message
    assert plan_nodes([head, worker], idle, None, 1.0, 3)[2:] == (0.0, 1.0, 3)  # a read beside the third
    # Not asked for a number: one per node where each has room, fewer where not (a pool that grows to them).
    assert plan_nodes([head, worker], {"n1": {"CPU": 1.2}, "n2": {"CPU": 0.1}}, None, None, None)[2:] == (0.0, 0.95, 1)
    # Where a GPU is free on one node only, the detectors are sized to that node.
    gpus = [node("10.0.0.1", "n1", cpus=4, gpus=1), node("10.0.0.2", "n2", cpus=4, gpus=1)]
    plan = plan_nodes(gpus, {"n1": {"CPU": 4, "GPU": 1}, "n2": {"CPU": 4, "GPU": 0}}, None, None, None)
    assert plan[2:] == (1.0, 1.0, 1)


def test_annotated_names_are_unique_only_where_stems_clash():
    names = annotated_names(["/x/a.jpg", "/y/a.png", "/x/b.jpg"])
    assert set(names) == {"/x/a.jpg", "/y/a.png"} and len(set(names.values())) == 2
    assert all(name.startswith("a-") and name.endswith(".jpg") for name in names.values())


def answered(path: str, run: dict, **extra) -> dict:
    """A journal line that answered `path` (no detections)."""
    result = contract.detection_result("m", contract.image(4, 4, "jpeg"), [], 1, {})
    return contract.detection_record(path, run, result, node="n", **extra)


def failed(path: str, run: dict, code: str) -> dict:
    return contract.detection_record(path, run, error=contract.error(code, "?"), node="n")


def test_the_journal_on_resume_keeps_answers_and_the_files_own_errors_drops_the_rest_and_without_resume_moves_aside(
        tmp_path):
    journal = tmp_path / "detections.jsonl"
    run = DatasetSession(["/d"], "models/m.pt", out_dir=str(tmp_path)).settings()
    assert run["model"] == {"id": "models/m.pt", "backend": "pt"}  # no such file here: the model as given
    lines = [answered("/d/a.jpg", run), failed("/d/b.jpg", run, "decode_failed"), answered("/d/a.jpg", run),
             failed("/d/d.jpg", run, "read_failed"), failed("/d/e.jpg", run, "inference_failed")]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"path": "/d/cut')
    session = DatasetSession(["/d"], "models/m.pt", out_dir=str(tmp_path), resume=True)
    files = ["/d/a.jpg", "/d/b.jpg", "/d/d.jpg", "/d/e.jpg"]
    file, done, kept_failed = session.open_journal(files)
    file.close()
    # The rule a streamed run resumes by: an answer stands, and an error that is the file's own (decode_failed);
    # a read that failed and a model call that failed are done again.
    assert done == {"/d/a.jpg", "/d/b.jpg"} and kept_failed == {"/d/b.jpg"}
    assert [json.loads(line) for line in journal.read_text().splitlines()] == [lines[0], lines[1]]
    session = DatasetSession(["/d"], "models/m.pt", out_dir=str(tmp_path))
    file, done, kept_failed = session.open_journal(["/d/a.jpg"])
    file.close()
    assert done == kept_failed == set() and journal.read_text() == "" and (tmp_path / "detections.jsonl.1").exists()


def test_a_resume_with_a_same_named_model_of_other_content_is_refused(tmp_path):
    first, second = tmp_path / "one" / "best.pt", tmp_path / "two" / "best.pt"
    for path, extra in ((first, b""), (second, b"\0")):
        path.parent.mkdir()
        path.write_bytes(MODEL.read_bytes() + extra)
    out = tmp_path / "out"
    session = DatasetSession(["/d"], str(first), out_dir=str(out))
    file = session.open_journal(["/d/a.jpg"])[0]
    # The model's identity is its content's, as the Swift client records a streamed run's model.
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert session.run_settings["model"] == {"id": f"sha256:{digest}", "backend": "pt"}
    file.write(json.dumps(answered("/d/a.jpg", session.run_settings)) + "\n")
    file.close()
    _, done, _ = DatasetSession(["/d"], str(first), out_dir=str(out), resume=True).open_journal(["/d/a.jpg"])
    assert done == {"/d/a.jpg"}
    with pytest.raises(SessionError) as refused:
        DatasetSession(["/d"], str(second), out_dir=str(out), resume=True).open_journal(["/d/a.jpg"])
    assert refused.value.code == "resume_settings_differ"
    assert f"model sha256:{digest} (.pt) → sha256:" in refused.value.message


def test_a_resume_with_other_settings_is_refused_and_a_new_run_sets_the_old_outputs_aside(tmp_path):
    def journal_of_one_run(**kwargs):
        session = DatasetSession(["/d"], str(MODEL), out_dir=str(tmp_path), annotate=True, **kwargs)
        file, done, _ = session.open_journal(["/d/a.jpg"])
        file.write(json.dumps(answered("/d/a.jpg", session.run_settings, annotated="annotated/a.jpg")) + "\n")
        file.close()
        (tmp_path / "annotated" / "a.jpg").write_bytes(b"jpeg")
        return session, done

    journal_of_one_run(conf=0.25)
    # The same settings: the answer is kept.
    _, done = journal_of_one_run(conf=0.25, resume=True)
    assert done == {"/d/a.jpg"}
    # Another conf (or model, imgsz, iou, classes): refused, the journal as it was.
    before = (tmp_path / "detections.jsonl").read_text()
    with pytest.raises(SessionError) as refused:
        DatasetSession(["/d"], str(MODEL), out_dir=str(tmp_path), conf=0.5, classes=[2, 1],
                       resume=True).open_journal(["/d/a.jpg"])
    assert refused.value.code == "resume_settings_differ"
    assert "(conf 0.25 → 0.5, classes all → 1,2)" in refused.value.message
    assert (tmp_path / "detections.jsonl").read_text() == before
    # A journal whose lines record no settings (an older RayLAN's) is refused too, and left as it was.
    (tmp_path / "detections.jsonl").write_text(json.dumps({"path": "/d/a.jpg", "image": {}, "detections": [],
                                                           "model": MODEL.stem, "node": "n"}) + "\n")
    with pytest.raises(SessionError, match="the journal's lines record no settings"):
        DatasetSession(["/d"], str(MODEL), out_dir=str(tmp_path), resume=True).open_journal(["/d/a.jpg"])
    (tmp_path / "detections.jsonl").write_text(before)
    # A new run without resume: the earlier journal and annotated images are set aside, and only this run's
    # files are outputs (nor is anything outside them readable).
    session = DatasetSession(["/d"], str(MODEL), out_dir=str(tmp_path), conf=0.5)
    session.open_journal(["/d/a.jpg"])[0].close()
    assert (tmp_path / "annotated.1" / "a.jpg").exists() and (tmp_path / "detections.jsonl.1").exists()
    assert [entry["name"] for entry in session.outputs()] == ["detections.jsonl"]
    for name in ("detections.jsonl.1", "annotated.1/a.jpg", "../x", "/etc/hostname"):
        with pytest.raises(ValueError):
            session.read(name)


def test_an_annotated_name_that_climbs_out_of_the_folder_is_not_read(tmp_path):
    """A run that annotates serves any name under annotated/ (produced()); what keeps annotated/../../x, a file
    beside the output folder, from being served is read()'s check that the file lies inside the folder."""
    out = tmp_path / "out"
    (tmp_path / "secret.txt").write_text("not an output")
    session = DatasetSession(["/d"], str(MODEL), out_dir=str(out), annotate=True)
    session.open_journal(["/d/a.jpg"])[0].close()
    (out / "annotated").mkdir(exist_ok=True)
    (out / "annotated" / "a.jpg").write_bytes(b"jpeg")
    assert session.read("annotated/a.jpg") == b"jpeg"
    with pytest.raises(ValueError, match="is not one of this session's outputs"):
        session.read("annotated/../../secret.txt")


def test_read_files_names_what_it_cannot_read(tmp_path, monkeypatch):
    (tmp_path / "ok.jpg").write_bytes(b"abc")
    (tmp_path / "big.jpg").write_bytes(b"x" * 100)
    monkeypatch.setattr(dataset, "MAX_FILE_BYTES", 50)
    out = read_files({"path": [str(tmp_path / name) for name in ("ok.jpg", "gone.jpg", "big.jpg")]})
    assert list(out["data"]) == [b"abc", b"", b""]
    errors = [json.loads(error) if error else None for error in out["read_error"]]
    assert errors[0] is None and errors[1]["code"] == "read_failed" and errors[2]["code"] == "too_large"
    assert "No such file" in errors[1]["message"]


def test_failure_message_finds_the_root_exception():
    class ActorDiedError(Exception):
        pass

    error = ActorDiedError("The actor died because of an error raised in its creation task, \x1b[36mray::MapWorker("
                           "MapBatches(Detector)).__init__()\x1b[39m (pid=1, ip=10.0.0.7, actor_id=ab)\n  File x\n"
                           "TypeError: bad.pt is not a loadable checkpoint\nRecommended fixes are")
    assert failure_message(error) == "a detector could not start on 10.0.0.7: TypeError: bad.pt is not a loadable checkpoint"


# ---------------------------------------------------------------------------------------------- the detector
@pytest.fixture(scope="module")
def reference():
    """The backend as a replica loads it (the tensor one, which `auto` picks on a CPU for this model)."""
    from raylan_detect.models import load_backend

    backend, _ = load_backend("tensor", str(MODEL))
    backend.warm_up()
    return backend


def expected(reference, data: bytes) -> dict:
    image = reference.decode(data)
    return {"image": {"width": image.width, "height": image.height, "format": image.format},
            "detections": reference.predict([image.pixels], Options())[0].detections}


def test_the_detector_answers_each_file_alone_when_one_fails(reference, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the detector sets it process-wide
    monkeypatch.setattr("raylan_detect.models.load_backend", lambda *args, **kwargs: (reference, "the reference"))
    calls = []
    predict = reference.predict

    def fussy(images, options):  # the model fails on the 384×512 images (shapes_03, shapes_09)
        calls.append(len(images))
        if any(tuple(image.shape[1:]) == (512, 384) for image in images):
            raise RuntimeError("no")
        return predict(images, options)

    monkeypatch.setattr(reference, "predict", fussy)
    # Decoding takes 7 bytes a pixel: 2.2, 6.5, 2.5, 1.4 and 1.6 MB. With a budget of 7 MB the batch is
    # predicted in chunks [00], [01], [02, 03, 04]; the last one fails (03) and is predicted again one by one.
    detector = Detector(str(MODEL), "tensor", None, 0.25, 0.7, None, False, "cpu", max_decoded_bytes=7_000_000)
    datas = [path.read_bytes() for path in SAMPLES[:5]] + [b"GIF89a...."]
    batch = {"path": [str(path) for path in SAMPLES[:5]] + ["/d/x.gif", "/d/gone.jpg"],
             "data": datas + [b""], "read_error": [""] * 6 + [json.dumps({"code": "read_failed", "message": "m"})],
             "read_node": ["10.0.0.1"] * 6 + ["10.0.0.9"]}
    rows = detector(batch)
    monkeypatch.setattr(reference, "predict", predict)
    assert calls == [1] + [1, 1, 3] + [1, 1, 1]  # warm-up, the chunks, the failed chunk image by image
    for index in (0, 1, 2, 4):
        result = json.loads(rows["result"][index])
        assert {key: result[key] for key in ("image", "detections")} == expected(reference, datas[index])
        assert not rows["error"][index] and result["batch_size"] == 1 and "inference" in result["timings_ms"]
    assert json.loads(rows["error"][3])["code"] == "inference_failed"
    assert json.loads(rows["error"][5])["code"] == "unsupported_format"
    assert json.loads(rows["error"][6]) == {"code": "read_failed", "message": "m"} and rows["node"][6] == "10.0.0.9"
    assert set(rows["backend"]) == {"tensor"} and set(rows["reason"]) == {"the reference"}
    # Each answer says how many images the model predicted together: the chunks [00], [01], [02, 03, 04].
    rows = detector({**batch, "path": batch["path"][:5], "data": datas[:5], "read_error": [""] * 5})
    assert [json.loads(result)["batch_size"] for result in rows["result"]] == [1, 1, 3, 3, 3]


# ---------------------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray of 2 CPUs whose workers import RayLAN's packages from cluster/ (PYTHONPATH), and the working
    directory that the session actor gets, as the gateway gives it: RayLAN's packages and models/<file>."""
    import ray

    work = tmp_path_factory.mktemp("working_dir")
    for package in ("raylan_detect", "raylan_common"):
        shutil.copytree(ROOT / "cluster" / package, work / package, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "models").mkdir()
    shutil.copy(MODEL, work / "models" / MODEL.name)
    # Ray 2.60's local ray.init() otherwise turns token authentication on and writes a token to the user's
    # ~/.ray/auth_token (mode 0644), which a test must not leave behind.
    mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT / "cluster")}})
        ray.working_dir = uploaded(work)  # for first_run
        yield ray
    finally:
        ray.shutdown()
        if mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = mode


def uploaded(folder: Path) -> str:
    """The folder uploaded to the cluster as a working directory package: its gcs:// URI, as RayLAN's client
    uploads one for the gateway (Ray's own helper: an actor's runtime_env takes URIs only)."""
    import inspect

    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    extra = {"include_gitignore": False} if "include_gitignore" in inspect.signature(
        upload_working_dir_if_needed).parameters else {}  # Ray 2.60's argument; 2.45 has none
    return upload_working_dir_if_needed({"working_dir": str(folder)}, scratch_dir=str(folder.parent),
                                        **extra)["working_dir"]


def follow(call) -> tuple[dict, list[dict]]:
    """Polls a session (call(method, *args)) until it ends (within FIRST_ANSWER_S); its last answer and every item."""
    items, cursor, deadline = [], 0, time.monotonic() + FIRST_ANSWER_S
    while True:
        answer = call("poll", cursor, 1000, 1.0)
        items += [json.loads(text) for text in answer["lines"]]
        cursor = answer["cursor"]
        if answer["state"] != "running" and not answer["lines"]:
            return answer, items
        assert time.monotonic() < deadline, answer


def local(session):
    return lambda method, *args: getattr(session, method)(*args)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The samples in a/, one again in b/ (the same name), a symlink in b/ to one of a/'s, a file that is not an
    image and an empty one."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    for path in SAMPLES:
        shutil.copy(path, folder / "a" / path.name)
    shutil.copy(SAMPLES[0], folder / "b" / SAMPLES[0].name)
    # The same file as a/'s second sample by another path: detected once, under a/'s path.
    os.symlink(folder / "a" / SAMPLES[1].name, folder / "b" / "same.jpg")
    (folder / "a" / "broken.jpg").write_bytes(b"this is not an image")
    (folder / "a" / "empty.png").write_bytes(b"")
    (folder / "a" / "notes.txt").write_text("not picked by a folder search")
    return folder


@pytest.fixture(scope="module")
def first_run(cluster, data, tmp_path_factory):
    """The session as the gateway hosts it: an actor in the working directory, the model given relative to it,
    which only that working directory holds: Ray Data's detectors find it because they inherit the actor's
    runtime environment."""
    out = tmp_path_factory.mktemp("out")
    host = cluster.remote(DatasetSession).options(num_cpus=0, max_concurrency=4,
                                                  runtime_env={"working_dir": cluster.working_dir})
    session = host.remote([str(data / "a"), str(data / "b" / "*.jpg")], "models/" + MODEL.name, out_dir=str(out),
                          annotate=True, batch_size=4)
    call = lambda method, *args: cluster.get(getattr(session, method).remote(*args))  # noqa: E731
    described = call("start")
    answer, items = follow(call)
    outputs = call("outputs")
    cluster.kill(session)
    return {"out": out, "answer": answer, "items": items, "described": described, "outputs": outputs}


def journal_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]


def test_results_on_the_cluster_are_the_backends_own(first_run, data, reference, cluster):
    answer, items, out = first_run["answer"], first_run["items"], first_run["out"]
    assert answer["state"] == "finished", answer["error"]
    assert first_run["described"]["model"] == MODEL.stem
    images, summary = items[:-1], items[-1]
    assert all(item["type"] == "image" for item in images)
    lines = journal_lines(out)
    assert [{"type": "image", **line} for line in lines] == images  # the client gets the journal's lines
    ip = cluster.util.get_node_ip_address()
    by_path = {line["path"]: line for line in lines}
    wanted = [str(data / "a" / path.name) for path in SAMPLES] + [str(data / "b" / SAMPLES[0].name)]
    assert set(by_path) == set(wanted) | {str(data / "a" / "broken.jpg"), str(data / "a" / "empty.png")}
    for path in wanted:
        line = by_path[path]
        result = line["result"]
        assert {key: result[key] for key in ("image", "detections")} == expected(reference, Path(path).read_bytes())
        assert result["model"] == MODEL.stem and line["node"] == ip and result["detections"]
        assert 1 <= result["batch_size"] <= 16 and result["timings_ms"]["inference"] > 0
        contract.check("detection_record", line)
        # The settings it was made with, as a streamed run records them: a resume compares them.
        assert line["run"] == {"model": {"id": f"sha256:{hashlib.sha256(MODEL.read_bytes()).hexdigest()}",
                                         "backend": "pt"}, "conf": 0.25, "iou": 0.7, "classes": None, "imgsz": None,
                               "max_side": "off"}
        annotated = out / line["annotated"]
        assert annotated.read_bytes()[:3] == b"\xff\xd8\xff"
    assert by_path[str(data / "a" / "broken.jpg")] == {
        "path": str(data / "a" / "broken.jpg"), "node": ip, "run": by_path[wanted[0]]["run"],
        "error": {"code": "unsupported_format", "message": "not an image in a supported format (JPEG, PNG, WebP, BMP)"}}
    assert by_path[str(data / "a" / "empty.png")]["error"]["code"] == "empty"
    assert len({by_path[path]["annotated"] for path in wanted}) == len(wanted)  # shapes_00 twice, two names
    assert len(list((out / "annotated").iterdir())) == len(wanted)
    assert summary["type"] == "summary" and summary["backend"] == "tensor"  # auto chose the tensor backend
    assert "matches the Ultralytics backend" in summary["backend_reason"]
    assert {key: summary[key] for key in ("inputs", "succeeded", "failed", "skipped", "nodes", "stopped")} == {
        "inputs": 15, "succeeded": 13, "failed": 2, "skipped": 0, "nodes": {ip: 15}, "stopped": False}
    assert summary["images_per_s"] > 0 and json.loads((out / "summary.json").read_text()) == summary
    progress = answer["progress"]
    assert {key: progress[key] for key in ("phase", "total", "done", "failed", "skipped", "nodes")} == {
        "phase": "detecting", "total": 15, "done": 15, "failed": 2, "skipped": 0, "nodes": {ip: 15}}
    assert {entry["name"] for entry in first_run["outputs"]} >= {"detections.jsonl", "summary.json"}


def test_resume_skips_what_was_answered_and_the_files_own_errors_and_tries_the_others_again(first_run, data, reference,
                                                                                            cluster):
    out = first_run["out"]
    broken, empty = data / "a" / "broken.jpg", data / "a" / "empty.png"
    # The first run's errors are the files' own (unsupported_format, empty): a resume keeps them, as a streamed run's
    # does, even where the file has been mended since. A read that failed is the file's state then: done again.
    shutil.copy(SAMPLES[1], broken)
    lines = journal_lines(out)
    flaky = next(line["path"] for line in lines if "error" not in line)
    (out / "detections.jsonl").write_text("".join(
        json.dumps({"path": flaky, "node": line["node"], "run": line["run"],
                    "error": {"code": "read_failed", "message": "gone for now"}}
                   if line["path"] == flaky else line) + "\n" for line in lines))
    session = DatasetSession([str(data / "a"), str(data / "b" / "*.jpg")], str(MODEL), out_dir=str(out),
                             backend="tensor", resume=True)
    session.start()
    answer, items = follow(local(session))
    assert answer["state"] == "finished", answer["error"]
    assert [item["path"] for item in items[:-1]] == [flaky]
    summary = items[-1]
    # Every input's line counts, the kept ones too: 13 answers (12 kept, 1 again), the 2 kept errors.
    assert (summary["inputs"], summary["succeeded"], summary["failed"], summary["skipped"]) == (15, 13, 2, 14)
    lines = journal_lines(out)
    assert len(lines) == 15 and len({line["path"] for line in lines}) == 15  # one line per file
    again = next(line for line in lines if line["path"] == flaky)
    assert {key: again["result"][key] for key in ("image", "detections")} == expected(reference,
                                                                                        Path(flaky).read_bytes())
    assert sorted(line["path"] for line in lines if "error" in line) == sorted([str(broken), str(empty)])


def test_stop_mid_run_releases_the_detectors(cluster, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for copy in range(20):
        for path in SAMPLES:
            shutil.copy(path, folder / f"{path.stem}_{copy}.jpg")  # copies: a symlink's file is one input
    session = DatasetSession([str(folder)], str(MODEL), out_dir=str(tmp_path / "out"), backend="tensor", batch_size=2)
    session.start()
    cursor, deadline = 0, time.monotonic() + FIRST_ANSWER_S
    while cursor == 0:
        answer = session.poll(cursor, 1000, 1.0)
        assert answer["state"] == "running", answer["error"]
        assert time.monotonic() < deadline
        cursor = answer["cursor"]
    started = time.monotonic()
    assert session.stop() == {"state": "stopped"}
    assert time.monotonic() - started < 10
    answer = session.poll(0, 1000)
    summary = json.loads(answer["lines"][-1])
    assert summary["type"] == "summary" and summary["stopped"] and summary["succeeded"] < 240
    assert len(journal_lines(tmp_path / "out")) == summary["succeeded"]  # whole lines only
    assert_detectors_released(cluster)


def test_with_a_service_holding_one_of_two_cpus_the_plain_run_sizes_its_detector_to_what_is_free(cluster, tmp_path):
    """The default embedded cluster: 2 CPUs, one held by the detection service's replica (an actor of 1 CPU stands
    in). Without --cpus-per-actor the run takes the 0.75 CPU free beside a read instead of waiting for 1."""
    holder = cluster.remote(num_cpus=1)(type("Replica", (), {"ready": lambda self: True})).remote()
    try:
        assert cluster.get(holder.ready.remote())
        session = DatasetSession([str(path) for path in SAMPLES[:3]], str(MODEL), out_dir=str(tmp_path / "out"),
                                 backend="tensor")
        session.start()
        answer, items = follow(local(session))
        assert answer["state"] == "finished", answer["error"]
        summary = items[-1]
        assert (summary["succeeded"], summary["cpus_per_actor"], summary["gpus_per_actor"]) == (3, 0.75, 0.0)
    finally:
        cluster.kill(holder)
    assert_detectors_released(cluster)


def test_detectors_that_would_leave_no_room_for_a_read_are_refused_before_any_starts(cluster, tmp_path):
    """The cluster's one node has 2 CPUs: two detectors of 1 CPU would hold both, and the reads that feed them could
    never run. Refused at once with what to ask for, not left waiting."""
    session = DatasetSession([str(path) for path in SAMPLES[:3]], str(MODEL), out_dir=str(tmp_path / "out"),
                             backend="tensor", actors=2, cpus_per_actor=1)
    session.start()
    answer, _ = follow(local(session))
    assert answer["state"] == "failed" and answer["error"]["code"] == "no_node_fits", answer
    assert "2 detectors of 1 CPU" in answer["error"]["message"] and "--actors" in answer["error"]["remedy"]
    assert_detectors_released(cluster)


def assert_detectors_released(cluster) -> None:
    """Within 30 s the detectors' and reads' CPUs come back, and no Ray Data MapWorker actor is alive."""
    from ray._private import state

    deadline = time.monotonic() + 30
    while cluster.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, cluster.available_resources()
        time.sleep(0.5)
    alive = [actor["ActorClassName"] for actor in state.actors().values() if actor["State"] == "ALIVE"]
    assert not [name for name in alive if "MapWorker" in name], alive


def test_nothing_matching_fails_with_no_inputs(cluster, tmp_path):
    session = DatasetSession([str(tmp_path / "nothing-here"), str(tmp_path / "*.jpg")], str(MODEL),
                             out_dir=str(tmp_path / "out"))
    session.start()
    answer, items = follow(local(session))
    assert answer["state"] == "failed" and answer["error"]["code"] == "no_inputs", answer["error"]
    assert answer["error"]["message"].startswith(f"nothing matches {tmp_path / 'nothing-here'}, {tmp_path / '*.jpg'} "
                                                 f"on the node")
    assert items == [] and not (tmp_path / "out" / "detections.jsonl").exists()


def test_a_model_that_is_not_on_the_nodes_is_named(cluster, data, tmp_path):
    session = DatasetSession([str(data / "a")], "models/nope.pt", out_dir=str(tmp_path))
    session.start()
    answer, _ = follow(local(session))
    assert answer["state"] == "failed" and answer["error"]["code"] == "model_not_on_every_node", answer["error"]
    assert "the model models/nope.pt is on none of the nodes that can run it" in answer["error"]["message"]


def test_a_session_whose_client_is_gone_ends_its_actor_and_detectors(cluster, tmp_path):
    """Hosted as the gateway hosts it (its owner actor creates the session's actor), with a lease of 5 s: the client
    polls until the first answers, then goes away. The session stops its work (its Ray Data execution ends, the
    summary says stopped), ends the journal with the abandoned line, and its actor ends itself: DEAD in Ray's
    state, the gateway's next call answered actor_died, the detectors gone and the CPUs back."""
    from ray._private import state

    from raylan_gateway.owner import Owner

    folder = tmp_path / "many"
    folder.mkdir()
    for copy in range(40):
        for path in SAMPLES:
            shutil.copy(path, folder / f"{path.stem}_{copy}.jpg")  # copies: a symlink's file is one input
    out = tmp_path / "out"
    owner = cluster.remote(Owner).options(num_cpus=0, max_concurrency=100).remote()
    try:
        status, created = cluster.get(owner.create_actor.remote({
            "class": "raylan_detect.dataset:DatasetSession", "resources": {"cpus": 0}, "wait": 120,
            "runtime_env": {"working_dir": cluster.working_dir},
            "kwargs": {"paths": [str(folder)], "model": "models/" + MODEL.name, "out_dir": str(out),
                       "backend": "tensor", "batch_size": 2, "lease_s": 5}}))
        assert (status, created["state"]) == (200, "alive"), created

        def call(method: str, **kwargs) -> dict:
            return cluster.get(owner.call_actor.remote(created["id"], {"method": method, "kwargs": kwargs,
                                                                       "wait": 60}))[1]

        assert call("start")["value"]["lease_s"] == 5
        cursor, deadline = 0, time.monotonic() + FIRST_ANSWER_S
        while cursor == 0:
            answer = call("poll", cursor=cursor, limit=1000, wait=1.0)["value"]
            assert answer["state"] == "running", answer["error"]
            assert time.monotonic() < deadline
            cursor = answer["cursor"]
        left = time.monotonic()  # the client's last call
        actor_id = created["id"].partition("-")[2]
        while state.actors(actor_id)["State"] != "DEAD":
            assert time.monotonic() - left < 60, state.actors(actor_id)
            time.sleep(0.2)
        assert time.monotonic() - left >= 5
        gone = call("poll", cursor=cursor)
        assert gone["state"] == "failed" and gone["error"]["code"] == "actor_died", gone
        *answered, abandoned = journal_lines(out)
        assert 1 <= len(answered) < 480 and all("path" in line for line in answered)
        assert abandoned["type"] == "abandoned" and abandoned["lease_s"] == 5.0 and abandoned["idle_s"] >= 5
        summary = json.loads((out / "summary.json").read_text())
        assert summary["stopped"] and summary["succeeded"] == len(answered)
        assert_detectors_released(cluster)
    finally:
        cluster.kill(owner)  # and with it any actor it still owns
