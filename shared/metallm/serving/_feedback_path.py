"""The feedback path: costs attached, outcomes recorded, what became of every feedback call.

Every outcome takes the same steps, whatever the router's learning strategy: find the pending
decision (in memory, else where the strategy keeps decisions), refuse it when expired or
without a known cost, hand it to the strategy to learn, count it, and spend its cost from the
budget when it was not known before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

from metallm.exceptions import (
    DuplicateFeedbackError,
    ExpiredDecisionError,
    InvalidFeedbackError,
    UnknownDecisionError,
)
from metallm.serving._checks import check_cost, check_id, check_latency, check_quality
from metallm.serving._failover import Cooldown
from metallm.serving._grades import DEFAULT_SOURCE, GRADE_SOURCES, check_source, source_rank
from metallm.serving._health import RouterHealth
from metallm.serving._learner import Learner
from metallm.serving._learning import Learning, Pending
from metallm.serving._ledger import PendingDecisions
from metallm.serving._telemetry import NO_TELEMETRY, Telemetry

__all__ = ["FeedbackPath"]


class FeedbackPath:
    """Records a router's feedback and counts each call's outcome (see ``Router.record``).

    It is also the book a routed call writes failures and bookkeeping trouble to
    (`CallBook`).

    Args:
        learner: The router's learned state (its lock guards the counters too).
        ledger: Decisions awaiting feedback, in memory.
        learning: Where outcomes are learned (this process, or a store's log).
        cooldown: Models left out after repeated failures.
        feedback_ttl: Seconds a decision waits for its feedback.
        spend: Counts a paid call's cost against the budget (a no-op without one).
        clock: Seconds since the epoch.
    """

    def __init__(
        self,
        learner: Learner,
        ledger: PendingDecisions,
        learning: Learning,
        cooldown: Cooldown,
        feedback_ttl: float,
        spend: Callable[[float], None],
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._learner = learner
        self._telemetry = telemetry
        self._ledger = ledger
        self._learning = learning
        self._cooldown = cooldown
        self._ttl = feedback_ttl
        self._spend = spend
        self._clock = clock
        self._lock: threading.RLock = learner.lock
        self.counts = {"recorded": 0, "unknown": 0, "expired": 0, "duplicate": 0, "corrected": 0}
        """Feedback calls by outcome."""
        self.bookkeeping_errors = 0
        """Times metallm's own records failed after a provider answered (logged; the answer was kept)."""

    # -- recording ----------------------------------------------------------------------
    def record(
        self,
        decision_id: str,
        quality: float,
        cost: float | None,
        latency: float | None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        """Check the caller's values and learn the outcome; counts what became of it (see ``Router.record``)."""
        q = check_quality(quality)
        given = None if cost is None else check_cost(cost)
        seconds = None if latency is None else check_latency(latency)
        grader = check_source(source)
        try:
            check_id(decision_id, "decision")
            try:
                self._learn(decision_id, q, given, seconds, failure=False, source=grader)
            except DuplicateFeedbackError as first:
                self._correct(decision_id, q, grader, first)
                self._count("corrected", decision_id, q)
                return
        except DuplicateFeedbackError:
            self._count("duplicate", decision_id, q)
            raise
        except ExpiredDecisionError:
            self._count("expired", decision_id, q)
            raise
        except UnknownDecisionError:
            self._count("unknown", decision_id, q)
            raise
        self._telemetry.feedback(decision_id, "recorded", q)

    def decision_of_run(self, run_id: str, source: str = DEFAULT_SOURCE) -> str:
        """The decision that answered a framework call (a graded one, for a later grade).

        Args:
            run_id: The framework's id of the call.
            source: Who grades it: a decision already graded in this process is returned when
                ``source`` could replace its grade (``record`` then decides).

        Raises:
            UnknownDecisionError: No decision was made for this run id (or it was evicted).
            DuplicateFeedbackError: Its feedback was already recorded in this process.
        """
        check_id(run_id, "run")
        with self._lock:
            decision_id = self._ledger.by_run(run_id)
        if decision_id is None:
            decision_id = self._learning.run_decision(run_id)
        if decision_id is None:
            with self._lock:
                settled = self._ledger.run_settled(run_id)
                graded = self._ledger.settled_decision(run_id)
                in_force = None if graded is None else self._learning.grades.get(graded)
            if graded is not None and in_force is not None:
                if source_rank(check_source(source)) > source_rank(in_force.source):
                    return graded  # a later grade ranked above the one in force
            if settled:
                self._count("duplicate")
                raise DuplicateFeedbackError(f"feedback for run {run_id!r} was already recorded")
            self._count("unknown")
            raise UnknownDecisionError(
                f"no decision was made for run {run_id!r} here{self._learning.where()}: give the "
                "run id of the model call, of the chain that called it, or of the root run "
                "(the one LangSmith shows; adapters map those to the model call in the process "
                f"that made it), or the decision id; decisions wait {self._ttl:g} s for feedback"
            )
        return decision_id

    def record_failure(self, decision_id: str) -> None:
        """Learn a provider's failure on this decision: quality 0, cost 0, counted apart."""
        self._learn(decision_id, 0.0, 0.0, None, failure=True, source=DEFAULT_SOURCE)

    def _learn(
        self,
        decision_id: str,
        quality: float,
        given: float | None,
        latency: float | None,
        *,
        failure: bool,
        source: str,
    ) -> None:
        now = self._clock()
        with self._lock:
            entry = self._ledger.get(decision_id)  # DuplicateFeedbackError when settled here
            if entry is not None:
                pending: Pending | None = Pending(
                    entry.arm,
                    entry.vectors[entry.row],
                    entry.time,
                    entry.prompt,
                    entry.propensity,
                    entry.shadows,
                    self._ledger.cost_of(decision_id),
                    self._ledger.latency_of(decision_id),
                )
        if entry is None:
            pending = self._learning.look_up(decision_id, self._learner.pool.index)
            if pending is None:
                raise self._learning.unknown(decision_id)
        assert pending is not None
        if now > pending.time + self._ttl:
            raise ExpiredDecisionError(decision_id, pending.time, pending.time + self._ttl)
        c = given if given is not None else pending.cost
        if c is None:
            raise InvalidFeedbackError(
                f"no cost known for decision {decision_id}: pass cost= (USD)"
            )
        seconds = latency if latency is not None else pending.latency
        in_the_log = self._learning.learn(
            decision_id, pending, quality, c, seconds, failure, now, source
        )
        if not failure:
            with self._lock:
                self.counts["recorded"] += 1
            if pending.cost is None:
                self._spend(c)  # a cost first known from the feedback
        if in_the_log:
            self._learning.sync()  # folds this event, and any from other processes, in log order

    def _correct(
        self, decision_id: str, quality: float, source: str, first: DuplicateFeedbackError
    ) -> None:
        """A later grade of a graded decision: it replaces the grade in force if ranked above it.

        Raises:
            DuplicateFeedbackError: The grade in force ranks at or above ``source``, or it is no
                longer known here.
            ExpiredDecisionError: Later than ``feedback_ttl`` after the decision.
        """
        self._learning.sync()  # the grade in force may come from another process
        with self._lock:
            in_force = self._learning.grades.get(decision_id)
        if in_force is None:
            raise DuplicateFeedbackError(
                f"{first}; its grade is not among the last {self._learning.grades.size} graded "
                "decisions this router remembers, so a later grade cannot replace it"
            ) from first
        if source_rank(source) <= source_rank(in_force.source):
            order = " < ".join(GRADE_SOURCES)
            raise DuplicateFeedbackError(
                f"{first} (graded by {in_force.source!r}; a {source!r} grade replaces only a "
                f"grade ranked below it: {order})"
            ) from first
        now = self._clock()
        if now > in_force.time + self._ttl:
            raise ExpiredDecisionError(decision_id, in_force.time, in_force.time + self._ttl)
        if self._learning.correct(decision_id, in_force, quality, source, now):
            self._learning.sync()

    def grade_in_force(self, decision_id: str) -> tuple[str, float] | None:
        """Who graded a decision and its quality in force (None: not graded, or forgotten)."""
        self._learning.sync(wait=False)
        with self._lock:
            found = self._learning.grades.get(decision_id)
        return None if found is None else (found.source, found.quality)

    # -- costs --------------------------------------------------------------------------
    def observe_cost(
        self, decision_id: str, cost: float, spend: bool, latency: float | None
    ) -> None:
        """Attach the measured cost (and latency) for a later record (see ``Router.observe_cost``)."""
        c = check_cost(cost)
        seconds = None if latency is None else check_latency(latency)
        check_id(decision_id, "decision")
        if spend:
            self._spend(c)
        with self._lock:
            in_memory = self._ledger.observe_cost(decision_id, c, seconds)
        self._learning.attach_cost(decision_id, c, seconds, in_memory)

    # -- the routed call's book ---------------------------------------------------------
    def model_failed(self, arm: str) -> None:
        """Count a failure towards the model's cooldown."""
        self._cooldown.failed(arm)

    def model_answered(self, arm: str) -> None:
        """Clear the model's run of failures."""
        self._cooldown.succeeded(arm)

    def bookkeeping_failed(self) -> None:
        """Count trouble in metallm's own records after a provider answered."""
        with self._lock:
            self.bookkeeping_errors += 1

    def health(
        self,
        store: dict[str, Any],
        embedder: str,
        budget: dict[str, Any] | None,
        grading: list[dict[str, Any]] | None = None,
    ) -> RouterHealth:
        """The router's health: this path's counts, the ledger, and the parts' own reports.

        Args:
            store: The learning strategy's part (the store, the spool, the ledger backlog).
            embedder: The embedder, as text.
            budget: The budget's state (None: no budget).
            grading: Each grader's counts (``Grader.stats``).
        """
        with self._lock:
            health: dict[str, Any] = dict(
                pending_in_memory=len(self._ledger),
                evicted_from_memory=self._ledger.evicted,
                feedback=dict(self.counts),
                feedback_ttl_s=self._ttl,
                bookkeeping_errors=self.bookkeeping_errors,
                n_updates=self._learner.bandit.n_updates,
                embedder=embedder,
                budget=budget,
                grading=list(grading or []),
                **store,
            )
        return cast(RouterHealth, health)

    def _count(self, outcome: str, decision_id: str = "", quality: float | None = None) -> None:
        with self._lock:
            self.counts[outcome] += 1
        self._telemetry.feedback(decision_id, outcome, quality)
