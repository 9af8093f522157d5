"""Long work on the cluster that a client follows by polling: the base of the video and dataset sessions.

A session is a plain class that RayLAN's gateway hosts as an actor (`raylan_detect.video:VideoSession`,
`raylan_detect.dataset:DatasetSession`). The client creates it, calls start(), then poll(cursor) until the state
is terminal, and stop() on Ctrl-C. Every call returns JSON (or bytes for read()), never a pickle.

    start() -> dict                     starts the work in a background thread; returns what it knows already
    poll(cursor, limit) -> dict         {"items": [...], "cursor": next, "state", "error", "progress"}:
                                        the result lines numbered cursor.. (at most `limit`); lines before
                                        `cursor` are acknowledged and forgotten, so memory stays bounded by
                                        what the client has not fetched yet
    stop() -> dict                      asks the work to stop, waits for it (at most 10 s), closes the outputs
    outputs() -> list                   [{"name", "bytes"}] the files written on the cluster (under its
                                        out_dir, names relative to it)
    read(name, offset, size) -> bytes   a piece (at most 8 MiB) of one of those files, for the client to download

States: running, finished, failed (error names why), stopped. A subclass implements work(), calling emit()
for each result line and set_progress() as it goes, and checking self.stopping between pieces of work.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

#: The most bytes read() returns at once.
MAX_READ_BYTES = 8 * 1024 * 1024
#: Result lines held for the client before the work waits for it to poll (bounded memory per session).
MAX_PENDING = 20_000


class SessionError(Exception):
    """A named failure of the work: code, a one-line message and what to do."""

    def __init__(self, code: str, message: str, remedy: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.remedy = remedy

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "remedy": self.remedy}


def session_folder(out_dir: str | None, kind: str) -> Path:
    """The session's output folder: out_dir as given (created), else a new one under the system's temp folder."""
    if out_dir:
        folder = Path(out_dir).expanduser()
    else:
        folder = Path(tempfile.gettempdir()) / "raylan" / kind / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Session:
    """Runs work() in a thread and hands its result lines to the polling client in order."""

    def __init__(self, out_dir: str | None, kind: str):
        self.out_dir = session_folder(out_dir, kind)
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._items: list[dict] = []
        self._first = 0  # the number of self._items[0]
        self._state = "created"
        self._error: dict | None = None
        self._progress: dict = {}
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ the client's calls
    def start(self) -> dict:
        with self._lock:
            if self._thread is None:
                self._state = "running"
                self._thread = threading.Thread(target=self._run, name=f"raylan-{type(self).__name__}", daemon=True)
                self._thread.start()
        return self.describe()

    def poll(self, cursor: int = 0, limit: int = 1000, wait: float = 0.0) -> dict:
        """The lines numbered cursor.. (at most limit); waits up to `wait` seconds for the first one."""
        deadline = time.monotonic() + max(0.0, min(float(wait), 20.0))
        with self._lock:
            cursor = min(max(int(cursor), self._first), self._first + len(self._items))
            del self._items[:cursor - self._first]
            self._first = cursor
            self._lock.notify_all()
            while not self._items and self._state == "running" and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            items = self._items[:max(1, int(limit))]
            return {"items": items, "cursor": cursor + len(items), "state": self._state, "error": self._error,
                    "progress": dict(self._progress)}

    def stop(self) -> dict:
        self.stopping.set()
        with self._lock:
            self._lock.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            if self._state in ("running", "created"):
                self._state = "stopped"
        return {"state": self._state}

    def outputs(self) -> list[dict]:
        """This run's output files under out_dir (sub-folders included; see produced()), by their paths relative
        to it; partial files (.part) and hidden ones left out."""
        found = []
        for path in sorted(self.out_dir.rglob("*")):
            name = path.relative_to(self.out_dir).as_posix()
            if self.is_output(name):
                found.append({"name": name, "bytes": path.stat().st_size})
        return found

    def is_output(self, name: str) -> bool:
        """Whether `name` (relative to out_dir) is a whole file of this run's outputs."""
        path = self.out_dir / name
        return (not path.is_symlink() and path.is_file() and path.resolve().is_relative_to(self.out_dir.resolve())
                and not path.name.startswith(".") and path.suffix != ".part" and self.produced(name))

    def produced(self, name: str) -> bool:
        """Whether the file `name` (relative to out_dir) is one this kind of run writes, as its settings ask: what
        outputs() lists and read() serves, so that what an earlier run left in a reused out_dir is not handed
        back as this run's (nor an uploaded input). Every file, unless a subclass says otherwise."""
        return True

    def read(self, name: str, offset: int = 0, size: int = MAX_READ_BYTES) -> bytes:
        if not isinstance(name, str) or not self.is_output(name):
            raise ValueError(f"{name!r} is not one of this session's outputs")
        with open(self.out_dir / name, "rb") as file:
            file.seek(max(0, int(offset)))
            return file.read(max(0, min(int(size), MAX_READ_BYTES)))

    def describe(self) -> dict:
        """What start() returns: the state (and the error, once failed), the folder and node; subclasses add what
        they know (a video's size and rate)."""
        with self._lock:
            info = {"state": self._state, "out_dir": str(self.out_dir), "node": os.uname().nodename}
            if self._error is not None:
                info["error"] = self._error
        return info

    # ------------------------------------------------------------------------------------ for the work
    def work(self) -> None:
        raise NotImplementedError

    def emit(self, item: dict) -> None:
        """Hands one result line to the client; waits while MAX_PENDING lines are unfetched (unless stopping)."""
        with self._lock:
            while len(self._items) >= MAX_PENDING and not self.stopping.is_set():
                self._lock.wait(0.5)
            self._items.append(item)
            self._lock.notify_all()

    def set_progress(self, **values: Any) -> None:
        with self._lock:
            self._progress.update(values)

    def _run(self) -> None:
        try:
            self.work()
            state, error = ("stopped" if self.stopping.is_set() else "finished"), None
        except SessionError as failure:
            state, error = "failed", failure.as_dict()
        except Exception as failure:  # noqa: BLE001 - reported to the client as the session's error
            state = "failed"
            error = {"code": "session_failed", "message": f"{type(failure).__name__}: {failure}",
                     "remedy": "See the traceback in the cluster's log.", "traceback": traceback.format_exc()[-4000:]}
        with self._lock:
            self._state, self._error = state, error
            self._lock.notify_all()


def write_line(file, item: dict) -> None:
    """One JSON line to an output file, flushed so that a stopped session leaves whole lines only."""
    file.write(json.dumps(item, separators=(",", ":")) + "\n")
    file.flush()
