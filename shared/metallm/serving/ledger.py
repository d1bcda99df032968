"""The decisions awaiting feedback, in this process's memory (bounded; oldest evicted first)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from metallm.exceptions import ConfigurationError, DuplicateFeedbackError, UnknownDecisionError
from metallm.serving.decisions import Decision

__all__ = ["PendingDecisions"]


class PendingDecisions:
    """Pending decisions by id, the cost observed for each, and the ids already settled.

    At most ``max_pending`` are kept; older ones are evicted (counted in :attr:`evicted`).
    Not thread-safe on its own: the router calls it under its lock.
    """

    def __init__(self, max_pending: int) -> None:
        if max_pending < 1:
            raise ConfigurationError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.evicted = 0
        """Decisions dropped before their feedback arrived."""
        self._pending: OrderedDict[str, Decision] = OrderedDict()
        self._costs: dict[str, float] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, decision: Decision) -> None:
        """Keep one decision until its feedback arrives."""
        self._pending[decision.id] = decision
        if len(self._pending) > self.max_pending:
            self._evict()

    def add_many(self, decisions: Iterable[Decision]) -> None:
        """Keep many decisions (one dict update)."""
        self._pending.update((d[0], d) for d in decisions)
        if len(self._pending) > self.max_pending:
            self._evict()

    def get(self, decision_id: str) -> Decision:
        """The pending decision, or a typed error saying why there is none."""
        decision = self._pending.get(decision_id)
        if decision is not None:
            return decision
        if decision_id in self._settled:
            raise DuplicateFeedbackError(
                f"feedback for decision {decision_id} was already recorded"
            )
        raise UnknownDecisionError(
            f"unknown decision id {decision_id!r}: never issued by this router, or evicted "
            f"(only the last {self.max_pending} pending decisions are kept; raise max_pending)"
        )

    def observe_cost(self, decision_id: str, cost: float) -> None:
        """Attach the measured cost (USD) to a pending decision."""
        self.get(decision_id)
        self._costs[decision_id] = cost

    def cost_of(self, decision_id: str) -> float | None:
        """The cost attached by :meth:`observe_cost`, if any."""
        return self._costs.get(decision_id)

    def settle(self, decision_id: str) -> None:
        """Its feedback was learned: forget it, and refuse a second feedback for it."""
        del self._pending[decision_id]
        if self._costs:
            self._costs.pop(decision_id, None)
        self._settled[decision_id] = None
        if len(self._settled) > self.max_pending:
            self._settled.popitem(last=False)

    def _evict(self) -> None:
        while len(self._pending) > self.max_pending:
            decision_id, _ = self._pending.popitem(last=False)
            self._costs.pop(decision_id, None)
            self.evicted += 1
