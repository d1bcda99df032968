"""Hostile entries in a shared store: every running and new router keeps routing and quarantines them."""

from __future__ import annotations

import sqlite3
import uuid

import numpy as np
import pytest

from metallm import RedisStore, Router, SQLiteStore
from tests.clock import FakeClock

ARMS = ["a", "b"]
DIM = 8


def _good(router: Router, n: int = 5) -> None:
    for i in range(n):
        router.record(router.select(np.eye(DIM)[i % DIM]).id, quality=0.5, cost=0.001)


def _hostile_redis(store: RedisStore) -> int:
    """Entries a second client writes straight into the stream, past metallm's own script."""
    good = np.ones(DIM).tobytes()
    entries = [
        {"arm": "a", "embedding": good, "quality": "1", "cost": "0", "time": "0"},  # no decision_id
        {"decision_id": "h1", "arm": "a", "embedding": good, "quality": "high", "cost": "0", "time": "0"},
        {"decision_id": "h2", "arm": "a", "embedding": b"x" * 15, "quality": "1", "cost": "0", "time": "0"},
        {"decision_id": "h3", "arm": "a", "embedding": np.ones(3).tobytes(), "quality": "1", "cost": "0", "time": "0"},
        {"decision_id": "h4", "arm": "zeta", "embedding": good, "quality": "1", "cost": "0", "time": "0"},
        {"decision_id": b"\xff\xfe", "arm": "a", "embedding": good, "quality": "1", "cost": "0", "time": "0"},
        {"decision_id": "h6", "arm": "a", "embedding": good, "quality": "nan", "cost": "0", "time": "0"},
        {"decision_id": "h7", "arm": "a", "embedding": np.full(DIM, np.nan).tobytes(), "quality": "1", "cost": "0", "time": "0"},
        {"decision_id": "h8", "arm": "a", "embedding": good, "quality": "5", "cost": "0", "time": "0"},
        {"decision_id": "h9", "arm": "a", "embedding": good, "quality": "1", "cost": "-5", "time": "0"},
    ]  # fmt: skip
    for fields in entries:
        store.client.xadd(store.stream, fields)
    first = next(event for _, event in store.events_after(None) if hasattr(event, "arm"))
    store.client.xadd(store.stream, {"decision_id": first.decision_id, "arm": "a", "embedding": good,
                                     "quality": "1", "cost": "0", "time": "0"})  # fmt: skip  # a duplicate id
    return len(entries) + 1


@pytest.fixture
def redis_store(redis_url):
    return RedisStore(redis_url, prefix=f"q{uuid.uuid4().hex[:8]}")


def test_hostile_redis_entries_are_quarantined_by_running_and_new_routers(redis_store, caplog):
    running = Router(ARMS, embedder=None, store=redis_store, sync_interval=None, seed=0)
    _good(running)
    learned = running.bandit.stats.A.copy()
    n_hostile = _hostile_redis(redis_store)
    running.sync()
    assert running.quarantined_events == n_hostile
    np.testing.assert_array_equal(running.bandit.stats.A, learned)  # nothing hostile learned
    assert running.select(np.ones(DIM)).arm in ARMS  # still routing
    reasons = " | ".join(reason for _, _, reason in running.quarantine)
    for expected in ("field 'decision_id' is missing", "ValueError", "15 bytes", "3 dimensions",
                     "unknown model 'zeta'", "UnicodeDecodeError", "quality nan", "NaN or inf",
                     "quality 5.0", "cost -5.0", "duplicate"):  # fmt: skip
        assert expected in reasons, expected
    assert "metallm quarantined event" in caplog.text
    fresh = Router(ARMS, embedder=None, store=redis_store, seed=0)  # a new process starts fine
    assert fresh.quarantined_events == n_hostile and fresh.n_updates == running.n_updates == 5
    assert fresh.health()["quarantined_events"] == n_hostile


def test_a_redis_snapshot_header_that_is_not_json_falls_back_to_replay(redis_store):
    router = Router(ARMS, embedder=None, store=redis_store, snapshot_every=3, seed=0)
    _good(router)
    redis_store.client.set(redis_store.snapshot_key, b"{not json\nPK...")
    fresh = Router(ARMS, embedder=None, store=redis_store, seed=0)
    assert fresh.restored_from_log and fresh.n_updates == 5


def test_hostile_sqlite_rows_are_quarantined(tmp_path):
    path = tmp_path / "s.sqlite"
    router = Router(ARMS, embedder=None, store=SQLiteStore(path), sync_interval=None, seed=0)
    _good(router)
    with sqlite3.connect(path) as db:
        rows = [
            ("s1", "a", b"x" * 15, 1.0, 0.0),
            ("s2", "nobody", np.ones(DIM).tobytes(), 1.0, 0.0),
            ("s3", "a", np.ones(DIM).tobytes(), "high", 0.0),
            ("s4", "a", np.ones(DIM).tobytes(), 5.0, 0.0),
            ("s5", "a", np.ones(DIM).tobytes(), 1.0, -5.0),
            ("s6", "a", np.ones(4).tobytes(), 1.0, 0.0),
        ]
        db.executemany(
            "INSERT INTO events (decision_id, arm, embedding, quality, cost, time) VALUES (?,?,?,?,?,0)",
            rows,
        )
    router.sync()
    assert router.quarantined_events == 6 and router.n_updates == 5
    assert Router(ARMS, embedder=None, store=SQLiteStore(path)).quarantined_events == 6


def test_a_sqlite_writer_holding_the_lock_does_not_stall_routing(tmp_path):
    path = tmp_path / "s.sqlite"
    clock = FakeClock()
    router = Router(
        ARMS, embedder=None, store=SQLiteStore(path, timeout=0.5), sync_interval=0.0, seed=0,
        clock=clock,
    )  # fmt: skip
    _good(router, 2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        import time

        latencies = []
        for i in range(20):
            start = time.perf_counter()
            decision = router.select(np.eye(DIM)[i % DIM])
            latencies.append(time.perf_counter() - start)
            router.record(decision.id, quality=1.0, cost=0.0)  # spooled while the file is locked
        assert max(latencies) < 0.25 + 0.2  # the routing path waits at most routing_timeout
        assert router.health()["store_available"] is False
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    clock.advance(1.1)
    router.sync()
    assert router.health()["spooled_events"] == 0 and router.n_updates == 22


def test_a_store_that_is_down_at_start_does_not_stop_the_router(tmp_path):
    from tests.stores import free_port

    store = RedisStore(
        f"redis://127.0.0.1:{free_port()}/0", prefix="down", timeout=0.2, spool_dir=tmp_path
    )
    router = Router(ARMS, embedder=None, store=store, seed=0)  # nothing listens on that port
    decision = router.select(np.ones(DIM))
    router.record(decision.id, quality=1.0, cost=0.0)
    health = router.health()
    assert (
        decision.arm in ARMS
        and health["store_available"] is False
        and health["spooled_events"] == 1
    )
