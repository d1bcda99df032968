"""Several grades for one decision: a later grade from a higher-ranked source replaces the one in force."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metallm import LinUCB, Router
from metallm.exceptions import DuplicateFeedbackError, ExpiredDecisionError, InvalidFeedbackError
from metallm.serving import Feedback

ARMS = ["a", "b"]


def _router(**kwargs) -> Router:  # noqa: ANN003
    return Router(ARMS, embedder=None, policy=LinUCB(alpha=0.0), seed=0, **kwargs)


def _queries(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6))


def _grade_all(router: Router, X: np.ndarray, quality, source: str = "check") -> list:  # noqa: ANN001
    made = []
    for i, x in enumerate(X):
        d = router.select(x, force=ARMS[i % 2])
        router.record(d.id, quality=quality(i), cost=0.01 * (1 + i % 2), source=source)
        made.append(d)
    return made


def _same_predictions(a: Router, b: Router, X: np.ndarray) -> bool:
    pa, pb = a.predict(X, widths=False), b.predict(X, widths=False)
    return np.allclose(pa.quality, pb.quality) and np.allclose(pa.cost, pb.cost)


def test_a_person_overriding_the_judge_leaves_the_router_as_if_only_the_person_had_graded():
    X = _queries()
    judged, reference = _router(), _router()
    made = _grade_all(judged, X, lambda i: 1.0, source="judge")
    for i in range(0, len(X), 3):  # a person disagrees with the judge on every third answer
        judged.record(made[i].id, quality=0.0, source="human")
    _grade_all(reference, X, lambda i: 0.0 if i % 3 == 0 else 1.0)
    assert _same_predictions(judged, reference, X)
    assert judged.n_updates == reference.n_updates == len(X)  # each call learned once
    assert judged.grade_in_force(made[0].id) == ("human", 0.0)
    assert judged.grade_in_force(made[1].id) == ("judge", 1.0)
    assert judged.health()["feedback"]["corrected"] == len(range(0, len(X), 3))


def test_the_shadows_follow_the_later_grade_too():
    X = _queries()
    shadow_of_judged, shadow_of_reference = _router(), _router()
    judged = _router(shadows={"s": shadow_of_judged})
    reference = _router(shadows={"s": shadow_of_reference})
    made = _grade_all(judged, X, lambda i: 1.0, source="judge")
    judged.record(made[4].id, quality=0.2, source="human")
    _grade_all(reference, X, lambda i: 0.2 if i == 4 else 1.0)
    assert _same_predictions(shadow_of_judged, shadow_of_reference, X)


@pytest.mark.parametrize(
    ("first", "later"),
    [("human", "judge"), ("human", "check"), ("check", "judge"), ("check", "check"),
     ("judge", "judge"), ("human", "human")],
)  # fmt: skip
def test_a_later_grade_ranked_at_or_below_the_one_in_force_is_refused(first, later):
    router = _router()
    d = router.select(_queries(1)[0])
    router.record(d.id, quality=0.7, cost=0.01, source=first)
    before = router.predict(_queries(5), widths=False).quality
    with pytest.raises(DuplicateFeedbackError, match=f"already recorded.*graded by '{first}'"):
        router.record(d.id, quality=0.1, source=later)
    assert router.grade_in_force(d.id) == (first, 0.7)
    assert np.array_equal(router.predict(_queries(5), widths=False).quality, before)
    assert router.health()["feedback"]["duplicate"] == 1


def test_judge_then_check_then_person_each_replaces_the_one_before():
    router, reference = _router(), _router()
    x = _queries(1)[0]
    d = router.select(x, force="a")
    router.record(d.id, quality=0.9, cost=0.01, source="judge")
    router.record(d.id, quality=0.5, source="check")
    router.record(d.id, quality=0.1, source="human")
    r = reference.select(x, force="a")
    reference.record(r.id, quality=0.1, cost=0.01)
    assert router.grade_in_force(d.id) == ("human", 0.1)
    assert _same_predictions(router, reference, _queries(5))


def test_an_unknown_source_is_refused_with_the_sources_listed():
    router = _router()
    d = router.select(_queries(1)[0])
    with pytest.raises(InvalidFeedbackError, match=r"one of \['judge', 'check', 'human'\]"):
        router.record(d.id, quality=1.0, cost=0.01, source="boss")
    assert router.grade_in_force(d.id) is None


def test_a_later_grade_past_the_feedback_window_is_expired():
    router = _router(feedback_ttl=0.3)
    d = router.select(_queries(1)[0])
    router.record(d.id, quality=1.0, cost=0.01, source="judge")
    time.sleep(0.4)
    with pytest.raises(ExpiredDecisionError):
        router.record(d.id, quality=0.0, source="human")
    assert router.grade_in_force(d.id) == ("judge", 1.0)


def test_a_later_grade_by_run_id_and_in_bulk():
    router = _router()
    X = _queries(3)
    made = [router.select(x, run_id=f"run-{i}") for i, x in enumerate(X)]
    for d in made:
        router.record(d.id, quality=1.0, cost=0.01, source="judge")
    router.record_run("run-0", quality=0.0, source="human")
    summary = router.record_many(
        [Feedback(run_id="run-1", quality=0.0, source="human"),
         Feedback(decision_id=made[2].id, quality=0.5, source="judge")]
    )  # fmt: skip
    assert (summary.recorded, summary.duplicate) == (1, 1)
    assert [router.grade_in_force(d.id) for d in made] == [
        ("human", 0.0), ("human", 0.0), ("judge", 1.0)
    ]  # fmt: skip
    with pytest.raises(DuplicateFeedbackError, match="feedback for run 'run-0' was already"):
        router.record_run("run-0", quality=1.0, source="check")  # below the person's grade


def test_the_judges_grade_after_a_persons_is_refused_and_counted_by_the_grader():
    router = _router()
    d = router.select(_queries(1)[0])
    router.record(d.id, quality=0.0, cost=0.01, source="human")
    grader = router.grade_with(lambda prompt, answer, **_: 1.0, sample_rate=1.0)
    grader.submit(d.id, "q", "a")
    assert grader.wait(10)
    assert grader.stats()["refused"] == 1
    assert router.grade_in_force(d.id) == ("human", 0.0)
    grader.close()


def test_a_person_replaces_the_judges_background_grade():
    router = _router()
    d = router.select(_queries(1)[0])
    router.observe_cost(d.id, 0.01)
    grader = router.grade_with(lambda prompt, answer, **_: 1.0, sample_rate=1.0)
    grader.submit(d.id, "q", "a")
    assert grader.wait(10)
    assert router.grade_in_force(d.id) == ("judge", 1.0)
    router.record(d.id, quality=0.0, source="human")
    assert router.grade_in_force(d.id) == ("human", 0.0)
    grader.close()
