"""Grading off the request path: sampled, bounded, retried once, counted, never in the way."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from metallm import ConfigurationError, Router
from metallm.serving import Grade, Grader


def _router() -> Router:
    return Router(["small", "large"], embedder=None, seed=0)


def _answered(router: Router, n: int = 1) -> list[str]:
    """Decision ids of ``n`` answered calls, their cost measured (as the adapters do)."""
    ids = []
    for i in range(n):
        decision = router.select(np.full(4, float(i % 7) + 1.0))
        router.observe_cost(decision.id, 0.001)
        ids.append(decision.id)
    return ids


def test_submit_returns_at_once_and_the_grade_is_learned_in_the_background():
    router = _router()
    started = threading.Event()

    def slow_judge(prompt, answer, **_):  # noqa: ANN001, ANN003, ANN202
        started.set()
        time.sleep(0.5)
        return Grade(quality=0.9, cost_usd=0.0002, comment="fine")

    grader = router.grade_with(slow_judge, sample_rate=1.0)
    (decision_id,) = _answered(router)
    began = time.perf_counter()
    assert grader.submit(decision_id, "What is 2 + 2?", "4")
    waited = time.perf_counter() - began
    assert started.wait(5)
    assert waited < 0.5 / 5  # the caller did not wait for the judge's half second
    assert router.n_updates == 0
    assert grader.wait(10)
    assert router.n_updates == 1 and sum(router.counts.values()) == 1
    stats = router.health()["grading"][0]
    assert (stats["graded"], stats["spent_usd"], stats["queued"]) == (1, 0.0002, 0)
    grader.close()


def test_the_sample_is_decided_by_the_decision_id_the_same_in_every_process():
    one = Grader(lambda d, q: None, lambda p, a, **_: 1.0, sample_rate=0.3)
    other = Grader(lambda d, q: None, lambda p, a, **_: 1.0, sample_rate=0.3)
    ids = [f"router-{i}" for i in range(4000)]
    chosen = [one.samples(i) for i in ids]
    assert chosen == [other.samples(i) for i in ids]
    assert 0.27 < np.mean(chosen) < 0.33
    one.close(), other.close()


def test_a_failing_judge_is_retried_once_then_counted_and_never_raises():
    router = _router()
    calls = {"n": 0}

    def flaky(prompt, answer, **_):  # noqa: ANN001, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("the judge's provider timed out")
        return 0.7

    grader = router.grade_with(flaky, sample_rate=1.0)
    first, second = _answered(router, 2)
    grader.submit(first, "q", "a")
    assert grader.wait(10)
    grader.judge = lambda p, a, **_: (_ for _ in ()).throw(RuntimeError("down"))
    grader.submit(second, "q", "a")
    assert grader.wait(10)
    stats = grader.stats()
    assert (stats["graded"], stats["retried"], stats["failed"]) == (1, 2, 1)
    assert router.n_updates == 1  # the failed one taught nothing
    grader.close()


def test_a_full_queue_drops_and_counts_instead_of_waiting():
    router = _router()
    inside, release = threading.Event(), threading.Event()

    def blocked(prompt, answer, **_):  # noqa: ANN001, ANN003, ANN202
        inside.set()
        release.wait(10)
        return 1.0

    grader = router.grade_with(blocked, sample_rate=1.0, max_queue=2)
    ids = _answered(router, 5)
    assert grader.submit(ids[0], "q", "a")
    assert inside.wait(5)  # the judge holds the first; two more fit in the queue
    assert [grader.submit(i, "q", "a") for i in ids[1:]] == [True, True, False, False]
    assert grader.stats()["dropped"] == 2
    release.set()
    assert grader.wait(10)
    assert grader.stats()["graded"] == 3
    grader.close()


def test_the_judges_own_budget_stops_grading_and_its_spend_is_kept_apart():
    router = _router()
    grader = router.grade_with(
        lambda p, a, **_: Grade(quality=1.0, cost_usd=0.01), sample_rate=1.0, budget_usd=0.025
    )
    for decision_id in _answered(router, 4):
        grader.submit(decision_id, "q", "a")
    assert grader.wait(10)
    stats = grader.stats()
    assert (stats["graded"], stats["over_budget"]) == (3, 1)
    assert stats["spent_usd"] == pytest.approx(0.03)
    assert router.budget_status() is None  # routing spend is not the judge's
    grader.close()


def test_a_grade_the_router_refuses_is_counted_not_raised():
    router = _router()
    grader = router.grade_with(lambda p, a, **_: 1.0, sample_rate=1.0)
    (decision_id,) = _answered(router)
    router.record(decision_id, quality=0.0)  # a user's thumbs came first
    grader.submit(decision_id, "q", "a")
    bad = router.grade_with(lambda p, a, **_: "excellent", sample_rate=1.0)  # not a grade
    bad.submit(_answered(router)[0], "q", "a")
    assert grader.wait(10) and bad.wait(10)
    assert grader.stats()["refused"] == 1 and bad.stats()["failed"] == 1
    grader.close(), bad.close()


def test_close_leaves_the_queued_answers_ungraded_and_counted():
    router = _router()
    release = threading.Event()
    grader = router.grade_with(lambda p, a, **_: release.wait(10) and 1.0, sample_rate=1.0)
    for decision_id in _answered(router, 3):
        grader.submit(decision_id, "q", "a")
    time.sleep(0.1)
    release.set()
    grader.close()
    stats = grader.stats()
    assert stats["graded"] + stats["dropped"] == 3 and stats["queued"] == 0


@pytest.mark.parametrize(
    "kwargs", [{"sample_rate": 0.0}, {"sample_rate": 1.5}, {"max_queue": 0}, {"budget_usd": -1}]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ConfigurationError):
        _router().grade_with(lambda p, a, **_: 1.0, **kwargs)
