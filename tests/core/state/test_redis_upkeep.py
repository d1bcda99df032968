"""RedisStore upkeep: it says when a crash could lose acknowledged feedback, and its log stays bounded."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import uuid

import numpy as np

from metallm import RedisStore, Router
from tests.stores import free_port


def test_a_server_without_aof_gets_a_warning_that_says_what_to_set(redis_url, caplog):
    with caplog.at_level(logging.WARNING, logger="metallm"):
        store = RedisStore(redis_url, prefix=f"p{uuid.uuid4().hex[:8]}")
    assert store.persistence == "none"  # the test server runs with --save "" --appendonly no
    assert "can lose feedback that record() already acknowledged" in caplog.text
    assert "appendonly yes" in caplog.text


def test_a_server_with_aof_always_is_safe_and_says_nothing(tmp_path, caplog):
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                with caplog.at_level(logging.WARNING, logger="metallm"):
                    store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="safe")
                if store.persistence != "unknown":
                    break
            except Exception:
                pass
            time.sleep(0.05)
        assert store.persistence == "aof-always"
        assert "can lose feedback" not in caplog.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_stream_is_trimmed_after_snapshots_and_a_lagging_process_catches_up(redis_url):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = RedisStore(redis_url, prefix=prefix, retention=0.0)  # keep nothing the snapshot covers
    lagging = Router(
        ["a", "b"],
        embedder=None,
        store=RedisStore(redis_url, prefix=prefix),
        sync_interval=None,
        seed=0,
    )
    writer = Router(
        ["a", "b"], embedder=None, store=store, snapshot_every=5, sync_interval=None, seed=0
    )
    rng = np.random.default_rng(0)
    for _ in range(12):
        writer.record(writer.select(rng.normal(size=4)).id, quality=float(rng.random()), cost=0.001)
    assert store.client.xlen(store.stream) < 12  # events before the last snapshot are gone
    assert store.client.zcard(store.ids_key) < 12  # and their ids with them
    fresh = Router(["a", "b"], embedder=None, store=RedisStore(redis_url, prefix=prefix), seed=0)
    assert fresh.n_updates == 12
    lagging.sync()  # its position is gone from the log: it restarts from the snapshot
    assert lagging.n_updates == 12
    np.testing.assert_allclose(lagging.bandit.stats.A, writer.bandit.stats.A, atol=1e-12)
