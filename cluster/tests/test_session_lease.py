"""A session's lease and its folder (raylan_detect/session.py), without Ray: a fake clock stands in for time and a
small counting work for a video's or a dataset's. The lease's end on a real Ray (the session's actor DEAD, a
dataset's detectors released) is tested in test_dataset.py, a video's in test_video.py."""
import json
import os
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from raylan_detect.session import MAX_LEASE_S, MIN_LEASE_S, Session, check_lease, session_folder

LEASE = 5.0


class FakeClock:
    """Session.clock for a test: time moves only when the test says so. At the end every session the test made
    is let expire, so that no watchdog thread outlives it."""

    def __init__(self):
        self.now = 1000.0
        self.sessions: list[Session] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(Session, "clock", staticmethod(fake))
    monkeypatch.setattr(Session, "lease_check_s", 0.01)
    yield fake
    for session in fake.sessions:
        session.stop()
    fake.advance(10 * MAX_LEASE_S)
    for session in fake.sessions:
        assert session.expired.wait(10), "a session's watchdog did not end"


class Counting(Session):
    """Writes {"n": 1}, {"n": 2}, ... to its journal and to the client until it is told to stop (or, with `lines`,
    after that many)."""

    journal_name = "journal.jsonl"

    def __init__(self, out_dir: Path | None, clock: FakeClock, lines: int | None = None):
        super().__init__(str(out_dir) if out_dir is not None else None, "test", LEASE)
        clock.sessions.append(self)
        self.lines = lines
        self.count = 0
        self.saw_stopping = threading.Event()
        self.process_ends = 0

    def work(self) -> None:
        with self.open_journal_file("w") as journal:
            while self.count != self.lines and not self.stopping.wait(0.005):
                self.count += 1
                self.emit({"n": self.count}, journal=journal)
        self.saw_stopping.set()

    def end_process(self) -> None:
        self.process_ends += 1


class Quiet(Counting):
    """Emits nothing: a poll waits its whole `wait`."""

    def work(self) -> None:
        self.stopping.wait()
        self.saw_stopping.set()


def journal(session: Session) -> list[dict]:
    return [json.loads(line) for line in (session.out_dir / "journal.jsonl").read_text().splitlines()]


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


# ------------------------------------------------------------------------------------------ the lines
def test_a_polled_line_is_the_journals_text_made_once(clock, tmp_path):
    """emit(item, journal) serialises a line once: the page carries the very text the journal holds."""
    session = Counting(tmp_path, clock, lines=3)
    session.start()
    wait_for(lambda: session.poll(0)["state"] == "finished", "the work did not finish")
    page = session.poll(0)
    assert page["lines"] == (tmp_path / "journal.jsonl").read_text().splitlines() == ['{"n":1}', '{"n":2}', '{"n":3}']
    assert page["cursor"] == 3


# ------------------------------------------------------------------------------------------ the lease
def test_a_session_not_polled_past_its_lease_is_abandoned(clock, tmp_path):
    session = Counting(tmp_path, clock)
    session.start()
    wait_for(lambda: session.count >= 3, "the work did not start")
    clock.advance(LEASE - 0.1)
    time.sleep(0.05)  # the watchdog looks every 0.01 s
    assert not session.expired.is_set() and not session.stopping.is_set()
    clock.advance(0.1)
    before = time.time()
    assert session.expired.wait(10)
    assert session.saw_stopping.is_set() and not session._thread.is_alive()
    assert session.process_ends == 1
    answer = session.poll(0, limit=100_000)
    assert answer["state"] == "abandoned"
    assert answer["error"]["code"] == "client_gone" and answer["error"]["remedy"]
    assert "no call for 5 s" in answer["error"]["message"] and "lease_s" in answer["error"]["message"]
    *lines, last = journal(session)
    assert lines == [{"n": n} for n in range(1, session.count + 1)] == [json.loads(text) for text in answer["lines"]]  # whole lines, then its own
    assert set(last) == {"type", "lease_s", "idle_s", "at"}
    assert (last["type"], last["lease_s"], last["idle_s"]) == ("abandoned", LEASE, LEASE)
    assert before - 1 <= last["at"] <= time.time() + 1
    assert session.stop() == {"state": "abandoned"}  # a late stop changes nothing


def test_a_polled_session_keeps_running(clock, tmp_path):
    session = Counting(tmp_path, clock)
    session.start()
    cursor = 0
    for _ in range(20):  # 80 s of fake time with a lease of 5, a poll every 4
        clock.advance(4.0)
        cursor = session.poll(cursor)["cursor"]
        time.sleep(0.02)
    assert session.poll(cursor)["state"] == "running" and not session.expired.is_set()
    assert not session.stopping.is_set() and session.process_ends == 0
    for call in (lambda: session.read("journal.jsonl", 0, 10), session.outputs, session.describe):
        clock.advance(4.0)
        call()  # any client call renews the lease
        time.sleep(0.02)
    assert not session.expired.is_set()
    clock.advance(LEASE)  # the same watchdog ends it once nobody calls
    assert session.expired.wait(10) and session.poll(cursor)["state"] == "abandoned"


def test_a_call_in_progress_holds_the_lease(clock, tmp_path):
    """A poll that waits for lines is the client's sign of life while it waits; the lease runs from its end."""
    session = Quiet(tmp_path, clock)
    session.start()
    waiting = threading.Thread(target=session.poll, kwargs={"wait": 0.5})
    waiting.start()
    try:
        time.sleep(0.05)
        clock.advance(2 * LEASE)
        time.sleep(0.05)
        assert not session.expired.is_set()
    finally:
        waiting.join()
    clock.advance(LEASE - 0.1)
    time.sleep(0.05)
    assert not session.expired.is_set()
    clock.advance(0.1)
    assert session.expired.wait(10) and session.poll()["state"] == "abandoned"


def test_a_session_that_was_never_started_is_abandoned(clock, tmp_path):
    session = Counting(tmp_path, clock)
    clock.advance(LEASE)
    assert session.expired.wait(10) and session.process_ends == 1
    assert session.poll()["state"] == "abandoned"
    assert session.start()["state"] == "abandoned" and session._thread is None  # too late to start
    assert [line["type"] for line in journal(session)] == ["abandoned"]  # a journal of that line only


def test_an_earlier_runs_journal_is_left_alone(clock, tmp_path):
    (tmp_path / "journal.jsonl").write_text('{"n": 1}\n')
    session = Counting(tmp_path, clock)  # abandoned before its work opened the journal
    clock.advance(LEASE)
    assert session.expired.wait(10) and session.poll()["state"] == "abandoned"
    assert (tmp_path / "journal.jsonl").read_text() == '{"n": 1}\n'


def test_a_session_whose_work_ended_keeps_its_result_and_ends_its_process(clock, tmp_path):
    session = Counting(tmp_path, clock, lines=3)
    session.start()
    wait_for(lambda: session.poll()["state"] == "finished", "the work did not finish")
    clock.advance(LEASE)
    assert session.expired.wait(10) and session.process_ends == 1
    answer = session.poll(0)
    assert answer["state"] == "finished" and answer["error"] is None
    assert journal(session) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_outside_an_actor_ending_the_process_does_nothing(clock, tmp_path):
    session = Counting(tmp_path, clock)
    Session.end_process(session)  # no Ray actor here: returns


@pytest.mark.parametrize("lease_s", [MIN_LEASE_S - 0.1, MAX_LEASE_S + 1, 0, -5, "120", True, None, float("nan"),
                                     float("inf")])
def test_a_lease_out_of_bounds_is_refused(lease_s, tmp_path):
    with pytest.raises(ValueError, match=r"^lease_s must be a number of seconds from 5 to 86400"):
        check_lease(lease_s)
    with pytest.raises(ValueError, match="lease_s"):
        Session(str(tmp_path / "out"), "test", lease_s)
    assert not (tmp_path / "out").exists()  # refused before its folder is made


@pytest.mark.parametrize("lease_s", [MIN_LEASE_S, 120, 120.0, 600.5, MAX_LEASE_S])
def test_a_lease_in_bounds_is_taken(lease_s):
    assert check_lease(lease_s) == float(lease_s)


# ------------------------------------------------------------------------------------------ the folder
@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """The system's temp folder, as tempfile sees it, moved into this test's own folder: what a test plants there
    (a link named raylan, as another user could plant at /tmp/raylan) is this test's alone and goes with it."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_a_default_folder_is_new_private_and_not_foreseeable(temp_root):
    first, second = session_folder(None, "video"), session_folder(None, "video")
    assert first != second
    for folder in (first, second):
        assert folder.parent == temp_root and folder.name.startswith("raylan-video-")
        assert folder.is_dir() and not folder.is_symlink()
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700


def test_a_planted_raylan_link_in_the_temp_folder_is_not_followed(temp_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (temp_root / "raylan").symlink_to(elsewhere)
    folder = session_folder(None, "dataset")
    assert folder.parent == temp_root and folder.resolve() == folder
    assert list(elsewhere.iterdir()) == []


def test_a_given_folder_is_made_and_a_link_is_refused(tmp_path):
    made = session_folder(str(tmp_path / "a" / "b"), "video")
    assert made == tmp_path / "a" / "b" and made.is_dir()
    # The folder and the ones made on the way are the user's only (as ~/.raylan/on-cluster/<hash> is made).
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (made, made.parent)] == ["0o700", "0o700"]
    assert session_folder(str(made), "video") == made  # an existing folder is reused
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("link", "dangling"):
        with pytest.raises(ValueError, match=f"^out_dir {tmp_path / name} is a symbolic link"):
            session_folder(str(tmp_path / name), "video")
    assert list(target.iterdir()) == [] and not (tmp_path / "nowhere").exists()
    # A file of that name is refused with the same kind of message (not mkdir's "File exists"), and kept.
    (tmp_path / "file").write_bytes(b"kept")
    with pytest.raises(ValueError, match=f"^out_dir {tmp_path / 'file'} is not a folder"):
        session_folder(str(tmp_path / "file"), "video")
    assert (tmp_path / "file").read_bytes() == b"kept"


def test_discard_removes_a_folder_the_session_made_once_its_work_ended(clock, temp_root, tmp_path):
    own, given = Counting(None, clock, lines=2), Counting(tmp_path / "given", clock, lines=2)
    assert own.out_dir.parent == temp_root
    for session in (own, given):
        assert session.discard(wait=0) == {"removed": False}  # not started: its work has not ended
        session.start()
        wait_for(lambda: session.poll()["state"] == "finished", "the work did not finish")
    assert own.discard() == {"removed": True} and not own.out_dir.exists()
    assert given.discard() == {"removed": False} and journal(given) == [{"n": 1}, {"n": 2}]


def test_discard_keeps_a_folder_whose_work_still_runs(clock, temp_root):
    session = Counting(None, clock)
    session.start()
    wait_for(lambda: session.count >= 1, "the work did not start")
    assert session.discard(wait=0.05) == {"removed": False} and session.out_dir.exists()
    session.stop()
    assert session.discard() == {"removed": True} and not session.out_dir.exists()
