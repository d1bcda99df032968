"""Grading in a separate process through the store: workers hand answers off, a grader reads them.

Over a real SQLite file and a real redis-server. The worker's side only enqueues; the grading
side records the judge's grades from the store's ledger, as the judge's (``source="judge"``),
so a person's later grade still replaces them.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from metallm import LinUCB, Router
from metallm.cli import main
from metallm.exceptions import ConfigurationError
from metallm.serving import LedgerGrader
from tests.stores import open_store

ARMS = ["a", "b"]


@pytest.fixture(params=["sqlite", "redis"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "state.sqlite")
    return "redis", f"{request.getfixturevalue('redis_url')}#lg{uuid.uuid4().hex[:8]}"


def _router(target, **options) -> Router:  # noqa: ANN001, ANN003
    return Router(ARMS, embedder=None, policy=LinUCB(alpha=0.0), seed=0, sync_interval=None,
                  store=open_store(*target, store_prompts=True, **options))  # fmt: skip


def _answered(worker: Router, n: int) -> list[str]:
    ids = []
    for x in np.random.default_rng(0).normal(size=(n, 4)):
        d = worker.select(x)
        worker.observe_cost(d.id, 0.002)
        ids.append(d.id)
    return ids


def _judge(prompt: str, answer: str, **_: object) -> float:
    return 0.9 if "good" in answer else 0.1


def test_answers_handed_off_are_graded_in_another_router_as_the_judges(target):
    worker, grading = _router(target), _router(target)
    handoff = worker.hand_off_grading(sample_rate=1.0)
    ids = _answered(worker, 6)
    for i, decision_id in enumerate(ids):
        assert handoff.submit(decision_id, f"question {i}", "good" if i % 2 else "poor")
    assert handoff.wait(10) and handoff.stats()["handed_off"] == 6
    grader = LedgerGrader(grading, _judge)
    assert grader.poll() == 6 and grader.wait(10)
    assert grader.poll() == 0  # graded answers leave the store with their decisions
    assert grader.stats()["graded"] == 6
    worker.sync()
    assert worker.n_updates == 6
    assert [worker.grade_in_force(d) for d in ids] == [
        ("judge", 0.1 if i % 2 == 0 else 0.9) for i in range(6)
    ]
    worker.record(ids[0], quality=1.0, source="human")  # a person still overrides the judge
    assert worker.grade_in_force(ids[0]) == ("human", 1.0)
    grader.close(), handoff.close()


def test_only_the_sampled_share_is_handed_off_the_same_share_a_grader_would_take(target):
    worker = _router(target)
    handoff = worker.hand_off_grading(sample_rate=0.3)
    local = worker.grade_with(_judge, sample_rate=0.3)
    ids = _answered(worker, 200)
    taken = [handoff.submit(d, "q", "good") for d in ids]
    assert taken == [local.samples(d) for d in ids]
    assert 30 < sum(taken) < 90
    handoff.wait(10)
    assert len(worker.store.answered_decisions(1_000)) == sum(taken)
    local.close(), handoff.close()


def test_an_answer_to_a_decision_graded_first_is_not_kept(target):
    worker = _router(target)
    handoff = worker.hand_off_grading(sample_rate=1.0)
    (decision_id,) = _answered(worker, 1)
    worker.record(decision_id, quality=0.0, source="human")  # the user was faster
    handoff.submit(decision_id, "q", "good")
    assert handoff.wait(10)
    assert handoff.stats()["gone"] == 1 and worker.store.answered_decisions() == []
    handoff.close()


def test_answers_are_kept_only_where_prompts_are(target, tmp_path):
    plain = Router(ARMS, embedder=None, store=open_store(*target))
    with pytest.raises(ConfigurationError, match="store_prompts=True"):
        plain.hand_off_grading()
    with pytest.raises(ConfigurationError, match="no store"):
        Router(ARMS, embedder=None).hand_off_grading()
    with pytest.raises(ConfigurationError, match="store_prompts=True"):
        LedgerGrader(plain, _judge)
    plain.close()


def test_a_handoff_that_is_not_metallms_is_skipped_and_counted(target):
    worker, grading = _router(target), _router(target)
    (decision_id,) = _answered(worker, 1)
    worker.store.keep_answer(decision_id, "{not json")
    grader = LedgerGrader(grading, _judge)
    assert grader.poll() == 0 and grader.unreadable == 1
    grader.close()


def test_the_grading_loop_grades_what_arrives_until_stopped(target):
    worker, grading = _router(target), _router(target)
    handoff = worker.hand_off_grading(sample_rate=1.0)
    grader = LedgerGrader(grading, _judge)
    stop = threading.Event()
    loop = threading.Thread(target=grader.run, kwargs={"poll_s": 0.05, "stop": stop})
    loop.start()
    ids = _answered(worker, 5)
    for decision_id in ids:
        handoff.submit(decision_id, "q", "good")
    handoff.wait(10)
    for _ in range(200):
        if grader.stats()["graded"] == 5:
            break
        threading.Event().wait(0.05)
    stop.set()
    loop.join(10)
    assert grader.stats()["graded"] == 5
    grader.close(), handoff.close()


def test_metallm_grade_once_grades_the_store_from_the_command_line(target, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    worker = _router(target)
    handoff = worker.hand_off_grading(sample_rate=1.0)
    for decision_id in _answered(worker, 4):
        handoff.submit(decision_id, "q", "good")
    handoff.wait(10)
    (tmp_path / "my_judges.py").write_text(
        "def judge(prompt, answer, **_):\n    return 0.8 if 'good' in answer else 0.2\n"
    )
    monkeypatch.chdir(tmp_path)
    kind, where = target
    store = where if kind == "sqlite" else where.rpartition("#")[0]
    base = ["grade", "--store", store, "--models", "a,b"]
    if kind == "redis":
        base += ["--prefix", where.rpartition("#")[2]]
    assert main([*base, "--judge", "my_judges:judge", "--once"]) == 0
    assert "graded 4, failed 0" in capsys.readouterr().out
    worker.sync()
    assert worker.n_updates == 4
    assert main([*base, "--judge", "my_judges:nothing", "--once"]) == 2
    assert "cannot import it" in capsys.readouterr().err
    handoff.close()


def test_the_handoff_carries_reference_and_context_to_the_judge(target):
    worker, grading = _router(target), _router(target)
    handoff = worker.hand_off_grading(sample_rate=1.0)
    (decision_id,) = _answered(worker, 1)
    handoff.submit(decision_id, "Where is it?", "Paris", reference="Paris", context=["doc 1"])
    handoff.wait(10)
    seen = {}

    def judge(prompt, answer, *, reference=None, context=None):  # noqa: ANN001, ANN202
        seen.update(prompt=prompt, answer=answer, reference=reference, context=context)
        return 1.0

    grader = LedgerGrader(grading, judge)
    grader.poll(), grader.wait(10)
    assert seen == {"prompt": "Where is it?", "answer": "Paris", "reference": "Paris",
                    "context": ("doc 1",)}  # fmt: skip
    assert worker.store.answered_decisions() == []  # graded: gone from the store
    grader.close(), handoff.close()
