"""The wire shapes the cluster code sends to RayLAN's Swift client, each made in one place: here.

Every detection, every answer of the detection service, every frame line of a video session and every error
answer is built by a function of this module, never as a dict literal elsewhere. Their Swift counterparts are
the `Codable` types named in each function's doc. Golden examples of each shape are the JSON files in the
repository's `contracts/` folder; `cluster/tests/test_contract.py` and the Swift suite
`Tests/RayLANTests/ContractTests.swift` read the same files, so a field added, renamed or dropped on one side
only fails a test on the other.

`SHAPES` names each shape's required and optional keys; `check(shape, value)` raises ValueError when a value has
a key the shape lacks or lacks one it requires. A null value means the same as an absent key.
"""
from __future__ import annotations

import base64
import json
from typing import Any, Iterable, Mapping

# The words both sides use, one list each (`contracts/vocabulary.json`; Swift: DetectionDeployment.Backend,
# VideoOptions.Tracker, DetectionOptions.classIDLimit, DetectionInput.imageExtensions).
#: What runs the model: the tensor backend where it agrees with Ultralytics' predictor (auto), or either one.
BACKENDS = ("auto", "tensor", "ultralytics")
#: Ultralytics' multi-object trackers.
TRACKERS = ("bytetrack", "botsort")
#: Class ids are whole numbers from 0 to this, exclusive (an int32, as the model's tensors hold them).
CLASS_ID_LIMIT = 2**31
#: The file suffixes a folder or a glob contributes as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: A session's states (Swift: ClusterSession.State); the last four are terminal.
SESSION_STATES = ("created", "running", "finished", "failed", "stopped", "abandoned")
#: The errors that are the input's own (the file itself): a resumed run keeps their lines, in every mode; every
#: other error's input (unreadable for now, a failed model call, ...) is detected again (Swift:
#: DetectionRecord.finalErrorCodes).
FINAL_ERRORS = ("empty", "unsupported_format", "decode_failed", "too_large", "not_a_file")


def backend_error(kind: Any) -> ValueError:
    """The one-line error for a backend not in BACKENDS."""
    return ValueError(f"backend must be {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}, not {kind!r}")


# shape -> (required keys, optional keys)
SHAPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # Swift: Detection. track_id only on tracked video frames (null where the tracker holds no confirmed track).
    "detection": (frozenset({"box", "score", "class_id", "class_name"}), frozenset({"track_id"})),
    # Swift: DetectionResult.Image.
    "image": (frozenset({"width", "height", "format"}), frozenset()),
    # Swift: DetectionResult (its `sent` is the client's own: in its journal's lines, never from the cluster).
    "detection_result": (frozenset({"model", "image", "detections", "batch_size", "timings_ms"}),
                         frozenset({"annotated_jpeg", "sent"})),
    # Swift: FrameResult (`type` tells a frame from the session's other lines).
    "frame_line": (frozenset({"type", "frame", "time"}), frozenset({"detections", "error"})),
    # Swift: DetectionError.
    "error": (frozenset({"code", "message"}), frozenset()),
    # Swift: the body of a refused request, `{"error": DetectionError}`.
    "error_answer": (frozenset({"error"}), frozenset()),
    # Swift: DetectionRecord, one input's line of detections.jsonl in every mode that reads files (a streamed run's,
    # written by Swift; a dataset run's, written by the session, and with "type": "image" its line to the client):
    # its result or its error, the settings that made it (`run`), and for a file read on the cluster the node that
    # read it and its annotated copy.
    "detection_record": (frozenset({"path"}), frozenset({"type", "result", "error", "run", "node", "annotated"})),
    # Swift: DetectionRecord.Settings, what a result depends on besides the image: a resume with others is refused.
    "run_settings": (frozenset({"model", "conf", "iou", "max_side"}), frozenset({"classes", "imgsz"})),
    # Swift: DetectionDeployment.ModelIdentity: `sha256:<hex>` of the model file (else the model as given) and its
    # lower-cased extension.
    "model_identity": (frozenset({"id", "backend"}), frozenset()),
    # Swift: ClusterSession.Failure, a session's own account of why its work ended.
    "session_failure": (frozenset({"code", "message"}), frozenset({"remedy", "traceback"})),
    # Swift: VideoPreview.Header, the first line of a video session's preview (`preview()`): the frame it shows
    # (shrunk: its JPEG follows the line), the frame's size in the source (the boxes' space), its detections, and
    # the milliseconds from the frame's read to its detections on the cluster.
    "preview_header": (frozenset({"type", "frame", "time", "width", "height", "detections"}),
                       frozenset({"latency_ms"})),
    # Swift: ClusterSession.Poll. `items` are the session's lines (a video's frame lines, a dataset's journal
    # lines), `progress` its counters.
    "poll_page": (frozenset({"lines", "cursor", "state", "progress"}), frozenset({"error"})),
    # The other way: the `args` of the Serve applications RayLAN deploys, as Swift writes them (Swift:
    # DetectionDeployment.applicationConfig, GatewayDeployment.applicationConfig; ServiceKey.configArguments for
    # the key: api_key in clear, or api_key_sha256 and key_salt). Each application's builder checks its args.
    "service_args": (frozenset({"model"}), frozenset({
        "imgsz", "max_batch", "batch_wait_ms", "max_pixels", "device", "half", "max_frames", "max_body_bytes",
        "max_decoded_bytes", "backend", "api_key", "api_key_sha256", "key_salt"})),
    "naive_service_args": (frozenset({"model"}), frozenset({
        "imgsz", "max_pixels", "device", "half", "max_body_bytes", "max_decoded_bytes", "api_key", "api_key_sha256",
        "key_salt"})),
    "gateway_args": (frozenset(), frozenset({
        "max_json_bytes", "max_put_bytes", "code_uri", "max_held_bytes", "object_ttl_s", "api_key", "api_key_sha256",
        "key_salt"})),
}

# The nested shapes each shape holds: key -> (shape, whether it is a list of them).
NESTED: dict[str, dict[str, tuple[str, bool]]] = {
    "detection_result": {"image": ("image", False), "detections": ("detection", True)},
    "frame_line": {"detections": ("detection", True), "error": ("error", False)},
    "error_answer": {"error": ("error", False)},
    "poll_page": {"error": ("session_failure", False)},
    "preview_header": {"detections": ("detection", True)},
    "detection_record": {"result": ("detection_result", False), "error": ("error", False),
                         "run": ("run_settings", False)},
    "run_settings": {"model": ("model_identity", False)},
}


def check(shape: str, value: Any) -> None:
    """Raises ValueError naming the shape and the keys when `value` does not have `shape`'s keys."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{shape}: not an object: {value!r}")
    required, optional = SHAPES[shape]
    present = {key for key, item in value.items() if item is not None}
    missing, unknown = required - present, present - required - optional
    if missing or unknown:
        raise ValueError(f"{shape}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    for key, (inner, many) in NESTED.get(shape, {}).items():
        if value.get(key) is None:
            continue
        for item in (value[key] if many else [value[key]]):
            check(inner, item)


def detection(box: Iterable[float], score: float, class_id: int, names: Mapping[int, str]) -> dict:
    """One detected object: box `[x1, y1, x2, y2]` in the original image's pixels (2 decimals), score (5
    decimals), class id and name (the id as text where the model names none)."""
    cls = int(class_id)
    return {"box": [round(float(v), 2) for v in box], "score": round(float(score), 5), "class_id": cls,
            "class_name": names.get(cls, str(cls))}


def tracked(detections: list[dict], track_ids: Mapping[int, int]) -> list[dict]:
    """The detections with `track_id`: `track_ids[i]` for the i-th, None (null) where it has none."""
    return [{**item, "track_id": track_ids.get(i)} for i, item in enumerate(detections)]


def image(width: int, height: int, format: str) -> dict:
    return {"width": int(width), "height": int(height), "format": format}


def detection_result(model: str, image: dict, detections: list[dict], batch_size: int,
                     timings_ms: Mapping[str, float], annotated_jpeg: bytes | None = None) -> dict:
    """The detection service's answer for one image (`/detect`, and each item of `/detect/batch`)."""
    answer = {"model": model, "image": image, "detections": detections, "batch_size": batch_size,
              "timings_ms": dict(timings_ms)}
    if annotated_jpeg is not None:
        answer["annotated_jpeg"] = base64.b64encode(annotated_jpeg).decode()
    return answer


def frame_line(index: int, time: float, detections: list[dict] | None = None, error: dict | None = None) -> dict:
    """A video session's line for one frame: its detections, or the error the model met on it."""
    line: dict[str, Any] = {"type": "frame", "frame": index, "time": round(time, 3)}
    if error is not None:
        line["error"] = error
    else:
        line["detections"] = detections if detections is not None else []
    return line


def preview(index: int, time: float, width: int, height: int, detections: list[dict], jpeg: bytes,
            latency_ms: float | None = None) -> bytes:
    """A video session's preview of one frame, as raw bytes: a `preview_header` line (JSON, then a newline), then
    the frame's JPEG, shrunk. Its detections are in the source's pixels (`width` × `height`), as in its line."""
    header: dict[str, Any] = {"type": "preview", "frame": index, "time": round(time, 3), "width": int(width),
                              "height": int(height), "detections": detections}
    if latency_ms is not None:
        header["latency_ms"] = round(latency_ms, 1)
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + jpeg


def split_preview(data: bytes) -> tuple[dict, bytes]:
    """A preview's header and JPEG (the reader's side of `preview`)."""
    line, _, jpeg = data.partition(b"\n")
    header = json.loads(line)
    check("preview_header", header)
    return header, jpeg


def error(code: str, message: str) -> dict:
    """A named error: a snake_case code and a one-line message."""
    return {"code": code, "message": message}


def error_answer(error: dict) -> dict:
    """The body of a refused request."""
    return {"error": error}


def session_failure(code: str, message: str, remedy: str = "", traceback: str | None = None) -> dict:
    """Why a session's work ended: a snake_case code, a one-line message, what to do, and for an unexpected
    exception its traceback."""
    failure = {"code": code, "message": message, "remedy": remedy}
    if traceback is not None:
        failure["traceback"] = traceback
    return failure


def poll_page(lines: list[str], cursor: int, state: str, progress: Mapping[str, Any],
              error: dict | None = None) -> dict:
    """One answer of a session's poll: the lines from the asked cursor on (each line's JSON text, made once by
    the session), the cursor after them, the session's state (one of SESSION_STATES), its progress counters,
    and once it failed its failure."""
    if state not in SESSION_STATES:
        raise ValueError(f"state must be one of {', '.join(SESSION_STATES)}, not {state!r}")
    return {"lines": lines, "cursor": cursor, "state": state, "error": error, "progress": dict(progress)}


def model_identity(id: str, backend: str) -> dict:
    """Which model made a result: `sha256:<hex>` of its file (the model as given where it is no file here, e.g. a
    name Ultralytics downloads) and its extension, lower-cased, without the dot."""
    return {"id": id, "backend": backend}


def run_settings(model: dict, conf: float, iou: float, classes: Iterable[int] | None = None,
                 imgsz: int | None = None, max_side: str = "off") -> dict:
    """The settings a record was made with (its `run`): the model's identity, conf, iou, the class filter
    (sorted; null keeps all), the model's input size (null: the model's own) and the client's shrink (`off` on
    the cluster, which reads the files as they are)."""
    kept = sorted(set(classes or ()))
    return {"model": model, "conf": float(conf), "iou": float(iou), "classes": kept or None, "imgsz": imgsz,
            "max_side": max_side}


def detection_record(path: str, run: dict, result: dict | None = None, error: dict | None = None,
                     node: str | None = None, annotated: str | None = None) -> dict:
    """One input's line of detections.jsonl: its result (a `detection_result`), or its error, with the settings
    that made it; for a file read on the cluster, the address of the node that read it and its annotated copy's
    path in the run's folder."""
    record: dict[str, Any] = {"path": path}
    if error is not None:
        record["error"] = error
    else:
        record["result"] = result
    record["run"] = run
    if node is not None:
        record["node"] = node
    if annotated is not None:
        record["annotated"] = annotated
    return record


def differences(before: Any, now: dict) -> list[str]:
    """What differs between a journal's settings and this run's, one readable item per setting, e.g.
    `conf 0.25 → 0.5` (Swift: DetectionRecord.Settings.differences)."""
    if not isinstance(before, Mapping):
        return ["the journal's lines record no settings"]

    def shown(key: str, value: Any) -> str:
        if value is None:
            return {"model": "unrecorded", "classes": "all", "imgsz": "the model's"}.get(key, "none")
        if key == "model" and isinstance(value, Mapping):
            backend = value.get("backend")
            return f"{value.get('id')} ({'.' + backend if backend else 'no extension'})"
        if key == "classes" and isinstance(value, list):
            return ",".join(str(item) for item in value)
        return str(value)

    names = {"max_side": "max-side"}
    return [f"{names.get(key, key)} {shown(key, before.get(key))} → {shown(key, value)}"
            for key, value in now.items() if before.get(key) != value]
