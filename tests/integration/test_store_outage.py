"""Routing survives its store: Redis killed and restarted (AOF on), or stalled with SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from metallm import RedisStore, Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from tests.clock import FakeClock
from tests.stores import free_port
from tests.stores import start_aof_redis as _redis

pytestmark = pytest.mark.slow  # seconds each: left out by `pytest -m "not slow"`

ROOT = Path(__file__).resolve().parents[2]


def _answered(path: Path) -> list[str]:
    return (
        [line.split()[1] for line in path.read_text().splitlines() if line.startswith("answered")]
        if path.exists()
        else []
    )


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_killing_and_restarting_redis_under_a_live_worker_loses_and_doubles_nothing(tmp_path):
    port, folder = free_port(), tmp_path / "redis"
    folder.mkdir()
    server = _redis(port, folder)
    out = tmp_path / "answers.txt"
    scripts = {m: ScriptedModel(reply=f"{m} answers") for m in ("mini", "pro")}
    with OpenAICompatibleServer(scripts) as provider:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.outage_worker", f"redis://127.0.0.1:{port}/0",
             provider.base_url, "80", str(out), str(tmp_path / "spool")],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            _wait_for(lambda: len(_answered(out)) >= 15)
            server.send_signal(signal.SIGKILL)  # mid-write, whatever it was doing
            server.wait()
            before = len(_answered(out))
            _wait_for(lambda: len(_answered(out)) >= before + 15)  # answering goes on without Redis
            server = _redis(port, folder)  # back, from its append-only file
            assert worker.wait(timeout=180) == 0
        finally:
            worker.kill()
    answered = _answered(out)
    assert len(answered) == 80  # every answer was delivered
    health = json.loads(
        next(line for line in out.read_text().splitlines() if line.startswith("health"))[7:]
    )
    assert health["spooled_events"] == 0 and health["store_available"] is True
    store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="outage")
    logged = [event.decision_id for _, event in store.events_after(None)]
    assert sorted(logged) == sorted(answered)  # nothing recorded was lost, nothing doubled
    fresh = Router(["mini", "pro"], embedder=None, store=store)
    assert fresh.n_updates == 80 and fresh.quarantined_events == 0
    server.terminate()
    server.wait(timeout=10)


def test_a_stalled_redis_costs_routing_at_most_its_timeout(tmp_path):
    port, folder = free_port(), tmp_path / "redis"
    folder.mkdir()
    server = _redis(port, folder)
    try:
        store = RedisStore(
            f"redis://127.0.0.1:{port}/0", prefix="stall", timeout=0.3, spool_dir=tmp_path / "spool"
        )
        clock = FakeClock()
        router = Router(
            ["a", "b"], embedder=None, store=store, sync_interval=0.0, seed=0, clock=clock
        )
        router.record(router.select(np.ones(4)).id, quality=1.0, cost=0.0)
        server.send_signal(signal.SIGSTOP)
        latencies = []
        for _ in range(30):
            start = time.perf_counter()
            decision = router.select(np.ones(4))
            latencies.append(time.perf_counter() - start)
            router.record(decision.id, quality=0.5, cost=0.0)  # spooled, not blocked
        assert max(latencies) < 0.3 * 2 + 0.2  # a sync and a ledger write at most, each bounded
        assert sorted(latencies)[15] < 0.05  # and most calls do not touch the stalled store at all
        assert (
            router.health()["store_available"] is False and router.health()["spooled_events"] == 30
        )
        server.send_signal(signal.SIGCONT)
        clock.advance(1.2)
        router.sync()
        assert router.health()["spooled_events"] == 0 and router.n_updates == 31
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)
