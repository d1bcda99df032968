"""The decisions awaiting feedback in this process's memory: compact, bounded, with a time to live.

A pending entry keeps only what learning from the decision needs: the arm, the vector to
learn on (the features without a store; the float32 embedding with one, since every process
folds the store's events from embeddings), the time it was made and the framework's run id.
That is about 1.3 KiB for the default 128-d features, whatever the pool's size. With a store,
this is a cache in front of the store's ledger, which any process can read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from metallm.exceptions import ConfigurationError, DuplicateFeedbackError

__all__ = ["PendingDecisions", "PendingEntry"]


class PendingEntry(NamedTuple):
    """What a pending decision keeps in memory."""

    arm: int
    vectors: np.ndarray | list[np.ndarray]
    """Features (no store) or float32 embeddings (with a store): this decision's is ``vectors[row]``
    (a batch's decisions share one matrix, so none costs a numpy view of its own)."""
    row: int
    time: float
    """When the decision was made (Unix time)."""
    run_id: str | None = None
    prompt: str | None = None
    propensity: float | None = None
    """The probability that the policy chose ``arm`` (carried into the feedback event)."""
    shadows: str | None = None
    """What each shadow router would have chosen (JSON), carried into the feedback event."""


class PendingDecisions:
    """Pending decisions by id, the cost observed for each, and the ids already settled.

    At most ``max_pending`` are kept; older ones are evicted (counted in `evicted`).
    Not thread-safe on its own: the router calls it under its lock.
    """

    def __init__(self, max_pending: int) -> None:
        if max_pending < 1:
            raise ConfigurationError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.evicted = 0
        """Decisions dropped from memory before their feedback arrived."""
        self._pending: OrderedDict[str, PendingEntry] = OrderedDict()
        self._costs: dict[str, float] = {}
        self._latencies: dict[str, float] = {}
        self._runs: dict[str, str] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._settled_runs: OrderedDict[str, str] = OrderedDict()
        """Run ids whose decision had its feedback here, and that decision."""

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, decision_id: object) -> bool:
        return decision_id in self._pending

    def add(self, decision_id: str, entry: PendingEntry) -> None:
        """Keep one decision until its feedback arrives."""
        self._pending[decision_id] = entry
        if entry.run_id is not None:
            self._runs[entry.run_id] = decision_id
        if len(self._pending) > self.max_pending:
            self._evict()

    def add_many(self, items: Iterable[tuple[str, PendingEntry]]) -> None:
        """Keep many decisions (one dict update; batches carry no run ids)."""
        self._pending.update(items)
        if len(self._pending) > self.max_pending:
            self._evict()

    def get(self, decision_id: str) -> PendingEntry | None:
        """The pending entry, or None; `DuplicateFeedbackError` when it was settled here."""
        entry = self._pending.get(decision_id)
        if entry is None and decision_id in self._settled:
            raise DuplicateFeedbackError(
                f"feedback for decision {decision_id} was already recorded"
            )
        return entry

    def take(self, decision_id: str) -> PendingEntry | None:
        """Settle a pending decision and return its entry; None when it is not pending (any more)."""
        entry = self._pending.get(decision_id)
        if entry is not None:
            self.settle(decision_id)
        return entry

    def by_run(self, run_id: str) -> str | None:
        """The pending decision made for this run id, if it is in memory."""
        return self._runs.get(run_id)

    def observe_cost(self, decision_id: str, cost: float, latency: float | None = None) -> bool:
        """Attach the measured cost (USD) and latency (seconds); False when not in memory."""
        if decision_id not in self._pending:
            return False
        self._costs[decision_id] = cost
        if latency is not None:
            self._latencies[decision_id] = latency
        return True

    def cost_of(self, decision_id: str) -> float | None:
        """The cost attached by `observe_cost`, if any."""
        return self._costs.get(decision_id)

    def latency_of(self, decision_id: str) -> float | None:
        """The latency attached by `observe_cost`, if any."""
        return self._latencies.get(decision_id)

    def discard(self, decision_id: str) -> None:
        """Drop a decision that was never used (no feedback will come for it)."""
        entry = self._pending.pop(decision_id, None)
        if entry is not None and entry.run_id is not None:
            self._runs.pop(entry.run_id, None)
        self._costs.pop(decision_id, None)
        self._latencies.pop(decision_id, None)

    def run_settled(self, run_id: str) -> bool:
        """Whether the decision made for this run id already had its feedback here."""
        return run_id in self._settled_runs

    def settled_decision(self, run_id: str) -> str | None:
        """The decision made for this run id, when it already had its feedback here."""
        return self._settled_runs.get(run_id)

    def settle(self, decision_id: str) -> None:
        """Its feedback was learned: forget it, and refuse a second feedback for it."""
        entry = self._pending.pop(decision_id, None)
        if entry is not None and entry.run_id is not None:
            self._runs.pop(entry.run_id, None)
            self._settled_runs[entry.run_id] = decision_id
            if len(self._settled_runs) > self.max_pending:
                self._settled_runs.popitem(last=False)
        if self._costs:
            self._costs.pop(decision_id, None)
        if self._latencies:
            self._latencies.pop(decision_id, None)
        self._settled[decision_id] = None
        if len(self._settled) > self.max_pending:
            self._settled.popitem(last=False)

    def _evict(self) -> None:
        while len(self._pending) > self.max_pending:
            decision_id, entry = self._pending.popitem(last=False)
            self._costs.pop(decision_id, None)
            self._latencies.pop(decision_id, None)
            if entry.run_id is not None:
                self._runs.pop(entry.run_id, None)
            self.evicted += 1
