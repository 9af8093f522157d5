"""Long work on the cluster that a client follows by polling: the base of the video and dataset sessions.

A session is a plain class that RayLAN's gateway hosts as an actor (`raylan_detect.video:VideoSession`,
`raylan_detect.dataset:DatasetSession`). The client creates it, calls start(), then poll(cursor) until the state
is terminal, and stop() on Ctrl-C. Every call returns JSON (or bytes for read()), never a pickle.

    start() -> dict                     starts the work in a background thread; returns what it knows already
    poll(cursor, limit) -> dict         {"lines": [...], "cursor": next, "state", "error", "progress"}:
                                        the result lines numbered cursor.. (at most `limit`), each the JSON
                                        text the session made once (the very bytes of its journal line, where
                                        it writes one), for the client to keep as it is; lines before
                                        `cursor` are acknowledged and forgotten, so memory stays bounded by
                                        what the client has not fetched yet
    stop() -> dict                      asks the work to stop, waits for it (at most 10 s), closes the outputs
    outputs() -> list                   [{"name", "bytes"}] the files written on the cluster (under its
                                        out_dir, names relative to it)
    read(name, offset, size) -> bytes   a piece (at most 8 MiB) of one of those files, for the client to download

States: created, running, then one of the terminal finished, failed (error names why), stopped, abandoned. A
subclass implements work(), calling emit() for each result line and set_progress() as it goes, and checking
self.stopping between pieces of work.

The lease: a session holds one of `lease_s` seconds (a spec field; default 120, from 5 to 86400). Each client call
(start, poll, stop, outputs, read, describe) renews it, and a call in progress (a poll that waits) holds it. A watchdog
thread ends a session whose client has made no call for lease_s seconds, so that a client that crashed or lost
the network leaves nothing running on the cluster:

  1. the work stops as stop() stops it (self.stopping; a video's reader thread ends, a dataset's Ray Data
     execution and its actor pool are ended), waiting for it at most 10 s;
  2. the line {"type": "abandoned", "lease_s": 120.0, "idle_s": 121.0, "at": 1717171717.123} (idle_s: the
     seconds since the last call; at: Unix time) is appended to the journal, the file the work writes its
     result lines to (detections.jsonl); where the work had not opened it yet, a new journal holds that line
     only (an earlier run's journal in a reused out_dir is left as it is);
  3. the state becomes "abandoned" with the error {"code": "client_gone", "message", "remedy"};
  4. the session's actor ends itself (ray.kill on its own handle, no restart): its process, CPUs and GPUs, and
     the actors it owns (a dataset's detectors) go back to the cluster; the gateway's later calls on it fail
     with actor_died.

A session whose work had already ended (finished, failed, stopped) keeps its state and journal: only step 4.
Outside a Ray actor (tests) step 4 does nothing.

The output folder: out_dir as the client gives it (created if missing; refused if it is a symbolic link), else
a new private folder made for this session alone (tempfile.mkdtemp: <temp>/raylan-<kind>-XXXXXXXX, mode 0700).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from raylan_common import contract

#: The most bytes read() returns at once.
MAX_READ_BYTES = 8 * 1024 * 1024
#: Result lines held for the client before the work waits for it to poll (bounded memory per session).
MAX_PENDING = 20_000
#: The lease (lease_s) a session gets when the client names none, and the bounds it may name, in seconds.
DEFAULT_LEASE_S = 120
MIN_LEASE_S, MAX_LEASE_S = 5, 86_400
#: The states in which the work has ended.
TERMINAL = contract.SESSION_STATES[2:]

log = logging.getLogger(__name__)


class SessionError(Exception):
    """A named failure of the work: code, a one-line message and what to do."""

    def __init__(self, code: str, message: str, remedy: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.remedy = remedy

    def as_dict(self) -> dict:
        return contract.session_failure(self.code, self.message, self.remedy)


def check_lease(lease_s: Any) -> float:
    """lease_s as seconds; ValueError (the value, the range) for anything but a number from 5 to 86400."""
    if (isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) or not math.isfinite(lease_s)
            or not MIN_LEASE_S <= lease_s <= MAX_LEASE_S):
        raise ValueError(f"lease_s must be a number of seconds from {MIN_LEASE_S} to {MAX_LEASE_S} (how long the "
                         f"session waits for a call of its client before it stops itself), not {lease_s!r}")
    return float(lease_s)


def session_folder(out_dir: str | None, kind: str) -> Path:
    """The session's output folder. Without out_dir, a new one of this session's own, made at once with mode 0700
    under the system's temp folder (tempfile.mkdtemp: <temp>/raylan-<kind>-XXXXXXXX), so that no other user can
    foresee, plant or read it. With out_dir (`~` is the cluster user's home), that folder (created if missing, mode
    0700, with any missing folders above it, 0700 too); ValueError if
    its last component is a symbolic link, which is not followed (another user could have planted it where the
    folder was to be made). Folders above it that exist already are taken as they are."""
    if not out_dir:
        return Path(tempfile.mkdtemp(prefix=f"raylan-{kind}-"))
    folder = Path(out_dir).expanduser()
    if not folder.is_symlink():
        try:
            # Folders made on the way are private too (mkdir's parents=True would make them with the default
            # mode): ~/.raylan/on-cluster/<hash> leaves neither ~/.raylan nor on-cluster readable by others.
            for above in reversed([p for p in folder.parents if not p.exists()]):
                above.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        except FileExistsError:  # a file (or other non-folder) of that name: refused just below, by name
            pass
    # Checked after mkdir, on the path itself (lstat): a link planted meanwhile is refused too.
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        what = "a symbolic link" if folder.is_symlink() else "not a folder"
        raise ValueError(f"out_dir {folder} is {what}: give a folder (its real path), or no out_dir for a new private "
                         f"one")
    return folder


class Session:
    """Runs work() in a thread and hands its result lines to the polling client in order; ends itself when its
    client is gone (the lease: see the module's doc)."""

    #: The journal's name in out_dir (the file the work writes its result lines to): where the abandoned line goes.
    journal_name: str | None = None
    #: The clock the lease is measured with (seconds; a test gives a fake one).
    clock: Callable[[], float] = staticmethod(time.monotonic)
    #: How often the watchdog looks at the lease, in seconds.
    lease_check_s: float = 1.0

    def __init__(self, out_dir: str | None, kind: str, lease_s: float = DEFAULT_LEASE_S):
        self.lease_s = check_lease(lease_s)
        self.out_dir = session_folder(out_dir, kind)
        #: Whether out_dir is this session's own (none was given): discard() removes it.
        self.owns_folder = not out_dir
        self.stopping = threading.Event()
        #: Set once the watchdog has ended a session whose lease expired (its work stopped, its state final).
        self.expired = threading.Event()
        self._lock = threading.Condition()
        self._items: list[dict] = []
        self._first = 0  # the number of self._items[0]
        self._state = "created"
        self._error: dict | None = None
        self._progress: dict = {}
        self._thread: threading.Thread | None = None
        self._journal_opened = False
        self._last_call = self.clock()
        self._calls = 0  # client calls in progress
        self._expiring = False
        # The lease runs from here: a client that created the session and went away before start() is covered.
        self._watchdog = threading.Thread(target=self._watch, name=f"raylan-{type(self).__name__}-lease", daemon=True)
        self._watchdog.start()

    # ------------------------------------------------------------------------------------ the client's calls
    def start(self) -> dict:
        with self._client_call():
            with self._lock:
                if self._thread is None and self._state == "created" and not self._expiring:
                    self._state = "running"
                    self._thread = threading.Thread(target=self._run, name=f"raylan-{type(self).__name__}",
                                                    daemon=True)
                    self._thread.start()
            return self.describe()

    def poll(self, cursor: int = 0, limit: int = 1000, wait: float = 0.0) -> dict:
        """The lines numbered cursor.. (at most limit); waits up to `wait` seconds for the first one."""
        with self._client_call():
            deadline = time.monotonic() + max(0.0, min(float(wait), 20.0))
            with self._lock:
                cursor = min(max(int(cursor), self._first), self._first + len(self._items))
                del self._items[:cursor - self._first]
                self._first = cursor
                self._lock.notify_all()
                while not self._items and self._state == "running" and time.monotonic() < deadline:
                    self._lock.wait(deadline - time.monotonic())
                items = self._items[:max(1, int(limit))]
                return contract.poll_page(items, cursor + len(items), self._state, self._progress, self._error)

    def stop(self) -> dict:
        with self._client_call():
            self._stop_work()
            with self._lock:
                if self._state in ("running", "created"):
                    self._state = "stopped"
                return {"state": self._state}

    def discard(self, wait: float = 15.0) -> dict:
        """Removes out_dir, with everything in it (an uploaded video, the outputs), when the session made it (no
        out_dir given) and its work has ended: the client calls it once it has downloaded what it wants, so that
        no run leaves its files in the cluster's temp folder. A folder the client named is kept, and so is one
        whose work still runs (after a stop, the work is given `wait` seconds to end)."""
        with self._client_call():
            with self._lock:
                ended = self._state in TERMINAL
            thread = self._thread
            if thread is not None:
                thread.join(timeout=max(0.0, min(float(wait), 60.0)))
            if not self.owns_folder or not ended or (thread is not None and thread.is_alive()):
                return {"removed": False}
            shutil.rmtree(self.out_dir, ignore_errors=True)
            return {"removed": not self.out_dir.exists()}

    def outputs(self) -> list[dict]:
        """This run's output files under out_dir (sub-folders included; see produced()), by their paths relative
        to it; partial files (.part) and hidden ones left out."""
        with self._client_call():
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
        with self._client_call():
            if not isinstance(name, str) or not self.is_output(name):
                raise ValueError(f"{name!r} is not one of this session's outputs")
            with open(self.out_dir / name, "rb") as file:
                file.seek(max(0, int(offset)))
                return file.read(max(0, min(int(size), MAX_READ_BYTES)))

    def describe(self) -> dict:
        """What start() returns: the state (and the error, once failed), the folder and node; subclasses add what
        they know (a video's size and rate)."""
        with self._client_call(), self._lock:
            info = {"state": self._state, "out_dir": str(self.out_dir), "node": os.uname().nodename,
                    "lease_s": self.lease_s}
            if self._error is not None:
                info["error"] = self._error
            return info

    # ------------------------------------------------------------------------------------ for the work
    def work(self) -> None:
        raise NotImplementedError

    def emit(self, item: dict, journal: IO[str] | None = None) -> None:
        """Hands one result line to the client, and writes the same text to `journal` when given: the line is
        serialised once. Waits while MAX_PENDING lines are unfetched (unless stopping)."""
        text = line_text(item)
        if journal is not None:
            write_text_line(journal, text)
        with self._lock:
            while len(self._items) >= MAX_PENDING and not self.stopping.is_set():
                self._lock.wait(0.5)
            self._items.append(text)
            self._lock.notify_all()

    def set_progress(self, **values: Any) -> None:
        with self._lock:
            self._progress.update(values)

    def open_journal_file(self, mode: str) -> IO[str]:
        """Opens out_dir/journal_name for the work to write its result lines to (mode "w" or "a"), and notes
        that this run has a journal (where an abandoned session's line goes)."""
        file = open(self.out_dir / self.journal_name, mode, encoding="utf-8")
        self._journal_opened = True
        return file

    def _run(self) -> None:
        try:
            self.work()
            state, error = ("stopped" if self.stopping.is_set() else "finished"), None
        except SessionError as failure:
            state, error = "failed", failure.as_dict()
        except Exception as failure:  # noqa: BLE001 - reported to the client as the session's error
            state = "failed"
            error = contract.session_failure(
                "session_failed", f"{type(failure).__name__}: {failure}", "See the traceback in the cluster's log.",
                traceback.format_exc()[-4000:])
        with self._lock:
            if self._state != "abandoned":  # the watchdog gave up waiting for the work: its state stands
                self._state, self._error = state, error
            self._lock.notify_all()

    def _stop_work(self) -> None:
        """Asks the work to stop and waits for it to end, at most 10 s."""
        self.stopping.set()
        with self._lock:
            self._lock.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    # ------------------------------------------------------------------------------------ the lease
    @contextlib.contextmanager
    def _client_call(self) -> Iterator[None]:
        """Around each client call: renews the lease when it comes and when it ends, and holds it meanwhile."""
        with self._lock:
            self._calls += 1
            self._last_call = self.clock()
        try:
            yield
        finally:
            with self._lock:
                self._calls -= 1
                self._last_call = self.clock()

    def _watch(self) -> None:
        """The watchdog thread: ends the session once its lease has expired."""
        while not self.expire_if_idle():
            time.sleep(self.lease_check_s)

    def expire_if_idle(self) -> bool:
        """Whether the lease has expired, in which case the session is ended (steps 1-4 of the module's doc)."""
        with self._lock:
            idle = self.clock() - self._last_call
            if self._expiring or self._calls or idle < self.lease_s:
                return self._expiring
            self._expiring = True
            ended = self._state in TERMINAL
        log.warning("no client call for %.0f s (lease_s %g): %s", idle, self.lease_s,
                    "ending the session's actor" if ended else "stopping the session and ending its actor")
        try:
            if not ended:
                self._abandon(idle)
        finally:  # whatever went wrong above, the actor ends
            self.expired.set()
            self.end_process()
        return True

    def _abandon(self, idle: float) -> None:
        """Steps 1-3: stops the work, writes the abandoned line, sets the state."""
        self._stop_work()
        line = {"type": "abandoned", "lease_s": self.lease_s, "idle_s": round(idle, 1), "at": round(time.time(), 3)}
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._journal_abandoned(line)
        else:  # the work did not stop in time: a line written now could be overwritten or followed by its own
            log.warning("the work did not stop within its wait: the abandoned line is not written to the journal")
        error = contract.session_failure(
            "client_gone",
            f"the session's client made no call for {idle:.0f} s (its lease, lease_s, is {self.lease_s:g} s), so "
            f"the session stopped its work and ended",
            "Keep polling the session at least every lease_s seconds (raylan polls about twice a second), or create "
            "it with a longer lease_s; a dataset run continues where it stopped with --resume.")
        with self._lock:
            self._state, self._error = "abandoned", error
            self._lock.notify_all()

    def _journal_abandoned(self, line: dict) -> None:
        """Appends the abandoned line to this run's journal (a new one where the work had not opened it; an earlier
        run's journal in a reused out_dir is left alone)."""
        if self.journal_name is None:
            return
        path = self.out_dir / self.journal_name
        try:
            with open(path, "a" if self._journal_opened else "x", encoding="utf-8") as file:
                write_line(file, line)
        except FileExistsError:
            pass
        except OSError as error:
            log.warning("cannot write the abandoned line to %s: %s", path, error)

    def end_process(self) -> None:
        """Ends the actor that hosts this session (ray.kill on its own handle, without restart), so that its
        process, its CPUs and GPUs and the actors it owns go back to the cluster. Nothing outside an actor."""
        try:
            import ray
        except ImportError:
            return
        if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
            return
        try:
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
        except Exception as error:  # noqa: BLE001 - last resort: the process goes, and Ray sees its actor die
            log.error("cannot end the session's actor with ray.kill (%s: %s): exiting its process",
                      type(error).__name__, error)
            logging.shutdown()
            os._exit(1)


def line_text(item: dict) -> str:
    """A result line's JSON text, as the journal and the client get it."""
    return json.dumps(item, separators=(",", ":"))


def write_text_line(file, text: str) -> None:
    """One line of JSON text to an output file, flushed so that a stopped session leaves whole lines only."""
    file.write(text + "\n")
    file.flush()


def write_line(file, item: dict) -> None:
    """One JSON line to an output file (write_text_line)."""
    write_text_line(file, line_text(item))
