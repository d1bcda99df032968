"""Several grades for one decision across routers sharing a store (SQLite and Redis).

A worker routes and a judge grades; a feedback-only router elsewhere records a person's grade
by decision id. Every router folding the log ends where a router that had learned only the
person's grade would be; corrections that come late, race, or were written by a hostile client
never leave two routers apart or move statistics they should not.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import closing

import numpy as np
import pytest

from metallm import LinUCB, Router
from metallm.evaluation import savings_report
from metallm.evaluation._offpolicy import log_from_store
from metallm.state import FeedbackEvent
from tests.stores import open_store

ARMS = ["a", "b"]
DIM = 6


@pytest.fixture(params=["sqlite", "redis"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "state.sqlite")
    return "redis", f"{request.getfixturevalue('redis_url')}#gr{uuid.uuid4().hex[:8]}"


def _router(target, **kwargs) -> Router:  # noqa: ANN001, ANN003
    return Router(ARMS, embedder=None, policy=LinUCB(alpha=0.0), seed=0,
                  store=open_store(*target), sync_interval=None, **kwargs)  # fmt: skip


def _queries(n: int = 30) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, DIM))


def _reference(X: np.ndarray, quality) -> Router:  # noqa: ANN001
    """A router without a store that learned each query's final grade once."""
    r = Router(ARMS, embedder=None, policy=LinUCB(alpha=0.0), seed=0)
    for i, x in enumerate(X):
        d = r.select(x, force=ARMS[i % 2])
        r.record(d.id, quality=quality(i), cost=0.01)
    return r


def _judged(worker: Router, X: np.ndarray) -> list[str]:
    ids = []
    for i, x in enumerate(X):
        d = worker.select(x, force=ARMS[i % 2])
        worker.record(d.id, quality=1.0, cost=0.01, source="judge")
        ids.append(d.id)
    return ids


def _close_to(a: Router, b: Router, X: np.ndarray) -> bool:
    pa, pb = a.predict(X, widths=False), b.predict(X, widths=False)
    return np.allclose(pa.quality, pb.quality) and np.allclose(pa.cost, pb.cost)


def test_a_person_grading_from_a_feedback_only_router_corrects_every_router(target):
    X = _queries()
    worker, people = _router(target), _router(target)
    ids = _judged(worker, X)
    for i in range(0, len(X), 4):
        people.record(ids[i], quality=0.0, source="human")  # by decision id, from elsewhere
    worker.sync()
    reference = _reference(X, lambda i: 0.0 if i % 4 == 0 else 1.0)
    assert _close_to(worker, reference, X) and _close_to(people, reference, X)
    late = _router(target)  # a router started afterwards folds the whole log
    assert _close_to(late, reference, X)
    assert worker.grade_in_force(ids[0]) == ("human", 0.0)
    assert people.health()["feedback"]["corrected"] == len(range(0, len(X), 4))
    with pytest.raises(Exception, match="graded by 'human'"):
        worker.record(ids[0], quality=1.0, source="judge")
    for r in (worker, people, late):
        r.close()


def test_a_correction_ranked_below_one_already_in_the_log_is_skipped_by_every_router(target):
    X = _queries(4)
    worker = _router(target)
    ids = _judged(worker, X)
    store = open_store(*target)
    now = time.time()
    x = worker_vector = X[0]
    # two processes corrected the judge's grade at once: a person's and a check's both name it
    store.append(FeedbackEvent(f"{ids[0]}#human", "a", worker_vector, 0.0, 0.0, now,
                               source="human", replaces=1.0))  # fmt: skip
    store.append(FeedbackEvent(f"{ids[0]}#check", "a", x, 0.6, 0.0, now + 1,
                               source="check", replaces=1.0))  # fmt: skip
    worker.sync()
    fresh = _router(target)
    reference = _reference(X, lambda i: 0.0 if i == 0 else 1.0)
    assert _close_to(worker, reference, X) and _close_to(fresh, reference, X)
    assert worker.health()["superseded_grades"] == fresh.health()["superseded_grades"] == 1
    worker.close()
    fresh.close()
    store.close()


def test_hostile_corrections_are_quarantined_and_move_nothing(target):
    X = _queries(4)
    worker = _router(target)
    ids = _judged(worker, X)
    before = worker.predict(X, widths=False).quality
    store = open_store(*target)
    now, v = time.time(), X[0]
    hostile = [
        FeedbackEvent(f"{ids[0]}#boss", "a", v, 0.0, 0.0, now, source="boss", replaces=1.0),
        FeedbackEvent(f"{ids[0]}#check", "a", v, 0.0, 0.0, now, source="human", replaces=1.0),
        FeedbackEvent(f"{ids[0]}#human", "a", v, 0.0, 0.0, now, source="human", replaces=7.0),
        FeedbackEvent(f"{ids[2]}#human", "b", v, 0.0, 0.0, now, source="human", replaces=1.0),
    ]
    for event in hostile:
        try:
            store.append(event)
        except Exception:  # noqa: BLE001 - the store refusing it is fine too
            pass
    worker.sync()
    assert np.array_equal(worker.predict(X, widths=False).quality, before)
    reasons = " ".join(reason for _, _, reason in worker.quarantine)
    assert "'boss' is not one of" in reasons and "'<decision>#<source>'" in reasons
    assert "replaced quality" in reasons and "as answered by 'b', not 'a'" in reasons
    worker.close()
    store.close()


def test_a_router_started_from_a_snapshot_applies_a_later_correction(target):
    X = _queries(8)
    worker = _router(target)
    ids = _judged(worker, X)
    worker.sync()
    worker.snapshot()
    fresh = _router(target)  # starts from the snapshot: it never folded the judge's grades
    worker.record(ids[3], quality=0.25, source="human")
    fresh.sync()
    reference = _reference(X, lambda i: 0.25 if i == 3 else 1.0)
    assert _close_to(fresh, reference, X) and _close_to(worker, reference, X)
    worker.close()
    fresh.close()


def test_the_log_and_the_report_read_the_grade_in_force_and_count_each_call_once(target):
    X = _queries(40)
    worker = _router(target)
    ids = _judged(worker, X)
    for decision_id in ids[:10]:
        worker.record(decision_id, quality=0.0, source="human")
    with closing(open_store(*target)) as store:
        log = log_from_store(store, ARMS)
        report = savings_report(store, baseline="b")
    assert len(log.chosen) == 40 and log.quality.sum() == 30.0
    assert report.decisions == 40 and report.quality == pytest.approx(0.75)
    worker.close()


def test_an_older_sqlite_file_gains_the_source_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT "
            "NULL UNIQUE, arm TEXT NOT NULL, embedding BLOB NOT NULL, quality REAL NOT NULL, "
            "cost REAL NOT NULL, time REAL NOT NULL, prompt TEXT, failure INTEGER NOT NULL "
            "DEFAULT 0, propensity REAL, shadows TEXT, latency REAL)"
        )
        db.execute(
            "INSERT INTO events (decision_id, arm, embedding, quality, cost, time) VALUES "
            "('old', 'a', ?, 1.0, 0.01, 0)",
            (np.ones(DIM).tobytes(),),
        )
        db.commit()
    target = ("sqlite", str(path))
    router = _router(target)
    assert router.n_updates == 1
    assert router.grade_in_force("old") == ("check", 1.0)  # a grade before sources: a check's
    router.close()
