"""Keeping a router's learned state in step with a store shared by many processes."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Container, Mapping

from metallm.exceptions import DuplicateEventError, DuplicateFeedbackError, StateFileError
from metallm.serving._checks import (
    MAX_COST_USD,
    MAX_LATENCY_S,
    number_problem,
    vector_problem,
)
from metallm.serving._grades import DEFAULT_SOURCE, GRADE_SOURCES, base_id, correction_id
from metallm.state import (
    FeedbackEvent,
    MalformedEvent,
    Snapshot,
    StateStore,
)

__all__ = ["MAX_ARMS", "MAX_ARM_NAME", "StoreSync", "event_problem", "pool_change_problem"]

logger = logging.getLogger(__name__)

QUARANTINE_KEPT = 1000
"""Quarantined events kept for inspection (the count goes on)."""
FOLDED_IDS_KEPT = 200_000
"""Decision ids folded from the store remembered to refuse duplicates (about 20 MB)."""


MAX_ARMS = 256
"""The most models a pool may hold, retired ones included (each costs every process memory)."""
MAX_ARM_NAME = 200
"""The longest model name, in characters."""


def pool_change_problem(
    action: str, arm: object, arms: Collection[str], active: Collection[str]
) -> str | None:
    """Why a pool change (from a caller or another client of the store) cannot be applied.

    The same checks as `Router.add_arm` and `Router.retire_arm`, so no entry of the
    store's pool list can leave a process with no model to route to, or with unbounded models.

    >>> pool_change_problem("retire", "a", ["a", "b"], ["a"])
    "'a' is the last model routed to"
    """
    if not isinstance(arm, str) or not arm or len(arm) > MAX_ARM_NAME or not arm.isprintable():
        return f"a model name must be a non-empty string of at most {MAX_ARM_NAME} printable characters, got {str(arm)[:40]!r}"
    if action == "add":
        if arm in arms:
            return None  # already known: applying it again changes nothing
        if len(arms) >= MAX_ARMS:
            return f"the pool already holds {len(arms)} models (at most {MAX_ARMS})"
        return None
    if action == "retire":
        if arm not in arms:
            return f"{arm!r} is not in the pool"
        if arm in active and len(active) <= 1:
            return f"{arm!r} is the last model routed to"
        return None
    return f"unknown pool action {str(action)[:40]!r}"


def event_problem(
    event: FeedbackEvent | MalformedEvent,
    known_arms: Collection[str],
    dimension: int | None,
    folded: Container[str],
    in_force: Mapping[str, tuple[str, float, str]] | None = None,
) -> str | None:
    """Why an event of the log cannot be learned, or None when it can.

    A correction (a later grade replacing the one in force) must name a known source, carry
    its id as ``"<decision>#<source>"``, replace a quality in [0, 1], and correct the model
    that answered (when this process folded the decision).

    >>> import numpy as np
    >>> event_problem(FeedbackEvent("d1", "a", np.ones(3), 5.0, 0.0, 0.0), {"a"}, 3, set())
    'its quality 5.0 is not a finite number in [0, 1]'
    """
    if isinstance(event, MalformedEvent):
        return event.reason
    if event.arm not in known_arms:
        return f"it names unknown model {event.arm!r} (this router's: {sorted(known_arms)})"
    embedding = event.embedding
    if embedding.ndim != 1 or embedding.shape[0] == 0:
        return f"its embedding has shape {embedding.shape}"
    if dimension is not None and embedding.shape[0] != dimension:
        return f"its embedding has {embedding.shape[0]} dimensions, the router's {dimension}"
    problem = (
        vector_problem(embedding)
        or number_problem("quality", event.quality, 1.0)
        or number_problem("cost", event.cost, MAX_COST_USD)
        or (
            None
            if event.latency is None
            else number_problem("latency", event.latency, MAX_LATENCY_S)
        )
    )
    if problem is not None:
        return problem
    if event.source is not None and event.source not in GRADE_SOURCES:
        return f"its grade source {event.source[:40]!r} is not one of {list(GRADE_SOURCES)}"
    if event.replaces is not None:
        problem = _correction_problem(event, in_force or {})
        if problem is not None:
            return problem
    if event.decision_id in folded:
        return "its decision already has feedback in the log (a duplicate)"
    return None


def _correction_problem(
    event: FeedbackEvent, in_force: Mapping[str, tuple[str, float, str]]
) -> str | None:
    """Why a correction event cannot be applied, or None."""
    assert event.replaces is not None
    problem = number_problem("replaced quality", event.replaces, 1.0)
    if problem is not None:
        return problem
    base = base_id(event.decision_id)
    if event.source is None or event.decision_id != correction_id(base, event.source):
        return f"a correction's id must be '<decision>#<source>', got {event.decision_id[:80]!r}"
    if event.failure:
        return "a correction cannot be a provider's failure"
    known = in_force.get(base)
    if known is not None and known[0] != event.arm:
        return f"it corrects decision {base[:80]!r} as answered by {event.arm!r}, not {known[0]!r}"
    return None


class StoreSync:
    """Where a router is in its store's event log, and how it catches up.

    Every process appends its feedback events and folds the log in the store's order, so
    all processes that have folded the same events hold exactly the same statistics.
    Snapshots let a new process start from "snapshot + the events after it".
    Not thread-safe on its own: the router calls it under its lock.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        snapshot_every: int,
        sync_interval: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        self.sync_interval = sync_interval
        self.position: str | None = None
        """The last event folded in (None: none yet)."""
        self.restored_from_log = False
        """True when a corrupt snapshot was skipped and the whole event log replayed."""
        self._clock = clock
        self._since_snapshot = 0
        self._last_pull = 0.0
        self.available = True
        """False from a failed store operation until one succeeds again."""
        self.quarantined_events = 0
        """Events of the log that could not be learned."""
        self.quarantine: list[tuple[str, str | None, str]] = []
        """The latest quarantined events: (position in the log, decision id, why)."""
        self._folded: OrderedDict[str, None] = OrderedDict()
        self._in_force: OrderedDict[str, tuple[str, float, str]] = OrderedDict()
        """Per decision folded, (model, quality, source) of its grade in force."""
        self.superseded_grades = 0
        """Corrections folded after a grade ranked at or above theirs (skipped, not learned)."""
        self.refused_snapshots = 0
        """Snapshots of the store that could not be adopted (corrupt, too large, foreign)."""
        self.last_error: str | None = None
        """The latest store failure, while the store is unavailable (None once it is back)."""
        self.refused_settings = 0
        """Shared settings of the store that made no sense (ignored)."""
        self.refused_pool_changes = 0
        """Pool changes of the store that could not be applied (see `pool_change_problem`)."""
        self.restored = False
        """Whether the latest snapshot was read (a store down at start is read when it is back)."""
        self._retry_at = 0.0
        self._backoff = 1.0

    # -- admission ----------------------------------------------------------------------
    def admit(
        self,
        position: str,
        event: FeedbackEvent | MalformedEvent,
        known_arms: Collection[str],
        dimension: int | None,
    ) -> bool:
        """Whether to learn ``event``; a bad one is quarantined (counted, kept, logged once)."""
        problem = event_problem(event, known_arms, dimension, self._folded, self._in_force)
        if problem is not None:
            self.quarantined_events += 1
            self.quarantine.append((position, event.decision_id, problem))
            del self.quarantine[:-QUARANTINE_KEPT]
            logger.warning(
                "metallm quarantined event %s (decision %s) of %s: %s; it is not learned",
                position,
                event.decision_id,
                self.store,
                problem,
            )
            return False
        assert isinstance(event, FeedbackEvent)
        self._folded[event.decision_id] = None
        if len(self._folded) > FOLDED_IDS_KEPT:
            self._folded.popitem(last=False)
        if event.replaces is None and not event.failure:
            self.set_in_force(
                event.decision_id, event.arm, event.quality, event.source or DEFAULT_SOURCE
            )
        return True

    def in_force(self, decision_id: str) -> tuple[str, float, str] | None:
        """(model, quality, source) of a folded decision's grade in force (None: not known)."""
        return self._in_force.get(decision_id)

    def set_in_force(self, decision_id: str, arm: str, quality: float, source: str) -> None:
        """Remember a folded decision's grade in force (a bounded memory, like the folded ids)."""
        self._in_force[decision_id] = (arm, quality, source)
        self._in_force.move_to_end(decision_id)
        if len(self._in_force) > FOLDED_IDS_KEPT:
            self._in_force.popitem(last=False)

    def refuse_pool_change(self, position: str, action: str, arm: str, problem: str) -> None:
        """Count and log a pool change of the store that cannot be applied (it is skipped)."""
        self.refused_pool_changes += 1
        logger.warning(
            "metallm refused pool change %s of %s (%s %r): %s; it is not applied",
            position,
            self.store,
            str(action)[:40],
            str(arm)[:40],
            problem,
        )

    def refuse_setting(self, name: str, value: str) -> None:
        """Count and log a shared setting of the store that makes no sense (it is ignored)."""
        self.refused_settings += 1
        logger.warning(
            "metallm ignored setting %s = %r of %s: not a value metallm writes",
            name,
            value[:40],
            self.store,
        )

    def forget_folded(self) -> None:
        """Forget which decisions were folded (the statistics start again from a snapshot)."""
        self._folded.clear()
        self._in_force.clear()

    # -- reachability -------------------------------------------------------------------
    def usable(self) -> bool:
        """Whether to try the store now: it is up, or its retry time (backoff up to 30 s) has come."""
        return self.available or self._clock() >= self._retry_at

    def failed(self, error: Exception) -> None:
        """A store operation failed: route on what is known, try again after a backoff."""
        if self.available:
            logger.warning(
                "metallm cannot reach %s (%s); routing goes on with what it has learned, "
                "feedback is spooled locally and replayed when the store is back",
                self.store,
                error,
            )
        self.available = False
        self.last_error = f"{type(error).__name__}: {str(error)[:300]}"
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, 30.0)

    def succeeded(self) -> None:
        """A store operation worked again."""
        if not self.available:
            logger.warning("metallm reached %s again", self.store)
        self.available = True
        self.last_error = None
        self._backoff = 1.0

    def due(self) -> bool:
        """Whether an automatic pull is due (``sync_interval`` seconds since the last)."""
        return (
            self.sync_interval is not None and self._clock() - self._last_pull >= self.sync_interval
        )

    def append(self, event: FeedbackEvent) -> None:
        """Write one event durably; a duplicate decision id is a `DuplicateFeedbackError`."""
        try:
            self.store.append(event)
        except DuplicateEventError as e:
            raise DuplicateFeedbackError(
                f"feedback for decision {event.decision_id} is already in the store"
            ) from e

    def fetch(self, limit: int = 1000) -> list[tuple[str, FeedbackEvent | MalformedEvent]]:
        """Up to ``limit`` events after `position` (store I/O: called outside the router's lock)."""
        events = []
        for item in self.store.events_after(self.position):
            events.append(item)
            if len(events) >= limit:
                break
        return events

    def fold(
        self,
        events: list[tuple[str, FeedbackEvent | MalformedEvent]],
        apply: Callable[[str, FeedbackEvent | MalformedEvent], None],
    ) -> int:
        """Apply fetched events in order and move `position` past them (under the router's lock)."""
        for position, event in events:
            apply(position, event)
            self.position = position
        self._since_snapshot += len(events)
        self._last_pull = self._clock()
        return len(events)

    @property
    def snapshot_due(self) -> bool:
        """Whether ``snapshot_every`` events were folded since the last snapshot."""
        return self._since_snapshot >= self.snapshot_every

    def push_snapshot(self, data: bytes) -> None:
        """Store the router's state (covering the events up to `position`)."""
        if self.position is None:
            return
        self.store.save_snapshot(Snapshot(self.position, data))
        self._since_snapshot = 0

    def restore(self, adopt: Callable[[bytes, str], None], forget: Callable[[], None]) -> None:
        """Start from the latest snapshot, which ``adopt(data, source)`` takes.

        When it is corrupt (`StateFileError`), ``forget()`` is called and the whole log is
        replayed by the next pull.
        """
        try:
            snapshot = self.store.latest_snapshot()
            self.restored = True
            if snapshot is None:
                return
            adopt(snapshot.data, f"{self.store} snapshot")
            self.position = snapshot.position
        except StateFileError as e:
            logger.warning("%s; replaying the whole event log instead", e)
            self.refused_snapshots += 1
            self.restored = True
            self.restored_from_log = True
            self.position = None
            forget()
