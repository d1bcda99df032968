"""The feedback spool: durable, ordered, and safe when threads and processes add and replay at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from metallm import SQLiteStore
from metallm.serving._spool import Spool, SpoolFullError
from metallm.state._base import FeedbackEvent


def _event(i: int) -> FeedbackEvent:
    return FeedbackEvent(f"d{i}", "a", np.ones(3) * i, 1.0, 0.001, float(i))


def test_events_added_while_another_thread_replays_are_never_lost(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    spool = Spool(tmp_path / "spool", "s")
    done = threading.Event()

    def add() -> None:
        for i in range(400):
            spool.add(_event(i))
        done.set()

    def replay() -> None:
        while not done.is_set():
            spool.replay(store)

    threads = [threading.Thread(target=add), threading.Thread(target=replay)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.replay(store)
    logged = sorted(int(e.decision_id[1:]) for _, e in store.events_after(None))
    assert logged == list(range(400))  # every acknowledged event, once
    assert len(spool) == 0 and spool.status()["files"] == 0


def test_a_replay_that_fails_midway_keeps_the_rest_in_order(tmp_path):
    class Flaky:
        def __init__(self):
            self.seen = []

        def append(self, event):
            if len(self.seen) == 2:
                from metallm import StoreError

                raise StoreError("down again")
            self.seen.append(event.decision_id)

    spool = Spool(tmp_path, "x")
    for i in range(5):
        spool.add(_event(i))
    flaky = Flaky()
    with pytest.raises(Exception, match="down again"):
        spool.replay(flaky)
    spool.add(_event(5))  # spooled after the failed replay
    assert len(spool) == 4
    store = SQLiteStore(tmp_path / "s.sqlite")
    assert spool.replay(store) == 4
    assert [e.decision_id for _, e in store.events_after(None)] == ["d2", "d3", "d4", "d5"]


def test_another_process_replaying_the_folder_is_not_waited_for(tmp_path):
    spool = Spool(tmp_path, "x")
    spool.add(_event(1))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); "
         "fcntl.flock(f.fileno(), fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
         str(tmp_path / "x.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = SQLiteStore(tmp_path / "s.sqlite")
        assert spool.replay(store) == 0 and len(spool) == 1  # skipped, kept
    finally:
        holder.kill()
        holder.wait()
    assert spool.replay(store) == 1 and len(spool) == 0


def test_a_dead_processes_spool_is_replayed_by_the_next(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from metallm.serving._spool import Spool\n"
        "from metallm.state._base import FeedbackEvent\n"
        "s = Spool(sys.argv[1], 'x')\n"
        "for i in range(3): s.add(FeedbackEvent(f'd{i}', 'a', np.ones(3), 1.0, 0.0, 0.0))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    store = SQLiteStore(tmp_path / "s.sqlite")
    spool = Spool(tmp_path, "x")
    assert spool.status()["events"] == 3 and spool.status()["oldest_s"] is not None
    assert spool.replay(store) == 3 and len(spool) == 0


def test_a_full_disk_is_a_typed_error_and_leaves_the_file_readable(tmp_path, monkeypatch):
    spool = Spool(tmp_path, "x")
    spool.add(_event(1))
    real_fsync = os.fsync

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SpoolFullError, match="free disk space"):
        spool.add(_event(2))
    monkeypatch.setattr(os, "fsync", real_fsync)
    spool.add(_event(3))
    store = SQLiteStore(tmp_path / "s.sqlite")
    assert spool.replay(store) == 2 and spool.unreadable_lines == 0
