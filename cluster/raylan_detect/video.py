"""Detection on a video decoded on the cluster: a file on a node, an uploaded file or a live stream.

RayLAN's gateway hosts VideoSession as an actor and the client follows it by polling (session.py). The
source is decoded where the session runs (OpenCV with FFmpeg), so only result lines cross the network:

    reader thread   decodes frames into a bounded buffer. A file: every frame, in order; the reader waits
                    for room, so nothing is lost and memory stays bounded. A live stream: the buffer keeps
                    the newest `buffer` frames and drops the oldest (counted), so detection that falls behind
                    skips frames instead of lagging further and further; a stream that ends or fails is
                    reopened with exponential backoff.
    work()          takes batches of up to `batch` frames, detects (a Serve application, or a model loaded
                    here), tracks, draws the annotated video, and emits one line per processed frame.

Result lines (each also written: frame lines to detections.jsonl, the report to report.json):

    {"type": "frame", "frame": 12, "time": 0.4, "detections": [{"box": [x1, y1, x2, y2], "score",
     "class_id", "class_name", "track_id" (when tracking: an int, or null for a detection the tracker has
     not confirmed yet)}]}                                     a frame whose detection failed has
                                                               "error": {"code", "message"} instead
    {"type": "event", "event": "reconnecting", "attempt": 1, "of": 5, "delay": 0.5, "message"}
    {"type": "event", "event": "reconnected", "attempt": 1, "message"}
    {"type": "event", "event": "stream_lost", "attempts": 5, "message"}   then the session fails: stream_lost
    {"type": "summary", "frames_read", "frames_processed", "frames_dropped", "frames_failed", "reconnects",
     "seconds", "fps", "width", "height", "source_fps"}
    {"type": "report", ...}                                    with report=True; see Report

detections.jsonl also gets, as its last line, {"type": "abandoned", "lease_s", "idle_s", "at"} when the client
made no call for lease_s seconds and the session stopped itself (its lease: session.py).

"frame" is the frame's index in the source (0-based, counting every frame read, also those skipped by
`stride` or dropped); "time" is the frame's timestamp in seconds (a file's own, CAP_PROP_POS_MSEC) or, live,
the seconds since the stream was opened. The summary and the report come at the end of every run that
opened its source and loaded its detector: finished, stopped, or just before a lost stream's event;
"seconds" is the time from the detector being ready to the end (its loading excluded) and "fps" the
processed frames per second of it.

Opening: start() returns once the source is open (or has failed to open), so that it can report the video's
size, rate and length: fast for a file, at most `read_timeout` for a stream. The detector loads after that,
in the session's thread (progress "stage": "loading_detector", then "running", "done"), while the reader
already reads: a file fills the buffer, a stream drops its oldest frames (counted) rather than pile up.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from raylan_common import contract

from .session import DEFAULT_LEASE_S, Session, SessionError, check_lease

TRACKERS = contract.TRACKERS
BACKENDS = contract.BACKENDS
#: Most frames in one detection call (the Serve application's default max_frames is 64).
MAX_BATCH = 64
#: Seconds a Serve application has to answer one batch.
APP_TIMEOUT_S = 120
#: Batches in a row whose detection raised before the session fails (one failure marks its frames only).
MAX_FAILED_BATCHES = 3
#: The report's interval, in seconds of source time.
REPORT_INTERVAL_S = 1.0
#: The annotated video's rate when the source does not say its own.
DEFAULT_FPS = 25.0
#: Names the session's own outputs use: an upload may not take them.
OUTPUT_NAMES = ("detections.jsonl", "annotated.mp4", "report.json")

DetectFn = Callable[[list[np.ndarray]], list[Any]]


class Frame(NamedTuple):
    index: int  # in the source, 0-based
    time: float  # seconds
    pixels: np.ndarray  # H×W×3 BGR uint8
    read_at: float = 0.0  # time.monotonic() when it was read


#: Previews a session makes at most per second, and the longest side of one, in pixels.
PREVIEW_FPS_RANGE = (0.0, 30.0)
PREVIEW_SIDE_RANGE = (64, 1920)


def preview_jpeg(pixels: np.ndarray, side: int, quality: int = 75) -> bytes:
    """The frame shrunk to at most `side` pixels on its longer side (never enlarged), as a JPEG."""
    import cv2

    height, width = pixels.shape[:2]
    scale = min(1.0, side / max(width, height))
    if scale < 1.0:
        pixels = cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the preview could not be encoded")
    return encoded.tobytes()


def is_url(source: str) -> bool:
    """Whether the source is a URL (scheme://...) rather than a path; file:// counts as a path."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", source)
    return bool(scheme) and scheme.group(1).lower() != "file"


def redact(source: str) -> str:
    """The source as messages show it: a URL without its password (rtsp://user:***@host/...)."""
    if not is_url(source):
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


# ---------------------------------------------------------------------------------------------- buffering
class FrameBuffer:
    """Frames between the reader thread and the detection loop, never more than `capacity`. A file's reader
    waits for room (drop_oldest False: no frame is lost); a live reader drops the oldest frame (counted in
    `dropped`), since the newest matter."""

    def __init__(self, capacity: int, drop_oldest: bool):
        self.capacity = max(1, capacity)
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._frames: deque[Frame] = deque()
        self._closed = False
        self._changed = threading.Condition()

    def put(self, frame: Frame, stopping: threading.Event) -> bool:
        """Adds a frame; False (frame not added) when stopping while waiting for room."""
        with self._changed:
            while len(self._frames) >= self.capacity:
                if self.drop_oldest:
                    self._frames.popleft()
                    self.dropped += 1
                elif stopping.is_set():
                    return False
                else:
                    self._changed.wait(0.2)
            self._frames.append(frame)
            self._changed.notify_all()
            return True

    def close(self) -> None:
        """No more frames come: take() returns what is left, then []."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def take(self, most: int, fill: bool, stopping: threading.Event) -> list[Frame]:
        """Up to `most` frames, in order. Waits for the first; with `fill`, for `most` of them (or the end).
        [] at the end (closed and empty) or when stopping."""
        need = min(most, self.capacity) if fill else 1
        with self._changed:
            while not stopping.is_set() and not self._closed and len(self._frames) < need:
                self._changed.wait(0.2)
            if stopping.is_set():
                return []
            out = [self._frames.popleft() for _ in range(min(most, len(self._frames)))]
            self._changed.notify_all()
            return out


# ---------------------------------------------------------------------------------------------- detection
def make_detector(spec: dict, conf: float, iou: float, classes: list[int] | None) -> tuple[DetectFn, str]:
    """The detect(frames) callable for a validated detector spec, and a one-line description of it.
    detect takes BGR uint8 frames and returns per frame a list of detections ({"box", "score", "class_id",
    "class_name"}, boxes in the frame's pixels) or {"error": {"code", "message"}}; it raises if the whole
    batch failed."""
    if "app" in spec:
        return app_detector(spec["app"], conf, iou, classes)
    imgsz = int(spec["imgsz"]) if spec.get("imgsz") is not None else None
    return local_detector(spec["model"], spec.get("backend", "auto"), imgsz, conf, iou, classes)


def app_detector(app: str, conf: float, iou: float, classes: list[int] | None) -> tuple[DetectFn, str]:
    """Detection through a RayLAN detection application on Ray Serve (its detect_frames method), which
    batches these frames with the cluster's other requests on its replicas."""
    try:
        from ray import serve

        handle = serve.get_app_handle(app)
    except Exception as error:  # noqa: BLE001 - Serve not running, no such application: named below
        raise SessionError(
            "detector_unavailable", f"there is no Serve application {app!r} to detect with ({type(error).__name__}: "
            f"{error})", "Deploy it first ('raylan serve deploy'), or list the applications with 'raylan serve status'.")
    options = {"conf": conf, "iou": iou, "classes": list(classes) if classes else None}

    def detect(frames: list[np.ndarray]) -> list[Any]:
        results = handle.detect_frames.remote(frames, options).result(timeout_s=APP_TIMEOUT_S)
        if not isinstance(results, list) or len(results) != len(frames):
            raise RuntimeError(f"the application {app!r} answered {len(frames)} frames with "
                               f"{type(results).__name__} of {len(results) if hasattr(results, '__len__') else '?'}")
        return results

    return detect, f"Serve application {app!r}"


def local_detector(model: str, kind: str, imgsz: int | None, conf: float, iou: float,
                   classes: list[int] | None) -> tuple[DetectFn, str]:
    """Detection with a model loaded in this process through the replica's model layer (models.Runner: the
    tensor or Ultralytics backend, as a replica of the detection service would choose). Both backends take BGR
    arrays as OpenCV decodes them. A frame the model fails on alone gets its error, as through the service; a
    batch where it failed on every frame raises, and counts toward MAX_FAILED_BATCHES."""
    if not Path(model).expanduser().is_file():
        raise SessionError("model_not_found", f"there is no model file {model} on this node",
                           "Give a path to a .pt or .onnx file as the node sees it, or detect through a deployed "
                           "application (detector {'app': name}).")
    from .backend import Options
    from .codec import ImageError
    from .models import Runner

    try:
        runner = Runner.load(kind, str(Path(model).expanduser()), imgsz=imgsz)
    except Exception as error:  # noqa: BLE001 - a model that does not load is named, with its cause
        raise SessionError("detector_unavailable", f"cannot load the model {model} ({type(error).__name__}: {error})",
                           "Check that it is a YOLO detection model (.pt or .onnx) that this Ultralytics loads.")
    options = Options(conf=conf, iou=iou, classes=tuple(classes) if classes else None)

    def detect(frames: list[np.ndarray]) -> list[Any]:
        outcomes = runner.predict(frames, options)
        if outcomes and all(isinstance(outcome, ImageError) for outcome in outcomes):
            raise RuntimeError(outcomes[0].message)
        return [contract.error_answer(outcome.as_dict()) if isinstance(outcome, ImageError) else outcome.detections
                for outcome in outcomes]

    return detect, f"{Path(model).name} on the {runner.backend.kind} backend ({runner.reason})"


# ---------------------------------------------------------------------------------------------- tracking
class Tracker:
    """Ultralytics' ByteTrack or BoT-SORT (their default settings, ultralytics/cfg/trackers/*.yaml) fed with
    our detections, one frame at a time, in order. It adds a track id to each detection; boxes and scores stay
    the detector's (Ultralytics' own tracking mode shows the Kalman-filtered boxes instead)."""

    def __init__(self, kind: str, frame_rate: float):
        import inspect

        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace

        settings = IterableSimpleNamespace(**YAML.load(ROOT / "cfg" / "trackers" / f"{kind}.yaml"))
        settings.device = "cpu"  # only a ReID model would use it, and the default settings have none
        tracker_class = BOTSORT if kind == "botsort" else BYTETracker
        # Ultralytics before 8.4 scaled track_buffer by frame_rate / 30; later versions count frames only.
        if "frame_rate" in inspect.signature(tracker_class.__init__).parameters:
            self.tracker = tracker_class(args=settings, frame_rate=max(1, round(frame_rate)))
        else:
            self.tracker = tracker_class(args=settings)

    def assign(self, detections: list[dict], image: np.ndarray) -> list[dict]:
        """The frame's detections with "track_id" (None where the tracker holds no confirmed track)."""
        from ultralytics.engine.results import Boxes

        rows = np.array([[*d["box"], d["score"], d["class_id"]] for d in detections], dtype=np.float32).reshape(-1, 6)
        tracks = self.tracker.update(Boxes(rows, image.shape[:2]), image)
        ids = {int(track[-1]): int(track[4]) for track in tracks} if len(tracks) else {}
        return contract.tracked(detections, ids)


# ---------------------------------------------------------------------------------------------- the report
class Report:
    """Per-class counts over time. For each interval of REPORT_INTERVAL_S seconds of source time with a processed
    frame: per class the most objects seen in one frame ("max") and, when tracking, the distinct track ids
    ("tracks"). Totals per class: detections, frames with one, the most in one frame, distinct tracks.

        {"type": "report", "interval": 1.0, "tracking": true, "frames": 90,
         "intervals": [{"start": 0.0, "end": 1.0, "frames": 30, "classes": {"circle": {"max": 1, "tracks": 1}}}],
         "totals": {"circle": {"detections": 90, "frames": 90, "max": 1, "tracks": 1}}}
    """

    def __init__(self, tracking: bool, interval: float = REPORT_INTERVAL_S):
        self.tracking = tracking
        self.interval = interval
        self.frames = 0
        self._intervals: dict[int, dict] = {}
        self._totals: dict[str, dict] = {}

    def add(self, seconds: float, detections: list[dict]) -> None:
        self.frames += 1
        slot = self._intervals.setdefault(int(max(0.0, seconds) // self.interval), {"frames": 0, "classes": {}})
        slot["frames"] += 1
        counts: dict[str, int] = {}
        for detection in detections:
            name = detection.get("class_name") or str(detection.get("class_id"))
            counts[name] = counts.get(name, 0) + 1
            track = detection.get("track_id")
            if self.tracking and track is not None:
                slot["classes"].setdefault(name, {"max": 0, "tracks": set()})["tracks"].add(track)
                self._totals.setdefault(name, {"detections": 0, "frames": 0, "max": 0, "tracks": set()})["tracks"].add(track)
        for name, count in counts.items():
            per_slot = slot["classes"].setdefault(name, {"max": 0, "tracks": set()})
            per_slot["max"] = max(per_slot["max"], count)
            total = self._totals.setdefault(name, {"detections": 0, "frames": 0, "max": 0, "tracks": set()})
            total["detections"] += count
            total["frames"] += 1
            total["max"] = max(total["max"], count)

    def as_dict(self) -> dict:
        def counts(entry: dict, keys: tuple[str, ...]) -> dict:
            out = {key: entry[key] for key in keys}
            if self.tracking:
                out["tracks"] = len(entry["tracks"])
            return out

        intervals = [{"start": round(k * self.interval, 3), "end": round((k + 1) * self.interval, 3),
                      "frames": slot["frames"],
                      "classes": {name: counts(entry, ("max",)) for name, entry in sorted(slot["classes"].items())}}
                     for k, slot in sorted(self._intervals.items())]
        totals = {name: counts(entry, ("detections", "frames", "max")) for name, entry in sorted(self._totals.items())}
        return {"type": "report", "interval": self.interval, "tracking": self.tracking, "frames": self.frames,
                "intervals": intervals, "totals": totals}


# ---------------------------------------------------------------------------------------------- drawing
PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203)]


def draw(image: np.ndarray, detections: list[dict]) -> np.ndarray:
    """Boxes with "class score" (and "#track") labels drawn on the frame, in place; coloured by track when
    tracked, else by class."""
    import cv2

    height, width = image.shape[:2]
    thickness = max(1, round((height + width) / 600))
    scale = max(0.4, (height + width) / 2000)
    for detection in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in detection["box"])
        track = detection.get("track_id")
        color = PALETTE[(track if track is not None else detection["class_id"]) % len(PALETTE)]
        label = f"{detection.get('class_name', detection['class_id'])} {detection['score']:.2f}"
        if track is not None:
            label = f"#{track} {label}"
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - text_h - baseline - 2 if y1 - text_h - baseline - 2 >= 0 else y1
        cv2.rectangle(image, (x1, top), (min(width - 1, x1 + text_w + 2), top + text_h + baseline + 2), color, -1)
        cv2.putText(image, label, (x1 + 1, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return image


class AnnotatedVideo:
    """annotated.mp4: MPEG-4 Part 2 ('mp4v'), which every OpenCV build with FFmpeg writes, at the first
    frame's size (a stream that comes back at another size is scaled to it)."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        import cv2

        self.size = (width, height)
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
        if not self.writer.isOpened():
            raise SessionError("output_failed", f"OpenCV cannot write {path} with the 'mp4v' codec",
                               "Run without annotate, or check the node's OpenCV (FFmpeg) build.")

    def write(self, image: np.ndarray) -> None:
        import cv2

        if image.shape[1::-1] != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)

    def release(self) -> None:
        self.writer.release()


# ---------------------------------------------------------------------------------------------- the session
class VideoSession(Session):
    """Detection (and tracking) on a video file, an uploaded file or a live stream, followed by polling.

    source      a file path as the cluster node sees it, or a URL: rtsp://, rtmp://, http(s):// (MJPEG, HLS),
                udp://, tcp://, anything FFmpeg opens
    detector    {"app": name}: a deployed RayLAN detection application on Ray Serve; or {"model": path,
                "backend": "auto" | "tensor" | "ultralytics", "imgsz": int}: a model loaded by the session
    stride      process every stride-th frame only (frame index % stride == 0)
    track       "bytetrack" or "botsort": track ids on the detections
    annotate    write annotated.mp4: each processed frame with its boxes, at source fps / stride
    report      emit (and write report.json) per-class counts over time
    live        None: a URL is live, a file is not. Live: drop frames rather than lag, reconnect on failure (a
                device such as /dev/video0 needs live=True; a file given live=True is replayed at its end)
    buffer      frames decoded ahead (a file: the reader waits; live: the oldest are dropped)
    reconnect_attempts, reconnect_delay, max_reconnect_delay
                a live source that ends or fails is reopened up to reconnect_attempts times in a row,
                waiting reconnect_delay seconds, doubled each time up to max_reconnect_delay
    chunks, sha256, name
                an uploaded file, in order (the gateway resolves the client's pieces to bytes): written to
                out_dir/name (default input.mp4), checked against sha256, then used as the source
    read_timeout
                seconds that opening a stream, or reading one frame of it, may take before it counts as failed
    lease_s     seconds without a call of the client after which the session stops itself, ends its actor and
                is "abandoned" (client_gone; session.py): from 5 to 86400, default 120
    preview_fps, preview_side
                at most preview_fps times a second (0: never, the default; up to 30), the processed frame is kept
                shrunk to preview_side pixels on its longer side (64-1920, default 640) with its detections, for
                preview(): a person watching the run (raylan detect --view)
    """

    #: The clock previews are spaced by (seconds; a test gives a fake one).
    preview_clock: Callable[[], float] = staticmethod(time.monotonic)

    journal_name = "detections.jsonl"

    def __init__(self, source: str, detector: dict, out_dir: str | None = None, stride: int = 1,
                 track: str | None = None, annotate: bool = False, report: bool = False, conf: float = 0.25,
                 iou: float = 0.7, classes: list[int] | None = None, batch: int = 8, live: bool | None = None,
                 buffer: int = 16, reconnect_attempts: int = 5, reconnect_delay: float = 0.5,
                 max_reconnect_delay: float = 8.0, chunks: list[bytes] | None = None, sha256: str | None = None,
                 name: str | None = None, read_timeout: float = 10.0, lease_s: float = DEFAULT_LEASE_S,
                 preview_fps: float = 0.0, preview_side: int = 640):
        validate(source, detector, stride, track, conf, iou, classes, batch, buffer, reconnect_attempts,
                 reconnect_delay, max_reconnect_delay, chunks, sha256, name, read_timeout, lease_s, preview_fps,
                 preview_side)
        super().__init__(out_dir, "video", lease_s)
        self.detector_spec = dict(detector)
        self.stride, self.track, self.annotate, self.report = int(stride), track, bool(annotate), bool(report)
        self.conf, self.iou = float(conf), float(iou)
        self.classes = [int(c) for c in classes] if classes else None
        self.batch, self.buffer = int(batch), int(buffer)
        self.reconnect_attempts = int(reconnect_attempts)
        self.reconnect_delay, self.max_reconnect_delay = float(reconnect_delay), float(max_reconnect_delay)
        self.read_timeout = float(read_timeout)
        self.preview_fps, self.preview_side = float(preview_fps), int(preview_side)
        self._preview: tuple[int, bytes] | None = None  # the newest preview: its frame and its bytes
        self._preview_at: float | None = None  # preview_clock() when it was made
        self.previews_made = 0
        if not is_url(source):  # a path: file:// and ~ as a shell would take them (FFmpeg does neither)
            source = str(Path(source[len("file://"):] if source.startswith("file://") else source).expanduser())
        self.source = source
        self._failure: SessionError | None = None  # found before start(): raised by work()
        if chunks is not None:
            self.source = str(self.out_dir / (name or "input.mp4"))
            self._failure = assemble(chunks, Path(self.source), sha256)
            chunks.clear()  # the gateway's list: the bytes are on disk now
        self.live = is_url(self.source) if live is None else bool(live)
        self.width: int | None = None
        self.height: int | None = None
        self.source_fps: float | None = None
        self.frame_count: int | None = None
        self._opened = threading.Event()
        self._quit = threading.Event()  # tells the reader thread to end (set when work() ends, however)
        self._frames_read = 0
        self._reconnects = 0
        self._reader_error: BaseException | None = None

    # ------------------------------------------------------------------------------------ the client's calls
    def start(self) -> dict:
        """Starts the work and returns once the source is open, or failed to open (state failed, with error)."""
        with self._client_call():
            super().start()
            self._opened.wait(self.read_timeout + 5)
            return self.describe()

    def preview(self, after: int = -1, wait: float = 0.0) -> bytes:
        """The newest preview (contract.preview: a header line, then the JPEG) of a frame after `after`, waiting
        up to `wait` seconds (at most 20) for one; b"" when none came or the session has ended."""
        with self._client_call():
            deadline = time.monotonic() + max(0.0, min(float(wait), 20.0))
            with self._lock:
                while ((self._preview is None or self._preview[0] <= int(after)) and self._state == "running"
                       and time.monotonic() < deadline):
                    self._lock.wait(deadline - time.monotonic())
                if self._preview is None or self._preview[0] <= int(after):
                    return b""
                return self._preview[1]

    def describe(self) -> dict:
        info = super().describe()
        info.update(source=redact(self.source), live=self.live, width=self.width, height=self.height,
                    source_fps=self.source_fps, frame_count=self.frame_count, stride=self.stride, track=self.track)
        return info

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            self._opened.set()  # also when opening failed: start() returns the failure

    # ------------------------------------------------------------------------------------ opening
    def _open(self) -> Any | None:
        """An opened cv2.VideoCapture through FFmpeg, with the open and read timeouts, or None."""
        import cv2

        milliseconds = int(self.read_timeout * 1000)
        capture = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds,
                                                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds])
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _open_source(self) -> Any:
        import cv2

        if self._failure is not None:
            raise self._failure
        if not is_url(self.source) and not self.live:
            if not Path(self.source).is_file():
                raise SessionError("source_not_found", f"there is no file {self.source} on {os.uname().nodename}",
                                   "Give the path as the cluster node sees it, or upload the file from the client.")
        capture = self._open()
        if capture is None:
            if self.live:
                raise SessionError(
                    "source_unreadable", f"cannot open the stream {redact(self.source)} (within {self.read_timeout:g} s)",
                    "Check the URL, and that the stream is up and reachable from the cluster node.")
            raise SessionError("source_unreadable", f"OpenCV (FFmpeg) cannot read {self.source} as a video",
                               "Check that the file is a video in a format FFmpeg reads (MP4, MKV, AVI, MOV...).")
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps, count = float(capture.get(cv2.CAP_PROP_FPS)), capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.width, self.height = (width or None), (height or None)
        self.source_fps = round(fps, 3) if 0 < fps < 1000 else None
        # Streams report no count (or a nonsense one); some containers only an estimate.
        self.frame_count = int(count) if not self.live and 0 < count < 1e12 else None
        return capture

    # ------------------------------------------------------------------------------------ reading
    def _read(self, capture: Any, frames: FrameBuffer, started: float) -> None:
        """The reader thread: frames into the buffer until the end, a lost stream, or work() quits."""
        import cv2

        index = 0
        attempt = 0  # reconnection attempts since the last frame read
        try:
            while not self._quit.is_set():
                if capture is None:  # a live source to reopen
                    attempt += 1
                    if attempt > self.reconnect_attempts:
                        self._reader_error = SessionError(
                            "stream_lost", f"the stream {redact(self.source)} was lost after {self.reconnect_attempts} "
                            "reconnection attempts", "Check that the stream is up and reachable from the cluster's "
                            "head node; for a source that drops out longer, allow more attempts (raylan detect "
                            "--reconnect-attempts N; reconnect_attempts and max_reconnect_delay here).")
                        return
                    delay = min(self.reconnect_delay * 2 ** (attempt - 1), self.max_reconnect_delay)
                    self.emit({"type": "event", "event": "reconnecting", "attempt": attempt,
                               "of": self.reconnect_attempts, "delay": round(delay, 3),
                               "message": f"the stream {redact(self.source)} ended or failed; reconnecting in "
                                          f"{delay:g} s (attempt {attempt} of {self.reconnect_attempts})"})
                    if self._quit.wait(delay):
                        return
                    capture = self._open()
                    if capture is not None:
                        self._reconnects += 1
                        self.emit({"type": "event", "event": "reconnected", "attempt": attempt,
                                   "message": f"reconnected to {redact(self.source)} (attempt {attempt})"})
                    continue
                if not capture.grab():
                    capture.release()
                    capture = None
                    if not self.live:
                        return  # the file's end
                    continue
                attempt = 0
                this, index = index, index + 1
                self._frames_read = index
                seconds = (time.monotonic() - started) if self.live else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                if this % self.stride:
                    continue  # grabbed (demuxed and decoded) but not converted to BGR
                ok, pixels = capture.retrieve()
                if ok and pixels is not None and not frames.put(Frame(this, seconds, pixels, time.monotonic()), self._quit):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to work(), which fails the session with it
            self._reader_error = error
        finally:
            if capture is not None:
                capture.release()
            frames.close()

    # ------------------------------------------------------------------------------------ the work
    def produced(self, name: str) -> bool:
        """The journal, and annotated.mp4 and report.json when this run writes them (not the uploaded video)."""
        return (name == self.journal_name or (self.annotate and name == "annotated.mp4")
                or (self.report and name == "report.json"))

    def work(self) -> None:
        capture = self._open_source()
        opened = time.monotonic()  # a live source's time 0
        self._opened.set()
        self.set_progress(stage="loading_detector", frames_read=0, frames_processed=0, frames_dropped=0,
                          frame_count=self.frame_count)
        # The reader starts at once: a file fills the buffer meanwhile; a stream is read on (its oldest frames
        # dropped) rather than left to pile up in the socket and come as a stale burst once the model is loaded.
        frames = FrameBuffer(self.buffer, drop_oldest=self.live)
        reader = threading.Thread(target=self._read, args=(capture, frames, opened), daemon=True,
                                  name="raylan-video-reader")
        reader.start()
        detections_file = writer = None
        try:
            detect, description = make_detector(self.detector_spec, self.conf, self.iou, self.classes)
            tracker = Tracker(self.track, (self.source_fps or DEFAULT_FPS) / self.stride) if self.track else None
            self.set_progress(stage="running", detector=description)
            report = Report(tracking=tracker is not None) if self.report else None
            counts = {"processed": 0, "failed": 0}
            failed_batches = 0
            started = time.monotonic()
            detections_file = self.open_journal_file("w")
            while not self.stopping.is_set():
                batch = frames.take(self.batch, fill=not self.live, stopping=self.stopping)
                if not batch:
                    break
                results, failed_batches = self._detect(detect, batch, failed_batches)
                for frame, result in zip(batch, results):
                    detections: list[dict] = []
                    if isinstance(result, dict):
                        line = contract.frame_line(frame.index, frame.time, error=result.get("error", result))
                        counts["failed"] += 1
                    else:
                        detections = tracker.assign(result, frame.pixels) if tracker else result
                        line = contract.frame_line(frame.index, frame.time, detections)
                        if report is not None:
                            report.add(frame.time, detections)
                        self._offer_preview(frame, detections)  # before draw(), which draws on the pixels
                    if self.annotate:
                        writer = writer or self._annotated_writer(frame.pixels)
                        writer.write(draw(frame.pixels, detections))
                    self.emit(line, journal=detections_file)
                    counts["processed"] += 1
                elapsed = max(time.monotonic() - started, 1e-6)
                self.set_progress(frames_read=self._frames_read, frames_processed=counts["processed"],
                                  frames_dropped=frames.dropped, fps=round(counts["processed"] / elapsed, 2),
                                  time=round(batch[-1].time, 3), reconnects=self._reconnects)
        finally:
            self._quit.set()
            self._join_reader(reader)
            if detections_file is not None:
                detections_file.close()
            if writer is not None:
                writer.release()
        error = self._reader_error
        if error is not None and not isinstance(error, SessionError):
            raise SessionError("source_unreadable", f"reading {redact(self.source)} failed "
                               f"({type(error).__name__}: {error})", "See the cluster's log.") from error
        if self._frames_read == 0 and error is None and not self.stopping.is_set():
            raise SessionError("source_unreadable", f"{redact(self.source)} opened but gave no frame",
                               "Check that the file is a whole, playable video.")
        self._finish(started, counts, frames.dropped, report)
        if error is not None:
            self.emit({"type": "event", "event": "stream_lost", "attempts": self.reconnect_attempts,
                       "message": error.message})
            raise error

    def _offer_preview(self, frame: Frame, detections: list[dict]) -> None:
        """Keeps this frame as the preview when previews are asked for and the last one is 1/preview_fps old."""
        if self.preview_fps <= 0:
            return
        now = self.preview_clock()
        if self._preview_at is not None and now - self._preview_at < 1.0 / self.preview_fps:
            return
        self._preview_at = now
        height, width = frame.pixels.shape[:2]
        latency = (time.monotonic() - frame.read_at) * 1000 if frame.read_at else None
        data = contract.preview(frame.index, frame.time, width, height, detections,
                                preview_jpeg(frame.pixels, self.preview_side), latency)
        with self._lock:
            self._preview = (frame.index, data)
            self.previews_made += 1
            self._lock.notify_all()

    def _join_reader(self, reader: threading.Thread) -> None:
        """Waits for the reader thread, told to quit, to end: at once unless it is inside a frame read, which
        ends within read_timeout; never more than 8 s (within stop()'s 10: the thread is a daemon and closes
        its capture itself when its read returns)."""
        reader.join(timeout=min(self.read_timeout + 1, 8.0))

    def _detect(self, detect: DetectFn, batch: list[Frame], failed_batches: int) -> tuple[list[Any], int]:
        """The batch's per-frame results, and the count of batches in a row that failed as a whole."""
        try:
            return detect([frame.pixels for frame in batch]), 0
        except SessionError:
            raise
        except Exception as error:  # noqa: BLE001 - marks these frames; MAX_FAILED_BATCHES in a row fail the session
            failed_batches += 1
            message = f"{type(error).__name__}: {error}"
            if failed_batches >= MAX_FAILED_BATCHES:
                raise SessionError("detector_failed", f"detection failed on {failed_batches} batches in a row ({message})",
                                   "See the cluster's log; check the detection application ('raylan serve status').")
            return [contract.error_answer(contract.error("detection_failed", message)) for _ in batch], failed_batches

    def _annotated_writer(self, first: np.ndarray) -> AnnotatedVideo:
        return AnnotatedVideo(self.out_dir / "annotated.mp4", (self.source_fps or DEFAULT_FPS) / self.stride,
                              first.shape[1], first.shape[0])

    def _finish(self, started: float, counts: dict, dropped: int, report: Report | None) -> None:
        seconds = max(time.monotonic() - started, 1e-6)
        summary = {"type": "summary", "frames_read": self._frames_read, "frames_processed": counts["processed"],
                   "frames_dropped": dropped, "frames_failed": counts["failed"], "reconnects": self._reconnects,
                   "seconds": round(seconds, 3), "fps": round(counts["processed"] / seconds, 2),
                   "width": self.width, "height": self.height, "source_fps": self.source_fps}
        self.set_progress(stage="done", frames_read=self._frames_read, frames_processed=counts["processed"],
                          frames_dropped=dropped, fps=summary["fps"])
        self.emit(summary)
        if report is not None:
            content = report.as_dict()
            (self.out_dir / "report.json").write_text(json.dumps(content, indent=1) + "\n")
            self.emit(content)


# ---------------------------------------------------------------------------------------------- arguments
def validate(source: Any, detector: Any, stride: Any, track: Any, conf: Any, iou: Any, classes: Any, batch: Any,
             buffer: Any, reconnect_attempts: Any, reconnect_delay: Any, max_reconnect_delay: Any, chunks: Any,
             sha256: Any, name: Any, read_timeout: Any, lease_s: Any = DEFAULT_LEASE_S, preview_fps: Any = 0.0,
             preview_side: Any = 640) -> None:
    """Raises ValueError (one line: what is wrong, the value, what is expected) for a bad argument."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    def whole(value: Any) -> bool:  # 3 or 3.0: JSON from some clients writes every number as a double
        return number(value) and float(value).is_integer()

    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source must be a file path or a URL, not {source!r}")
    if not isinstance(detector, dict) or ("app" in detector) == ("model" in detector):
        raise ValueError(f"detector must be {{'app': name}} or {{'model': path, 'backend': ..., 'imgsz': ...}}, "
                         f"not {detector!r}")
    if "app" in detector and (not isinstance(detector["app"], str) or not detector["app"]):
        raise ValueError(f"detector app must be a Serve application name, not {detector['app']!r}")
    if "model" in detector:
        if not isinstance(detector["model"], str) or not detector["model"]:
            raise ValueError(f"detector model must be a path to a .pt or .onnx file, not {detector['model']!r}")
        if detector.get("backend", "auto") not in BACKENDS:
            raise ValueError(f"detector backend must be one of {', '.join(BACKENDS)}, not {detector.get('backend')!r}")
        imgsz = detector.get("imgsz")
        if imgsz is not None and (not whole(imgsz) or not 32 <= imgsz <= 4096):
            raise ValueError(f"detector imgsz must be a whole number from 32 to 4096, not {imgsz!r}")
    if not whole(stride) or stride < 1:
        raise ValueError(f"stride must be a whole number of at least 1, not {stride!r}")
    if track is not None and track not in TRACKERS:
        raise ValueError(f"track must be one of {', '.join(TRACKERS)} (or none), not {track!r}")
    for label, value in (("conf", conf), ("iou", iou)):
        if not number(value) or not 0 <= value <= 1:
            raise ValueError(f"{label} must be a number from 0 to 1, not {value!r}")
    if classes is not None and (not isinstance(classes, (list, tuple))
                                or not all(whole(c) and 0 <= c < contract.CLASS_ID_LIMIT for c in classes)):
        raise ValueError(f"classes must be a list of class ids (whole numbers from 0), not {classes!r}")
    if not whole(batch) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be a whole number from 1 to {MAX_BATCH}, not {batch!r}")
    if not whole(buffer) or buffer < 1:
        raise ValueError(f"buffer must be a whole number of at least 1, not {buffer!r}")
    if not whole(reconnect_attempts) or reconnect_attempts < 0:
        raise ValueError(f"reconnect_attempts must be a whole number of at least 0, not {reconnect_attempts!r}")
    for label, value in (("reconnect_delay", reconnect_delay), ("max_reconnect_delay", max_reconnect_delay)):
        if not number(value) or value < 0:
            raise ValueError(f"{label} must be a number of seconds of at least 0, not {value!r}")
    if max_reconnect_delay < reconnect_delay:
        raise ValueError(f"max_reconnect_delay ({max_reconnect_delay!r}) must be at least reconnect_delay "
                         f"({reconnect_delay!r})")
    if not number(read_timeout) or read_timeout <= 0:
        raise ValueError(f"read_timeout must be a positive number of seconds, not {read_timeout!r}")
    if chunks is not None and (not isinstance(chunks, list)
                               or not all(isinstance(c, (bytes, bytearray, memoryview)) for c in chunks)):
        raise ValueError("chunks must be a list of bytes (the uploaded file's pieces, in order)")
    if sha256 is not None and (not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256)):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, not {sha256!r}")
    if sha256 is not None and chunks is None:
        raise ValueError("sha256 checks an upload: give chunks with it")
    if name is not None and (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
                             or name in OUTPUT_NAMES):
        raise ValueError(f"name must be a plain file name (not one of {', '.join(OUTPUT_NAMES)}), not {name!r}")
    check_lease(lease_s)
    low, high = PREVIEW_FPS_RANGE
    if not number(preview_fps) or not low <= preview_fps <= high:
        raise ValueError(f"preview_fps must be a number from {low:g} to {high:g} (0: no previews), not {preview_fps!r}")
    low, high = PREVIEW_SIDE_RANGE
    if not whole(preview_side) or not low <= preview_side <= high:
        raise ValueError(f"preview_side must be a whole number of pixels from {low} to {high}, not {preview_side!r}")


def assemble(chunks: list, path: Path, sha256: str | None) -> SessionError | None:
    """Writes the uploaded pieces in order to path and checks the whole against sha256: None when it matches,
    else the failure (the file is removed) for work() to raise."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "wb") as file:
            for chunk in chunks:
                digest.update(chunk)
                file.write(chunk)
                size += len(chunk)
    except OSError as error:
        path.unlink(missing_ok=True)
        return SessionError("upload_failed", f"cannot write the upload to {path} ({error})",
                            "Check the free space of the cluster node's temporary folder, or give out_dir.")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        path.unlink(missing_ok=True)
        return SessionError("upload_corrupt", f"the uploaded file ({size} bytes in {len(chunks)} pieces) has SHA-256 "
                            f"{digest.hexdigest()}, not {sha256.lower()}", "Upload it again.")
    return None
