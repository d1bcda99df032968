"""State stores: restarts, snapshots, corruption, SIGKILL mid-recording, many processes."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from metallm import LinUCB, RedisStore, Router, SQLiteStore, StoreError
from metallm.exceptions import (
    ConfigurationError,
    DuplicateEventError,
    DuplicateFeedbackError,
    StateFileError,
)
from metallm.state import FeedbackEvent, Snapshot
from tests.core.state.store_worker import ARMS, DIM, events
from tests.stores import free_port as _free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "redis"])
def target(request, tmp_path):
    """(kind, target string) for a fresh store of each kind."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "state.sqlite")
    return "redis", f"{request.getfixturevalue('redis_url')}#t{uuid.uuid4().hex[:8]}"


def _open(kind, target):
    if kind == "sqlite":
        return SQLiteStore(target)
    url, _, prefix = target.rpartition("#")
    return RedisStore(url, prefix=prefix)


def _router(kind, target, **kwargs):
    return Router(
        ARMS,
        embedder=None,
        policy=LinUCB(alpha=0.25),
        store=_open(kind, target),
        seed=0,
        sync_interval=None,
        **kwargs,
    )


def _train(router, worker=0, n=120):
    for x, arm, quality, cost in events(worker, n):
        d = router.select(x, force=arm)
        router.record(d.id, quality=quality, cost=cost)


def _sequential_fold(store) -> Router:
    """A store-less router fed the store's events one by one, in the store's order."""
    fold = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.25), growth=None)
    for _, event in store.events_after(None):
        fold.partial_fit(event.embedding[None, :], [event.arm], [event.quality], [event.cost])
    return fold


def _queries(n=30):
    rng = np.random.default_rng(99)
    x = rng.normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_restarted_router_makes_the_same_decisions(target):
    kind, where = target
    first = _router(kind, where)
    _train(first)
    again = _router(kind, where)
    assert again.n_updates == first.n_updates == 120
    np.testing.assert_allclose(again.bandit.stats.A, first.bandit.stats.A, rtol=0, atol=1e-12)
    q = _queries()
    assert [d.arm for d in again.select_batch(q)] == [d.arm for d in first.select_batch(q)]
    # online learning goes on from there, and both fold the shared log to the same state
    _train(first, worker=5, n=30)
    _train(again, worker=6, n=30)
    first.sync()
    assert first.n_updates == again.n_updates == 180
    np.testing.assert_array_equal(again.bandit.stats.A, first.bandit.stats.A)


def test_loading_is_snapshot_plus_replay(target):
    kind, where = target
    router = _router(kind, where, snapshot_every=50)
    _train(router, n=130)
    store = _open(kind, where)
    snapshot = store.latest_snapshot()
    assert snapshot is not None
    replayed = sum(1 for _ in store.events_after(snapshot.position))
    assert 0 < replayed < 50
    restored = _router(kind, where)
    np.testing.assert_allclose(
        restored.bandit.stats.B, _sequential_fold(store).bandit.stats.B, atol=1e-12
    )


def test_feedback_from_another_process_is_folded_in(target):
    kind, where = target
    a, b = _router(kind, where), _router(kind, where)
    _train(a, n=40)
    assert b.n_updates == 0 and b.sync() == 40
    np.testing.assert_allclose(a.bandit.stats.A, b.bandit.stats.A, atol=1e-12)


def test_prompts_are_not_stored_unless_asked(tmp_path, embedder):
    for opt_in in (False, True):
        store = SQLiteStore(tmp_path / f"p{opt_in}.sqlite", store_prompts=opt_in)
        router = Router(ARMS, embedder=embedder, store=store, sync_interval=None)
        d = router.select("What is the capital of Peru?")
        router.record(d.id, quality=1.0, cost=0.001)
        ((_, event),) = store.events_after(None)
        assert event.prompt == ("What is the capital of Peru?" if opt_in else None)
        assert event.embedding.shape == (385,)  # MiniLM's 384, and the prompt's length
        assert event.embedding[-1] == pytest.approx(len("What is the capital of Peru?") / 1000)
        raw = sqlite3.connect(store.path).execute("SELECT prompt FROM events").fetchone()[0]
        assert raw == event.prompt


def test_a_corrupt_snapshot_falls_back_to_replaying_the_log(tmp_path, caplog):
    path = tmp_path / "state.sqlite"
    router = _router("sqlite", str(path), snapshot_every=40)
    _train(router, n=100)
    db = sqlite3.connect(path)
    db.execute("UPDATE snapshots SET data = ?", (b"this is not an npz",))
    db.commit()
    with caplog.at_level(logging.WARNING):
        restored = _router("sqlite", str(path))
    assert restored.restored_from_log
    assert "replaying the whole event log" in caplog.text and "state.sqlite" in caplog.text
    assert restored.n_updates == 100
    np.testing.assert_allclose(restored.bandit.stats.A, router.bandit.stats.A, atol=1e-9)


def test_a_corrupt_store_file_is_a_typed_error_naming_it(tmp_path):
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StateFileError, match="state.sqlite"):
        SQLiteStore(path)


def test_a_duplicate_event_is_refused(target):
    kind, where = target
    store = _open(kind, where)
    event = FeedbackEvent("same-id", "a", np.ones(DIM), 1.0, 0.0, 0.0)
    store.append(event)
    with pytest.raises(DuplicateEventError, match="already holds feedback for decision same-id"):
        store.append(event)
    router = _router(kind, where)
    d = router.select(np.ones(DIM))
    router.record(d.id, quality=1.0, cost=0.0)
    with pytest.raises(DuplicateFeedbackError):
        router.record(d.id, quality=1.0, cost=0.0)


def _worker(kind, where, worker, n, ids_file=None, growth="default"):
    args = [sys.executable, "-m", "tests.core.state.store_worker", kind, where, str(worker), str(n)]
    if ids_file:
        args.append(str(ids_file))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "METALLM_TEST_GROWTH": growth}
    return subprocess.Popen(args, cwd=ROOT, env=env)


def test_sigkill_mid_recording_loses_and_doubles_nothing(target, tmp_path):
    kind, where = target
    ids_file = tmp_path / "returned.txt"
    proc = _worker(kind, where, 7, 100_000, ids_file)
    deadline = time.time() + 60
    while time.time() < deadline and (
        not ids_file.exists() or len(ids_file.read_text().split()) < 150
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    returned = ids_file.read_text().split()
    assert len(returned) >= 150
    store = _open(kind, where)
    stored = [event.decision_id for _, event in store.events_after(None)]
    assert len(stored) == len(set(stored))  # none doubled
    assert set(returned) <= set(stored)  # none lost: every record() that returned is there
    assert len(stored) - len(returned) <= 1  # at most the one in flight when killed
    restored = _router(kind, where)
    assert restored.n_updates == len(stored)


def test_four_processes_fold_to_the_sequential_statistics(target):
    kind, where = target
    procs = [_worker(kind, where, w, 500, growth="off") for w in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    store = _open(kind, where)
    assert sum(1 for _ in store.events_after(None)) == 2000
    restored = _router(kind, where, growth=None)
    fold = _sequential_fold(store)
    np.testing.assert_array_equal(
        restored.bandit.stats.A, fold.bandit.stats.A
    )  # same order: exactly equal
    np.testing.assert_array_equal(restored.bandit.stats.B, fold.bandit.stats.B)
    # and equal, up to rounding, to the four workers' events folded in any order (a store's
    # ledger keeps the embedding a decision routed on as float32: that is what is learned)
    any_order = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.25), growth=None)
    for w in range(4):
        for x, arm, quality, cost in events(w, 500):
            logged = x.astype(np.float32).astype(np.float64)
            any_order.partial_fit(logged[None, :], [arm], [quality], [cost])
    np.testing.assert_allclose(
        restored.bandit.stats.A, any_order.bandit.stats.A, rtol=1e-10, atol=1e-10
    )
    assert restored.counts == any_order.counts


def test_a_redis_server_that_is_down_is_a_store_error_not_a_driver_error():
    store = RedisStore(f"redis://127.0.0.1:{_free_port()}/0")
    event = FeedbackEvent("d-1", "a", np.ones(DIM), 1.0, 0.0, 0.0)
    with pytest.raises(
        StoreError, match="could not append the event for decision d-1: ConnectionError"
    ):
        store.append(event)
    with pytest.raises(StoreError, match="could not read its events"):
        list(store.events_after(None))
    with pytest.raises(StoreError, match="could not read its snapshot"):
        store.latest_snapshot()


def test_a_broken_sqlite_file_is_a_store_error_not_a_driver_error(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    with sqlite3.connect(tmp_path / "s.sqlite") as db:  # another hand breaks the file's tables
        db.execute("DROP TABLE events")
        db.execute("DROP TABLE snapshots")
    with pytest.raises(StoreError, match="could not append"):
        store.append(FeedbackEvent("d-1", "a", np.ones(DIM), 1.0, 0.0, 0.0))
    with pytest.raises(StoreError, match="could not read its events"):
        list(store.events_after(None))
    with pytest.raises(StoreError, match="could not save a snapshot"):
        store.save_snapshot(Snapshot("1", b"x"))


def test_many_processes_can_open_a_new_sqlite_file_at_once(tmp_path):
    """Switching a new file to WAL is not waited for by SQLite itself: the store retries."""
    path = tmp_path / "fresh.sqlite"
    start = time.time() + 3.0  # every process imports first, then all open the file at this instant
    code = (
        "import time\nfrom metallm import SQLiteStore\n"
        f"while time.time() < {start}: pass\n"
        f"SQLiteStore({str(path)!r})"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]


def test_a_typo_in_the_stores_folder_is_an_error_not_a_new_empty_store(tmp_path):
    (tmp_path / "state").mkdir()
    SQLiteStore(tmp_path / "state" / "router.sqlite")
    with pytest.raises(
        ConfigurationError, match=r"'.*/stat' of the store .* does not exist.*create_folders=True"
    ):
        SQLiteStore(tmp_path / "stat" / "router.sqlite")
    assert not (tmp_path / "stat").exists()
    made = SQLiteStore(tmp_path / "new" / "deployment" / "router.sqlite", create_folders=True)
    assert made.path.is_file()
