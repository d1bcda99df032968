"""A budget's spend and p in the stores: sums that add up over processes, kills and outages."""

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

from metallm import Budget, LinUCB, RedisStore, Router, SQLiteStore
from metallm.state import BudgetState
from tests.clock import FakeClock
from tests.core.state.budget_worker import CHANGE, cost
from tests.core.state.store_worker import open_store
from tests.stores import free_port, start_aof_redis

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", "redis"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "state.sqlite")
    return "redis", f"{request.getfixturevalue('redis_url')}#b{uuid.uuid4().hex[:8]}"


def _worker(kind: str, where: str, worker: int, n: int, acks: Path | None = None):
    args = [kind, where, str(worker), str(n)] + ([str(acks)] if acks else [])
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.state.budget_worker", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_new_budget_reads_as_nothing_spent(target):
    store = open_store(*target)
    assert store.budget_state("fresh", 3) == BudgetState(3, 0.0, 0, None, 0)


def test_spend_from_four_processes_adds_up_and_p_moves_by_every_change(target):
    kind, where = target
    procs = [_worker(kind, where, w, 150) for w in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    state = open_store(kind, where).budget_state("shared", 7)  # a new connection: it persisted
    expected = sum(cost(w, i) for w in range(4) for i in range(150))
    assert state.queries == 600
    assert state.spent == pytest.approx(expected, rel=1e-12)
    assert state.cost_weight == pytest.approx(0.1 + 600 * CHANGE, rel=1e-12)  # no lost update


def test_the_weight_stays_within_its_bounds_and_periods_are_apart(target):
    store = open_store(*target)
    kwargs = {"floor": 0.0, "ceiling": 1.0, "initial": 0.5}
    assert store.add_spend("b", 1, cost=1.0, queries=1, change=-2.0, **kwargs).cost_weight == 0.0
    assert store.add_spend("b", 1, cost=1.0, queries=1, change=5.0, **kwargs).cost_weight == 1.0
    state = store.add_spend("b", 2, cost=0.25, queries=1, change=0.0, **kwargs)
    assert (state.spent, state.queries, state.previous_queries) == (0.25, 1, 2)
    assert store.budget_state("other", 2).spent == 0.0  # budgets are kept apart by name


def test_sigkill_mid_spending_loses_no_acknowledged_call(target, tmp_path):
    kind, where = target
    acks = tmp_path / "acks.txt"
    proc = _worker(kind, where, 0, 0, acks)
    deadline = time.time() + 60
    while (not acks.exists() or len(acks.read_text().split()) < 50) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    acknowledged = len(acks.read_text().split())
    state = open_store(kind, where).budget_state("shared", 7)
    assert acknowledged >= 50
    assert acknowledged <= state.queries <= acknowledged + 1  # at most the one in flight
    assert state.spent == pytest.approx(sum(cost(0, i) for i in range(state.queries)), rel=1e-12)


def _router(store, budget: Budget, clock=None) -> Router:
    return Router(
        ["a", "b"], embedder=None, policy=LinUCB(alpha=0.5), store=store, seed=0,
        sync_interval=None, budget=budget, cost_weight=0.2, clock=clock or FakeClock(),
    )  # fmt: skip


def _spend(router: Router, costs: list[float]) -> None:
    for c in costs:
        decision = router.select(np.ones(4))
        router.observe_cost(decision.id, c)


def test_routers_sharing_a_store_hold_one_budget_and_a_restart_keeps_it(target):
    budget = Budget(usd_per_query=0.001, name="team")
    first, second = _router(open_store(*target), budget), _router(open_store(*target), budget)
    _spend(first, [0.004] * 5)
    _spend(second, [0.002] * 5)
    status = second.budget_status()
    assert status is not None and status["shared"]
    assert status["queries"] == 10 and status["spent_usd"] == pytest.approx(0.03)
    assert second.cost_weight > first.cost_weight > 0.2  # p rose: both overspend the target
    restarted = _router(open_store(*target), budget)
    assert restarted.cost_weight == second.cost_weight  # the shared p, not its own 0.2
    first.sync()  # an idle router picks up the others' spend and p when it syncs
    assert first.cost_weight == second.cost_weight
    assert first.budget_status()["spent_usd"] == pytest.approx(0.03)


def test_spend_while_sqlite_is_locked_is_counted_here_and_added_when_it_is_free(tmp_path, caplog):
    path = tmp_path / "state.sqlite"
    clock = FakeClock()
    router = _router(SQLiteStore(path), Budget(usd_per_query=0.001), clock)
    _spend(router, [0.001] * 3)
    caplog.set_level(logging.WARNING, logger="metallm")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file
    _spend(router, [0.002] * 4)
    assert any("cannot reach" in r.getMessage() for r in caplog.records)
    local = router.budget_status()
    assert local is not None and local["queries"] == 7  # the local view counts them
    blocker.execute("ROLLBACK")
    blocker.close()
    clock.advance(1.1)  # the store's first retry comes after a second
    _spend(router, [0.003])
    state = SQLiteStore(path).budget_state(
        "default", Budget(usd_per_query=1).period_index(time.time())
    )
    assert state.queries == 8 and state.spent == pytest.approx(0.003 + 0.008 + 0.003)


def test_spend_while_redis_is_killed_is_added_when_it_is_back(tmp_path):
    port = free_port()
    server = start_aof_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    budget = Budget(usd_per_query=0.001)
    clock = FakeClock()
    router = _router(RedisStore(url, prefix="outage", timeout=0.5), budget, clock)
    try:
        _spend(router, [0.001] * 5)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        _spend(router, [0.002] * 5)  # the server is gone: counted here
        server = start_aof_redis(port, tmp_path)  # back, with what it had acknowledged (AOF)
        clock.advance(2.1)  # past the store's retry backoff
        _spend(router, [0.004])
        state = RedisStore(url, prefix="outage").budget_state(
            "default", budget.period_index(time.time())
        )
        assert state.queries == 11
        assert state.spent == pytest.approx(0.005 + 0.010 + 0.004)
    finally:
        server.kill()
        server.wait(timeout=10)
