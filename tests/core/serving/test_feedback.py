"""Feedback without surprises: by run id, in bulk, counted, and never at the cost of an answer."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from metallm import Feedback, Router, SQLiteStore, StoreError
from metallm.exceptions import DuplicateFeedbackError, ExpiredDecisionError, UnknownDecisionError
from tests.clock import FakeClock

DIM = 4


def _router(**kwargs) -> Router:
    return Router(["a", "b"], embedder=None, seed=0, **kwargs)


def test_feedback_by_run_id_finds_the_decision_that_answered():
    router = _router()
    call = router.route(np.ones(DIM), run_id="run-7")
    call.run(lambda decision: "answer")
    call.succeeded()
    router.record_run("run-7", quality=1.0, cost=0.01)
    assert router.n_updates == 1
    with pytest.raises(DuplicateFeedbackError, match="feedback for run 'run-7' was already"):
        router.record_run("run-7", quality=1.0, cost=0.01)
    with pytest.raises(UnknownDecisionError, match="no decision was made for run 'run-8' here"):
        router.record_run("run-8", quality=1.0, cost=0.01)
    assert router.health()["feedback"] == {
        "recorded": 1,
        "unknown": 1,
        "expired": 0,
        "duplicate": 1,
        "corrected": 0,
    }


def test_record_many_says_what_became_of_each_item():
    clock = FakeClock()
    router = _router(feedback_ttl=0.2, clock=clock)
    old = router.select(np.ones(DIM))
    clock.advance(0.3)
    fresh = router.select_batch(np.ones((3, DIM)))
    summary = router.record_many(
        [
            Feedback(fresh[0].id, quality=1.0, cost=0.0),
            Feedback(fresh[0].id, quality=1.0, cost=0.0),  # twice
            Feedback("nobody-issued-this", quality=1.0, cost=0.0),
            Feedback(old.id, quality=0.5, cost=0.0),  # too late
            Feedback(fresh[1].id, quality=7.0, cost=0.0),  # not a quality
            Feedback(fresh[2].id, quality=0.0, cost=0.0),
        ]
    )
    assert (
        summary.recorded,
        summary.duplicate,
        summary.unknown,
        summary.expired,
        summary.invalid,
    ) == (2, 1, 1, 1, 1)
    assert summary.total == 6 and [key for key, _ in summary.errors] == [
        fresh[0].id, "nobody-issued-this", old.id, fresh[1].id,
    ]  # fmt: skip
    assert isinstance(summary.errors[2][1], ExpiredDecisionError)
    assert router.n_updates == 2


def test_health_counts_feedback_that_came_too_late_or_from_nowhere():
    clock = FakeClock()
    router = _router(feedback_ttl=0.2, clock=clock)
    late = router.select(np.ones(DIM))
    clock.advance(0.3)
    for bad in (late.id, "unknown-id"):
        with pytest.raises((ExpiredDecisionError, UnknownDecisionError)):
            router.record(bad, quality=1.0, cost=0.0)
    on_time = router.select(np.ones(DIM))
    router.record(on_time.id, quality=1.0, cost=0.0)
    with pytest.raises(DuplicateFeedbackError):
        router.record(on_time.id, quality=1.0, cost=0.0)
    health = router.health()
    assert health["feedback"] == {
        "recorded": 1, "unknown": 1, "expired": 1, "duplicate": 1, "corrected": 0
    }  # fmt: skip
    assert (
        health["pending_in_memory"] == 1 and health["store"] is None
    )  # the late one, until evicted


def test_a_ledger_the_store_cannot_write_leaves_routing_and_feedback_working(tmp_path, caplog):
    class FullDisk(SQLiteStore):
        full = True

        def put_decisions(self, records):
            if self.full:
                raise StoreError("database or disk is full")
            super().put_decisions(records)

    store = FullDisk(tmp_path / "s.sqlite")
    clock = FakeClock()
    router = _router(store=store, clock=clock)
    with caplog.at_level(logging.WARNING, logger="metallm"):
        decision = router.select(np.ones(DIM))
    assert router.health()["ledger_errors"] == 1 and "cannot reach" in caplog.text
    router.record(decision.id, quality=1.0, cost=0.0)  # from memory; the store is down: spooled
    assert router.health()["spooled_events"] == 1 and router.n_updates == 0
    store.full = False
    clock.advance(1.1)  # the first retry comes after 1 s
    router.select(np.ones(DIM))  # a routing call starts a sync in the background: it replays
    router.wait_for_sync(10)
    assert router.n_updates == 1 and router.health()["spooled_events"] == 0
    assert router.health()["store_available"] is True


def test_a_decision_evicted_from_memory_is_still_in_the_stores_ledger(tmp_path):
    router = _router(store=SQLiteStore(tmp_path / "s.sqlite"), max_pending=1)
    first, second = router.select(np.ones(DIM)), router.select(-np.ones(DIM))
    assert router.pending_decisions == 1 and router.evicted_decisions == 1
    router.observe_cost(first.id, 0.002)  # the cost goes to the ledger too
    router.record(first.id, quality=1.0)
    router.record(second.id, quality=0.0, cost=0.0)
    assert router.n_updates == 2 and router.bandit.stats.cost_sums().sum() == pytest.approx(0.002)
