"""A SQLite file deleted or damaged under a running router, and a Redis that stalls at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from metallm import RedisStore, Router, SQLiteStore
from metallm.exceptions import CorruptStoreError
from tests.clock import FakeClock
from tests.stores import free_port, start_aof_redis

ARMS = ["a", "b"]
ROOT = Path(__file__).resolve().parents[2]


def _record(router: Router, n: int) -> list[str]:
    ids = []
    for i in range(n):
        decision = router.select(np.eye(4)[i % 4])
        router.record(decision.id, quality=1.0, cost=0.001)
        ids.append(decision.id)
    return ids


def test_a_deleted_file_is_noticed_and_what_is_acknowledged_after_it_survives(tmp_path):
    path = tmp_path / "s.sqlite"
    code = (
        "import sys, os, numpy as np\n"
        "from metallm import Router, SQLiteStore\n"
        "r = Router(['a', 'b'], embedder=None, store=SQLiteStore(sys.argv[1]), seed=0)\n"
        "for i in range(5): r.record(r.select(np.eye(4)[i % 4]).id, quality=1.0, cost=0.001)\n"
        "for s in ('', '-wal', '-shm'):\n"
        "    if os.path.exists(sys.argv[1] + s): os.unlink(sys.argv[1] + s)\n"
        "ids = []\n"
        "for i in range(200):\n"
        "    d = r.select(np.eye(4)[i % 4]); r.record(d.id, quality=0.5, cost=0.001); ids.append(d.id)\n"
        "h = r.health()\n"
        "assert h['store_available'] is False and h['store_identity'] == 'was deleted', h\n"
        "assert h['spooled_events'] == 200, h\n"
        "print(' '.join(ids))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    acknowledged = set(out.stdout.split())
    fresh = Router(ARMS, embedder=None, store=SQLiteStore(path))  # a new file: the spool replayed
    logged = {event.decision_id for _, event in fresh.store.events_after(None)}
    assert logged == acknowledged and fresh.n_updates == 200


def test_a_damaged_file_is_a_typed_error_for_a_new_router_and_reported_by_a_running_one(tmp_path):
    path = tmp_path / "s.sqlite"
    running = Router(ARMS, embedder=None, store=SQLiteStore(path), seed=0, sync_interval=None)
    _record(running, 300)
    running.store.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # garbage over every page but the first (the schema)
        handle.seek(4096)
        handle.write(os.urandom(size - 4096))
    with pytest.raises(CorruptStoreError, match="damaged") as info:
        Router(ARMS, embedder=None, store=SQLiteStore(path))
    assert "restore it" in str(info.value)
    decision = running.select(np.ones(4))  # routing goes on
    running.record(decision.id, quality=1.0, cost=0.0)  # spooled, not lost
    health = running.health()
    assert health["store_available"] is False and "damaged" in health["store_error"]
    assert health["spooled_events"] == 1


def test_a_redis_stalled_at_start_costs_the_constructor_its_routing_timeout(tmp_path):
    port, folder = free_port(), tmp_path / "redis"
    folder.mkdir()
    server = start_aof_redis(port, folder)
    try:
        server.send_signal(signal.SIGSTOP)
        started = time.perf_counter()
        store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="stall", spool_dir=tmp_path)
        clock = FakeClock()
        router = Router(ARMS, embedder=None, store=store, clock=clock)
        took = time.perf_counter() - started
        assert took < 2 * store.routing_timeout + 0.5, took  # the persistence check, one ping
        assert router.health()["store_available"] is False
        server.send_signal(signal.SIGCONT)
        clock.advance(1.1)  # the first retry comes after 1 s
        router.sync()
        assert router.health()["store_available"] is True
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)
