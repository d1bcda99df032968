"""How a router learns from feedback: in this process, or through a store many processes share.

A router picks one `Learning` strategy when it is built and never asks again whether it
has a store: `LocalLearning` learns each outcome at once in this process;
`SharedLearning` writes it to the store's log and
folds the log, so every process sharing the store learns the same events in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from metallm.exceptions import DuplicateFeedbackError, UnknownDecisionError
from metallm.serving._grades import GradeBook, GradeInForce
from metallm.serving._learner import Learner
from metallm.serving._ledger import PendingDecisions
from metallm.state import (
    BudgetStore,
    StateStore,
)

if TYPE_CHECKING:
    from metallm.serving._decisions import Decision

__all__ = ["Learning", "LocalLearning", "Pending"]


class Pending(NamedTuple):
    """A decision waiting for its feedback, wherever it was found (memory or a store's ledger)."""

    arm: int
    vector: np.ndarray
    """The embedding, or the features when the router learns on features (see ``learns_on_embeddings``)."""
    time: float
    prompt: str | None
    propensity: float | None
    shadows: str | None
    cost: float | None
    latency: float | None


class Learning(Protocol):
    """What a router's decision and feedback paths ask of its learning strategy."""

    @property
    def store(self) -> StateStore | None:
        """The shared store (None: this process only)."""

    ledger_errors: int
    """Decisions the store's ledger could not take when they were made."""
    grades: GradeBook
    """The latest graded decisions' grades in force (what a later grade may replace)."""
    before_sync: Callable[[], None]
    """Called at the start of each sync (a budget reads the shared spend there)."""
    snapshot_every: int | None
    sync_interval: float | None
    restored_from_log: bool
    quarantined_events: int
    quarantine: list[tuple[str, str | None, str]]

    def usable(self) -> bool:
        """Whether to try the store now (always, without one)."""

    def failed(self, error: Exception) -> None:
        """A store operation failed: back off."""

    def succeeded(self) -> None:
        """A store operation worked."""

    @property
    def learns_on_embeddings(self) -> bool:
        """Whether pending decisions keep the embedding (not the features) for learning."""

    @property
    def keeps_prompts(self) -> bool:
        """Whether decisions keep the prompt's text (a store that stores prompts)."""

    def keep(
        self,
        decisions: Sequence[Decision],
        vectors: Sequence[np.ndarray] | np.ndarray,
        now: float,
        run_id: str | None,
        session: str | None,
    ) -> None:
        """Keep decisions just made where another process can grade them."""

    def sync_if_due(self) -> None:
        """Catch up with other processes when due (never waits)."""

    def attach_cost(
        self, decision_id: str, cost: float, latency: float | None, in_memory: bool
    ) -> None:
        """Keep a decision's measured cost for its feedback (``in_memory``: this process has it)."""

    def look_up(self, decision_id: str, pool_index: dict[str, int]) -> Pending | None:
        """A pending decision this process does not hold in memory (None: unknown)."""

    def run_decision(self, run_id: str) -> str | None:
        """The decision made for a framework's run id, outside this process's memory."""

    def learn(
        self,
        decision_id: str,
        pending: Pending,
        quality: float,
        cost: float,
        latency: float | None,
        failure: bool,
        now: float,
        source: str,
    ) -> bool:
        """Settle the decision and learn its outcome; True when the log has new events to fold."""

    def correct(
        self, decision_id: str, in_force: GradeInForce, quality: float, source: str, now: float
    ) -> bool:
        """Replace a decision's grade in force by a later one; True when the log has it to fold."""

    def unknown(self, decision_id: str) -> UnknownDecisionError:
        """The error for a decision id this router cannot find, saying where it looked."""

    def where(self) -> str:
        """Where else than memory decisions were looked for (for error messages)."""

    def sync(self, *, wait: bool = True) -> int:
        """Fold what other processes learned; the number of events applied."""

    def wait_for_sync(self, timeout: float | None = None) -> None:
        """Wait for a background sync."""

    def snapshot(self) -> None:
        """Write the statistics where a new process starts from."""

    def close(self, timeout: float) -> None:
        """Hand over what waits and close connections."""

    def write_pool_change(self, action: str, name: str) -> None:
        """Share a pool change before it is made here."""

    def budget_book(self) -> BudgetStore | None:
        """Where a budget's spend is summed (None: in this process)."""

    def health(self) -> dict[str, Any]:
        """The strategy's part of ``Router.health()``."""


class LocalLearning:
    """Learning in this process only: each outcome is learned the moment it is recorded.

    Args:
        learner: The router's learned state.
        ledger: The decisions awaiting feedback, in memory.
    """

    store: StateStore | None = None
    ledger_errors = 0
    snapshot_every: int | None = None
    sync_interval: float | None = None
    restored_from_log = False
    quarantined_events = 0

    def __init__(self, learner: Learner, ledger: PendingDecisions) -> None:
        self._learner = learner
        self._ledger = ledger
        self.grades = GradeBook(ledger.max_pending)
        self._kept_embeddings = False
        self.before_sync: Callable[[], None] = lambda: None
        self.quarantine: list[tuple[str, str | None, str]] = []

    def usable(self) -> bool:
        """Nothing to reach: always."""
        return True

    def failed(self, error: Exception) -> None:
        """Nothing can fail to be reached."""

    def succeeded(self) -> None:
        """Nothing to recover."""

    @property
    def learns_on_embeddings(self) -> bool:
        """Shadows, the neighbours' memory and capacity growth learn on embeddings, else features."""
        learner = self._learner
        growth = learner.bandit.growth
        if learner.shadows or (growth is not None and growth.active):
            self._kept_embeddings = True  # once kept, always: pending entries hold embeddings
        return self._kept_embeddings or learner.bandit.neighbours is not None

    keeps_prompts = False

    def keep(
        self,
        decisions: Sequence[Decision],
        vectors: Sequence[np.ndarray] | np.ndarray,
        now: float,
        run_id: str | None,
        session: str | None,
    ) -> None:
        """Nothing to share: the decisions are in this process's memory."""

    def sync_if_due(self) -> None:
        """Nothing to catch up with."""

    def attach_cost(
        self, decision_id: str, cost: float, latency: float | None, in_memory: bool
    ) -> None:
        """A cost for a decision not in memory is an error (settled: duplicate; else unknown)."""
        if not in_memory:
            self._ledger.get(decision_id)  # a settled id: DuplicateFeedbackError
            raise self.unknown(decision_id)

    def look_up(self, decision_id: str, pool_index: dict[str, int]) -> Pending | None:
        """Only memory holds decisions here."""
        return None

    def run_decision(self, run_id: str) -> str | None:
        """Only memory holds run ids here."""
        return None

    def learn(
        self,
        decision_id: str,
        pending: Pending,
        quality: float,
        cost: float,
        latency: float | None,
        failure: bool,
        now: float,
        source: str,
    ) -> bool:
        """Settle and learn in one step under the learner's lock (a second feedback is refused)."""
        learner = self._learner
        with learner.lock:
            if self._ledger.take(decision_id) is None:
                raise DuplicateFeedbackError(
                    f"feedback for decision {decision_id} was already recorded"
                )
            if self.learns_on_embeddings:
                learner.learn(pending.arm, pending.vector, quality, cost, latency, failure)
            else:
                learner.update(pending.arm, pending.vector, quality, cost, latency, failure)
            if not failure:
                self.grades.put(
                    decision_id,
                    GradeInForce(learner.pool.names[pending.arm], pending.vector, quality, source,
                                 pending.time, pending.propensity, pending.shadows),
                )  # fmt: skip
        return False

    def correct(
        self, decision_id: str, in_force: GradeInForce, quality: float, source: str, now: float
    ) -> bool:
        """Move the statistics to the later grade at once (nothing to share)."""
        learner = self._learner
        with learner.lock:
            arm = learner.pool.index[in_force.arm]
            learner.correct(arm, in_force.vector, in_force.quality, quality,
                            transformed=not self.learns_on_embeddings)  # fmt: skip
            self.grades.put(decision_id, in_force._replace(quality=quality, source=source))
        return False

    def unknown(self, decision_id: str) -> UnknownDecisionError:
        """Unknown here: never issued, or evicted from memory."""
        return UnknownDecisionError(
            f"unknown decision id {decision_id!r}: never issued by this router, or evicted (only "
            f"the last {self._ledger.max_pending} pending decisions are kept in memory; raise "
            "max_pending, or give the router a store)"
        )

    def where(self) -> str:
        """Where else decisions were looked for, for error messages ("" here: only memory)."""
        return ""

    def sync(self, *, wait: bool = True) -> int:
        """No store: nothing to fold."""
        return 0

    def wait_for_sync(self, timeout: float | None = None) -> None:
        """No background sync."""

    def snapshot(self) -> None:
        """No store to write to."""

    def close(self, timeout: float) -> None:
        """Nothing waits."""

    def write_pool_change(self, action: str, name: str) -> None:
        """The pool is this process's alone."""

    def budget_book(self) -> BudgetStore | None:
        """A budget is summed in this process."""
        return None

    def health(self) -> dict[str, Any]:
        """Nothing of a store to report."""
        return {
            "ledger_errors": 0,
            "ledger_backlog": 0,
            "ledger_dropped": 0,
            "store": None,
            "store_position": None,
            "quarantined_events": 0,
            "store_available": None,
            "store_error": None,
            "store_identity": None,
            "store_persistence": None,
            "refused_pool_changes": 0,
            "refused_snapshots": 0,
            "refused_settings": 0,
            "superseded_grades": 0,
            "spooled_events": 0,
            "spool": None,
        }
