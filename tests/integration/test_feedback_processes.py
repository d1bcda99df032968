"""Feedback from any process, at any time: decisions kept in the store (real processes, real stores).

A answers through ChatMetaLLM (real ChatOpenAI clients, real HTTP to the local fake provider,
real MiniLM) and exits; B, another process, records the feedback by decision id or run id; C,
fresh, sees the update. The same with A restarted between answer and feedback, with SQLite and
a real redis-server, and with 10,000 decisions from 4 processes graded by 2 others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from metallm import LinUCB, RedisStore, Router, SQLiteStore
from metallm.exceptions import ExpiredDecisionError
from metallm.state import FeedbackEvent
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from tests.integration.feedback_worker import DIM, MODELS, decide_embeddings, graded
from tests.stores import open_store

pytestmark = pytest.mark.slow  # seconds each: left out by `pytest -m "not slow"`

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "redis"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "state.sqlite")
    return "redis", f"{request.getfixturevalue('redis_url')}#fb{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def provider():
    scripts = {name: ScriptedModel(reply=f"{name} answers: it depends.") for name in MODELS}
    with OpenAICompatibleServer(scripts) as server:
        yield server


def _run(*args: str, timeout: float = 240) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.feedback_worker", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _stats(kind: str, where: str) -> dict:
    return json.loads(_run("stats", kind, where))


@pytest.mark.parametrize("by", ["decision_id", "run_id"])
def test_feedback_recorded_in_another_process_reaches_a_fresh_one(target, provider, tmp_path, by):
    kind, where = target
    answers = tmp_path / "answers.txt"
    _run("answer", kind, where, provider.base_url, str(answers))  # A answers and exits
    lines = [line.split() for line in answers.read_text().splitlines()]
    assert len(lines) == 3 and all(float(cost) > 0 for *_, cost in lines)
    assert _stats(kind, where)["n_updates"] == 0  # nothing learned yet
    _run("record", kind, where, str(answers), *(["run"] if by == "run_id" else []))  # B records
    stats = _stats(kind, where)  # C, fresh
    assert stats["n_updates"] == 3
    chosen = [model for _, _, model, _ in lines]
    assert stats["counts"] == {m: chosen.count(m) for m in MODELS}
    # the cost B learned is the one A measured from the provider's usage (the ledger kept it)
    router = Router(
        MODELS, embedder=None, store=SQLiteStore(where) if kind == "sqlite" else _redis(where)
    )
    learned_cost = router.bandit.stats.cost_sums().sum()
    assert learned_cost == pytest.approx(sum(float(cost) for *_, cost in lines), rel=1e-12)


def test_feedback_after_the_answering_process_restarted(target, provider, tmp_path):
    kind, where = target
    answers = tmp_path / "answers.txt"
    _run("answer", kind, where, provider.base_url, str(answers))
    _run("restarted", kind, where, provider.base_url, str(answers))  # A again, new process
    assert _stats(kind, where)["n_updates"] == 3


def test_ten_thousand_pending_decisions_graded_in_random_order_from_two_processes(target, tmp_path):
    kind, where = target
    files = [tmp_path / f"decisions-{w}.txt" for w in range(4)]
    deciders = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.feedback_worker",
                "decide",
                kind,
                where,
                str(w),
                "2500",
                str(f),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for w, f in enumerate(files)
    ]
    assert [p.wait(timeout=300) for p in deciders] == [0, 0, 0, 0]
    every = tmp_path / "all.txt"
    every.write_text("".join(f.read_text() for f in files))
    graders = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.feedback_worker",
                "grade",
                kind,
                where,
                str(every),
                str(s),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for s in range(2)
    ]
    assert [p.wait(timeout=300) for p in graders] == [0, 0]

    # What the statistics must be: every decision learned once, from the float32 embedding it
    # routed on, with the grade of its id; sums, so any order gives the same up to rounding.
    expected = Router(MODELS, embedder=None, policy=LinUCB(alpha=1.0))
    for w, f in enumerate(files):
        embeddings = decide_embeddings(w, 2500).astype(np.float32).astype(np.float64)
        for x, line in zip(embeddings, f.read_text().splitlines()):
            decision_id, arm = line.split()
            quality, cost = graded(decision_id)
            expected.partial_fit(x[None, :], [arm], [quality], [cost])
    store = SQLiteStore(where) if kind == "sqlite" else _redis(where)
    folded = Router(MODELS, embedder=None, store=store)
    assert folded.n_updates == 10_000
    assert folded.counts == expected.counts  # every decision learned once, by the right model
    # A fresh router folding the store equals one fed the log's events in its order (capacity
    # growth switches maps at the same outcome in both); the event sums equal the expected ones
    # up to rounding (those are what the log holds, in whatever order the graders wrote them).
    in_order = Router(MODELS, embedder=None)
    logged = [e for _, e in store.events_after(None) if isinstance(e, FeedbackEvent)]
    for event in logged:
        decision = in_order.select(event.embedding, force=event.arm)
        in_order.record(decision.id, quality=event.quality, cost=event.cost)
    np.testing.assert_allclose(folded.bandit.stats.A, in_order.bandit.stats.A, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        folded.bandit.stats.B, in_order.bandit.stats.B, rtol=1e-9, atol=1e-12
    )
    sums = Router(MODELS, embedder=None, growth=None)
    for event in logged:
        sums.partial_fit(event.embedding[None, :], [event.arm], [event.quality], [event.cost])
    np.testing.assert_allclose(sums.bandit.stats.A, expected.bandit.stats.A, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sums.bandit.stats.B, expected.bandit.stats.B, rtol=1e-9, atol=1e-12)
    if kind == "sqlite":
        assert SQLiteStore(where).pending_count() == 0  # every ledger entry was settled


def test_an_expired_decision_gets_the_typed_error_and_changes_nothing(target):
    kind, where = target
    store = SQLiteStore(where) if kind == "sqlite" else _redis(where)
    deciding = Router(MODELS, embedder=None, store=store, feedback_ttl=0.3, seed=0)
    late, on_time = deciding.select(np.ones(DIM)), deciding.select(-np.ones(DIM))
    time.sleep(0.5)
    elsewhere = Router(MODELS, embedder=None, store=store, feedback_ttl=0.3)
    for router in (deciding, elsewhere):  # from memory, and from the store's ledger
        with pytest.raises(
            ExpiredDecisionError, match=f"decision {late.id} expired at .* raise feedback_ttl"
        ) as info:
            router.record(late.id, quality=1.0, cost=0.001)
        assert info.value.expired_at == pytest.approx(info.value.decided_at + 0.3)
        assert router.n_updates == 0 and router.health()["feedback"]["expired"] == 1
    fresh = Router(MODELS, embedder=None, store=store, feedback_ttl=10.0)  # a longer ttl admits it
    fresh.record(on_time.id, quality=1.0, cost=0.001)
    assert fresh.n_updates == 1


def _redis(where: str) -> RedisStore:
    store = open_store("redis", where)
    assert isinstance(store, RedisStore)
    return store


def test_a_judge_a_check_and_a_person_grading_from_three_processes_end_on_the_persons_grade(
    target, tmp_path
):
    """A routing worker's judge grades every answer; two feedback-only processes, at once, grade
    each again: one as a task check (0.5), one as a person (0.0). Whatever the order they reach
    the log, every router ends where one that learned only the person's grade would be."""
    kind, where = target
    worker = Router(MODELS, embedder=None, policy=LinUCB(alpha=1.0), sync_interval=None,
                    store=SQLiteStore(where) if kind == "sqlite" else _redis(where))  # fmt: skip
    embeddings = decide_embeddings(9, 200)
    ids = tmp_path / "ids.txt"
    with ids.open("w") as handle:
        for i, x in enumerate(embeddings):
            d = worker.select(x, force=MODELS[i % 2])
            worker.record(d.id, quality=1.0, cost=0.001, source="judge")
            handle.write(f"{d.id}\n")
    regraders = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.feedback_worker", "regrade", kind, where,
             str(ids), source, quality],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, text=True,
        )
        for source, quality in (("check", "0.5"), ("human", "0.0"))
    ]  # fmt: skip
    outcomes = [p.communicate(timeout=300)[0] for p in regraders]
    assert [p.returncode for p in regraders] == [0, 0]
    assert outcomes[1].count(" corrected") == 200  # a person's grade is never refused here
    # the check's is refused where the person's came first, otherwise it was superseded later
    assert outcomes[0].count(" corrected") + outcomes[0].count(" DuplicateFeedbackError") == 200

    expected = Router(MODELS, embedder=None, policy=LinUCB(alpha=1.0))
    for i, x in enumerate(embeddings):  # the worker's own grades: its float64 vectors
        expected.partial_fit(x[None, :], [MODELS[i % 2]], [0.0], [0.001])
    worker.sync()
    fresh = _stats(kind, where)
    for stats in (worker.bandit.stats.B.tolist(), fresh["B"]):
        np.testing.assert_allclose(stats, expected.bandit.stats.B, rtol=1e-9, atol=1e-9)
    assert fresh["n_updates"] == worker.n_updates == 200
    assert {worker.grade_in_force(line)[0] for line in ids.read_text().split()} == {"human"}
    worker.close()
