"""Grading in a separate process: workers hand sampled answers to the store, a grader reads them.

A judge that runs inside every worker competes with the workers for CPU, connections and rate
limits, and dies with them. Instead the workers can hand each sampled answer to the store's
ledger, beside its decision (`GradingHandoff`, from ``router.hand_off_grading``: the user's
call only enqueues it, a thread writes it), and one grading process (`LedgerGrader`, or
``metallm grade``) reads the answered decisions, has the judge grade them and records each
grade as the judge's (``source="judge"``) from any process sharing the store. Answers are kept
only where prompts are (``store_prompts=True``, an opt-in): they leave the store with their
decision, when it is graded or when its feedback window ends.

>>> from metallm import Router, SQLiteStore
>>> import os, tempfile
>>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "s.sqlite"), store_prompts=True)
>>> worker = Router(["a", "b"], embedder=None, store=store)
>>> handoff = worker.hand_off_grading(sample_rate=1.0)
>>> decision = worker.select([1.0, 0.0])
>>> worker.observe_cost(decision.id, 0.001)
>>> handoff.submit(decision.id, "What is 2 + 2?", "4")
True
>>> handoff.wait(10)
True
>>> grading = Router(["a", "b"], embedder=None, store=store)  # another process, in truth
>>> grader = LedgerGrader(grading, lambda prompt, answer, **_: 1.0)
>>> grader.poll(), grader.wait(10)
(1, True)
>>> grading.grade_in_force(decision.id)
('judge', 1.0)
>>> grader.close(); handoff.close()
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from metallm.exceptions import ConfigurationError, StoreError
from metallm.serving._grading import Grade, Grader, GradingStats, Judge, samples
from metallm.state import AnswerStore, StateStore


class Router(Protocol):
    """What grading through the store needs of a router (`metallm.Router` has it)."""

    @property
    def store(self) -> StateStore | None:
        """The shared store."""

    def grade_with(
        self,
        judge: Judge | Callable[..., Grade | float],
        *,
        sample_rate: float = ...,
        max_queue: int = ...,
        budget_usd: float | None = ...,
    ) -> Grader:
        """A grader that records the judge's grades on this router."""


logger = logging.getLogger(__name__)

__all__ = ["GradingHandoff", "LedgerGrader"]

MAX_ANSWER_CHARS = 32_000
"""The longest answer handed to the store (longer ones are cut: a judge reads the head)."""


def answer_store(router: Router) -> AnswerStore:
    """The router's store, when it can keep answers for a grading process.

    Raises:
        ConfigurationError: No store, a store that cannot keep answers, or one that does not
            keep prompts (answers are kept only where prompts are).
    """
    store = router.store
    if not isinstance(store, AnswerStore):
        raise ConfigurationError(
            "grading in another process needs a shared store that keeps answers "
            "(SQLiteStore or RedisStore), got "
            + ("no store" if store is None else type(store).__name__)
        )
    if not store.store_prompts:
        raise ConfigurationError(
            f"{store} does not keep prompts: answers are kept only where prompts are, so open "
            "it with store_prompts=True to grade in another process"
        )
    return store


class GradingHandoff:
    """Hands a sampled share of answers to the store, for a grading process elsewhere.

    The same ``submit`` as a `Grader`, so the adapters' feedback handlers take either; the
    user's call only enqueues, a thread writes to the store, and what could not be written is
    counted (``stats()``).

    Args:
        router: The worker's router (its store must keep prompts).
        sample_rate: The share of answers handed off, in (0, 1], decided by the decision id
            as a `Grader` decides it.
        max_queue: The most answers waiting for the store; more are dropped and counted.

    Raises:
        ConfigurationError: A store that cannot keep answers, or bad settings.
    """

    def __init__(self, router: Router, *, sample_rate: float = 0.1, max_queue: int = 1_000) -> None:
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigurationError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be at least 1, got {max_queue}")
        self.store = answer_store(router)
        self.sample_rate = sample_rate
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("submitted", "sampled", "handed_off", "dropped", "gone", "failed"), 0
        )
        self._thread = threading.Thread(target=self._work, name="metallm-handoff", daemon=True)
        self._thread.start()

    def submit(
        self,
        decision_id: str,
        prompt: str,
        answer: str,
        *,
        reference: str | None = None,
        context: Sequence[str] | None = None,
    ) -> bool:
        """Hand an answer to the store, if it is sampled; returns at once.

        Args:
            decision_id: The routed call's decision id.
            prompt: What was asked (the store keeps it with the decision already).
            answer: What the chosen model answered.
            reference: A reference answer, if any.
            context: Retrieved passages, if any.

        Returns:
            Whether it was queued (False: not sampled, or the queue was full).
        """
        with self._lock:
            self._counts["submitted"] += 1
            if not samples(decision_id, self.sample_rate):
                return False
            self._counts["sampled"] += 1
        handoff = json.dumps(
            {
                "answer": answer[:MAX_ANSWER_CHARS],
                "prompt": prompt[:MAX_ANSWER_CHARS],
                "reference": reference,
                "context": None if context is None else list(context),
            }
        )
        try:
            self._queue.put_nowait((decision_id, handoff))
        except queue.Full:
            with self._lock:
                self._counts["dropped"] += 1
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Counts: submitted, sampled, handed_off, dropped, gone (graded or expired first), failed."""
        with self._lock:
            return {**self._counts, "queued": self._queue.qsize()}

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued answer is written (tests, shutdown).

        Args:
            timeout: Seconds at most (None: as long as it takes).
        """
        tasks = self._queue.all_tasks_done
        with tasks:
            return tasks.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (``timeout`` seconds at most), then stop.

        Args:
            timeout: Seconds to wait.
        """
        self.wait(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                decision_id, handoff = job
                try:
                    kept = self.store.keep_answer(decision_id, handoff)
                except StoreError as e:
                    with self._lock:
                        self._counts["failed"] += 1
                    logger.warning(
                        "metallm could not hand the answer of %s off: %s", decision_id, e
                    )
                    continue
                with self._lock:
                    self._counts["handed_off" if kept else "gone"] += 1
            finally:
                self._queue.task_done()


class LedgerGrader:
    """Grades the answers workers handed to the store, in this (separate) process.

    Args:
        router: A router on the workers' store (no embedder needed: it only records grades).
        judge: Grades an answer in [0, 1] (see `Judge`).
        max_queue: Answers waiting for the judge at most.
        budget_usd: The most the judge may spend (None: no cap).
        batch: Answered decisions read per poll.

    Raises:
        ConfigurationError: A store that cannot keep answers.
    """

    def __init__(
        self,
        router: Router,
        judge: Judge | Callable[..., Grade | float],
        *,
        max_queue: int = 1_000,
        budget_usd: float | None = None,
        batch: int = 100,
    ) -> None:
        self.store = answer_store(router)
        self.router = router
        self.batch = batch
        # the workers sampled already: every answer in the store is graded
        self.grader: Grader = router.grade_with(
            judge, sample_rate=1.0, max_queue=max_queue, budget_usd=budget_usd
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.unreadable = 0
        """Handed-off answers that were not metallm's JSON (skipped)."""

    def poll(self) -> int:
        """Queue for the judge every answered decision not queued before; how many.

        Raises:
            StoreError: The store cannot be read.
        """
        taken = 0
        for record, handoff in self.store.answered_decisions(self.batch):
            if record.decision_id in self._seen:
                continue
            self._seen[record.decision_id] = None
            while len(self._seen) > 100_000:
                self._seen.popitem(last=False)
            try:
                found: Any = json.loads(handoff)
                answer, prompt = str(found["answer"]), found.get("prompt") or record.prompt or ""
                context = found.get("context")
            except (ValueError, KeyError, TypeError):
                self.unreadable += 1
                continue
            self.grader.submit(
                record.decision_id,
                str(prompt),
                answer,
                reference=found.get("reference"),
                context=None if context is None else [str(c) for c in context],
            )
            taken += 1
        return taken

    def run(self, *, poll_s: float = 1.0, stop: threading.Event | None = None) -> None:
        """Poll the store and grade until ``stop`` is set (a store outage is waited out).

        Args:
            poll_s: Seconds between two polls that found nothing.
            stop: Set it to stop (None: run until interrupted).
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                found = self.poll()
            except StoreError as e:
                logger.warning("metallm grader cannot read %s: %s; trying again", self.store, e)
                found = 0
            if not found:
                stop.wait(poll_s)

    def stats(self) -> GradingStats:
        """The judge's counts (``Grader.stats``)."""
        return self.grader.stats()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued answer is graded.

        Args:
            timeout: Seconds at most.
        """
        return self.grader.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the judge's thread (answers still queued are left ungraded, counted).

        Args:
            timeout: Seconds to wait for a judge's call in progress.
        """
        self.grader.close(timeout)
