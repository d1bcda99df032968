"""State: learned routing state that outlives a process.

The state file (``.npz`` + JSON header, never pickle) and the stores that hold feedback
events and snapshots for many processes (:class:`SQLiteStore`, :class:`RedisStore`).
Stores know nothing of routing: they keep records and raise their own typed errors.
"""

from metallm.state.base import (
    BudgetState,
    BudgetStore,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    Snapshot,
    StateStore,
)
from metallm.state.redis import RedisStore
from metallm.state.sqlite import SQLiteStore

__all__ = [
    "BudgetState",
    "BudgetStore",
    "DecisionRecord",
    "FeedbackEvent",
    "MalformedEvent",
    "RedisStore",
    "SQLiteStore",
    "Snapshot",
    "StateStore",
]
