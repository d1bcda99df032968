"""What ``Router.health()`` returns: one typed dict an operator's dashboard reads."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["RouterHealth"]


class RouterHealth(TypedDict):
    """A router's state as an operator watches it (docs/deployment.md says what to act on)."""

    pending_in_memory: int
    """Decisions waiting for feedback in this process's memory."""
    evicted_from_memory: int
    """Decisions dropped from memory before their feedback arrived."""
    feedback: dict[str, int]
    """This process's feedback calls by outcome: recorded, corrected (a later grade replaced
    the one in force), unknown, expired, duplicate."""
    feedback_ttl_s: float
    ledger_errors: int
    """Decisions the store's ledger could not take when they were made."""
    ledger_backlog: int
    ledger_dropped: int
    bookkeeping_errors: int
    """Times metallm's own records failed after a provider answered (the answer was kept)."""
    store: str | None
    store_position: str | None
    quarantined_events: int
    store_available: bool | None
    store_error: str | None
    store_identity: str | None
    store_persistence: str | None
    refused_pool_changes: int
    refused_snapshots: int
    refused_settings: int
    superseded_grades: int
    """Corrections in the log that came after a grade ranked at or above theirs (skipped)."""
    spooled_events: int
    spool: dict[str, Any] | None
    n_updates: int
    embedder: str
    budget: dict[str, Any] | None
    grading: list[dict[str, Any]]
    """Each grader's counts (``router.grade_with``): sampled, graded, dropped, failed, spend."""
