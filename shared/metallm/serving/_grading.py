"""Grading answers off the request path: a judge grades a sample, in the background.

Where nobody labels answers (chat, RAG, agents) the router learns from a judge: a model, an
evaluator or any function that grades an answer in [0, 1]. A `Grader` takes finished answers
without waiting (``submit`` only enqueues), keeps a sampled share of them, grades each on its
own thread, and records the grade as the decision's feedback. The user's call never waits for a
judge and never fails because of one; what is dropped, failed or refused is counted.

>>> from metallm import Router
>>> router = Router(["small", "large"], embedder=None)
>>> from metallm.serving import Grade
>>> grader = router.grade_with(lambda prompt, answer, **_: Grade(quality=1.0), sample_rate=1.0)
>>> grader.stats()["graded"]
0
>>> grader.close()
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from metallm.exceptions import ConfigurationError, DecisionError, InvalidFeedbackError

logger = logging.getLogger(__name__)

__all__ = ["AnswerSink", "Grade", "Grader", "GradingStats", "Judge", "samples"]


@dataclass(frozen=True)
class Grade:
    """A judge's grade of one answer.

    Args:
        quality: The answer's quality in [0, 1] (what the router learns).
        cost_usd: What grading it cost (the judge's own call), counted apart from routing.
        comment: The judge's reason, for people reading logs.
    """

    quality: float
    cost_usd: float | None = None
    comment: str | None = None


@runtime_checkable
class Judge(Protocol):
    """Grades an answer in [0, 1]: a model with a rubric, an evaluator, or a plain function.

    Called with the prompt and the answer, and when known the reference answer and the
    retrieved context (RAG); returns a `Grade` (or a bare number, its quality).
    """

    def __call__(
        self,
        prompt: str,
        answer: str,
        *,
        reference: str | None = None,
        context: Sequence[str] | None = None,
    ) -> Grade | float:
        """Grade ``answer`` to ``prompt``.

        Args:
            prompt: What the user asked (the routed text).
            answer: What the chosen model answered.
            reference: A reference answer, when there is one.
            context: The retrieved passages the answer should rest on (RAG).
        """
        ...


@runtime_checkable
class AnswerSink(Protocol):
    """Where the adapters' feedback handlers hand each routed answer.

    A `Grader` (a judge in this process) or a `GradingHandoff` (the store, for a grading
    process elsewhere).
    """

    def submit(
        self,
        decision_id: str,
        prompt: str,
        answer: str,
        *,
        reference: str | None = None,
        context: Sequence[str] | None = None,
    ) -> bool:
        """Take an answer for grading without waiting; whether it was taken.

        Args:
            decision_id: The routed call's decision id.
            prompt: What was asked.
            answer: What the chosen model answered.
            reference: A reference answer, if any.
            context: Retrieved passages, if any.
        """
        ...


class GradingStats(dict[str, Any]):
    """What a grader did, by count, its queue and the judge's spend.

    Keys: ``submitted``, ``sampled``, ``graded``, ``dropped`` (the queue was full, or left at
    close), ``failed`` (the judge raised twice), ``retried``, ``refused`` (the router refused
    the grade: expired or already graded), ``over_budget`` (skipped: the judge's budget was
    spent), ``queued`` and ``spent_usd``.
    """


@dataclass(frozen=True)
class _Job:
    decision_id: str
    prompt: str
    answer: str
    reference: str | None
    context: tuple[str, ...] | None


class Grader:
    """Grades a sampled share of answers with a judge, on a background thread.

    Args:
        record: Records a grade as the decision's feedback (the router's ``record``).
        judge: The judge.
        sample_rate: The share of submitted answers graded, in (0, 1]; which ones is decided
            by the decision id, so every process sharing a store samples the same decisions.
        max_queue: The most answers waiting for the judge; more are dropped and counted.
        budget_usd: The most the judge may spend in all (None: no cap); past it, answers
            are skipped and counted.

    Raises:
        ConfigurationError: A sample rate outside (0, 1], a queue smaller than 1, or a
            negative budget.
    """

    def __init__(
        self,
        record: Callable[[str, float], None],
        judge: Judge | Callable[..., Grade | float],
        *,
        sample_rate: float = 0.1,
        max_queue: int = 1_000,
        budget_usd: float | None = None,
    ) -> None:
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigurationError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be at least 1, got {max_queue}")
        if budget_usd is not None and budget_usd < 0:
            raise ConfigurationError(f"budget_usd must be at least 0, got {budget_usd}")
        self.judge = judge
        self.sample_rate = sample_rate
        self.budget_usd = budget_usd
        self._record = record
        self._queue: queue.Queue[_Job | None] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("submitted", "sampled", "graded", "dropped", "failed", "retried", "refused",
             "over_budget"),
            0,
        )  # fmt: skip
        self._spent = 0.0
        self._thread = threading.Thread(target=self._work, name="metallm-grader", daemon=True)
        self._thread.start()
        # Stop the thread before the interpreter finalizes (it may be inside a judge's call).
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the request path: never waits --------------------------------------------------
    def submit(
        self,
        decision_id: str,
        prompt: str,
        answer: str,
        *,
        reference: str | None = None,
        context: Sequence[str] | None = None,
    ) -> bool:
        """Hand an answer to the judge, if it is sampled; returns at once.

        Args:
            decision_id: The routed call's decision id.
            prompt: What was asked.
            answer: What the chosen model answered.
            reference: A reference answer, if any.
            context: Retrieved passages, if any.

        Returns:
            Whether it was queued for grading (False: not sampled, or the queue was full).
        """
        with self._lock:
            self._counts["submitted"] += 1
            if not self.samples(decision_id):
                return False
            self._counts["sampled"] += 1
        job = _Job(
            decision_id, prompt, answer, reference, None if context is None else tuple(context)
        )
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._counts["dropped"] += 1
            logger.warning("metallm grader: queue full, answer of %s not graded", decision_id)
            return False
        return True

    def samples(self, decision_id: str) -> bool:
        """Whether ``decision_id`` is among the sampled decisions (the same in every process).

        Args:
            decision_id: The decision's id.
        """
        return samples(decision_id, self.sample_rate)

    # -- what an operator reads ---------------------------------------------------------
    def stats(self) -> GradingStats:
        """The counts so far, the queue's length and the judge's spend."""
        with self._lock:
            return GradingStats(
                {**self._counts, "queued": self._queue.qsize(), "spent_usd": self._spent}
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued answer is graded (tests, batch jobs, shutdown).

        Args:
            timeout: Seconds at most (None: as long as it takes).

        Returns:
            Whether the queue was empty in time.
        """
        tasks = self._queue.all_tasks_done
        with tasks:
            return tasks.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop grading: the answers still queued are left ungraded (counted as dropped).

        Args:
            timeout: Seconds to wait for a judge's call in progress.
        """
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                with self._lock:
                    self._counts["dropped"] += 1
            self._queue.task_done()
        try:
            self._queue.put_nowait(None)
        except queue.Full:  # pragma: no cover - emptied just above
            pass
        self._thread.join(timeout)

    # -- the grading thread -------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._grade(job)
            except Exception:  # never let one answer stop the grading of the others
                assert job is not None
                logger.exception("metallm grader: grading %s failed", job.decision_id)
            finally:
                self._queue.task_done()

    def _grade(self, job: _Job) -> None:
        if self.budget_usd is not None and self._spent >= self.budget_usd:
            with self._lock:
                self._counts["over_budget"] += 1
            return
        grade = None
        for attempt in (1, 2):  # a judge's failure is retried once, then counted
            try:
                grade = _as_grade(
                    self.judge(job.prompt, job.answer, reference=job.reference, context=job.context)
                )
                break
            except Exception as e:
                if attempt == 1:
                    with self._lock:
                        self._counts["retried"] += 1
                    continue
                with self._lock:
                    self._counts["failed"] += 1
                logger.warning(
                    "metallm grader: the judge failed twice on %s: %s", job.decision_id, e
                )
                return
        assert grade is not None
        with self._lock:
            self._spent += grade.cost_usd or 0.0
        try:
            self._record(job.decision_id, grade.quality)
        except (DecisionError, InvalidFeedbackError) as e:
            with self._lock:
                self._counts["refused"] += 1
            logger.info(
                "metallm grader: the router refused the grade of %s: %s", job.decision_id, e
            )
            return
        with self._lock:
            self._counts["graded"] += 1


def samples(decision_id: str, rate: float) -> bool:
    """Whether ``decision_id`` is among a ``rate`` share of decisions (the same in every process).

    >>> samples("d1", 1.0), samples("d1", 1e-12)
    (True, False)
    """
    digest = hashlib.blake2b(decision_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def _as_grade(value: Grade | float) -> Grade:
    """A judge's return value as a `Grade` (a bare number is its quality)."""
    if isinstance(value, Grade):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Grade(quality=float(value))
    raise InvalidFeedbackError(f"a judge returns a Grade or a number in [0, 1], got {value!r}")


def _close_at_exit(ref: weakref.ref[Grader]) -> None:
    grader = ref()
    if grader is not None:
        grader.close(timeout=2.0)
