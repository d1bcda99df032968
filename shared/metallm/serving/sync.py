"""Keeping a router's learned state in step with a store shared by many processes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from metallm.exceptions import DuplicateEventError, DuplicateFeedbackError, StateFileError
from metallm.state.base import FeedbackEvent, MalformedEvent, Snapshot, StateStore

__all__ = ["StoreSync"]

logger = logging.getLogger(__name__)


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

    def due(self) -> bool:
        """Whether an automatic pull is due (``sync_interval`` seconds since the last)."""
        return (
            self.sync_interval is not None and self._clock() - self._last_pull >= self.sync_interval
        )

    def append(self, event: FeedbackEvent) -> None:
        """Write one event durably; a duplicate decision id is a :class:`DuplicateFeedbackError`."""
        try:
            self.store.append(event)
        except DuplicateEventError as e:
            raise DuplicateFeedbackError(
                f"feedback for decision {event.decision_id} is already in the store"
            ) from e

    def pull(self, apply: Callable[[str, FeedbackEvent | MalformedEvent], None]) -> int:
        """Apply the events after :attr:`position`, in the store's order; returns how many."""
        applied = 0
        for position, event in self.store.events_after(self.position):
            apply(position, event)
            self.position = position
            applied += 1
        self._since_snapshot += applied
        self._last_pull = self._clock()
        return applied

    @property
    def snapshot_due(self) -> bool:
        """Whether ``snapshot_every`` events were folded since the last snapshot."""
        return self._since_snapshot >= self.snapshot_every

    def push_snapshot(self, data: bytes) -> None:
        """Store the router's state (covering the events up to :attr:`position`)."""
        if self.position is None:
            return
        self.store.save_snapshot(Snapshot(self.position, data))
        self._since_snapshot = 0

    def restore(self, adopt: Callable[[bytes, str], None], forget: Callable[[], None]) -> None:
        """Start from the latest snapshot, which ``adopt(data, source)`` takes.

        When it is corrupt (:class:`StateFileError`), ``forget()`` is called and the whole log is
        replayed by the next pull.
        """
        try:
            snapshot = self.store.latest_snapshot()
            if snapshot is None:
                return
            adopt(snapshot.data, f"{self.store} snapshot")
            self.position = snapshot.position
        except StateFileError as e:
            logger.warning("%s; replaying the whole event log instead", e)
            self.restored_from_log = True
            self.position = None
            forget()
