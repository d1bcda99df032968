"""State: learned routing state that outlives a process.

The state file (``.npz`` + JSON header, never pickle) and the stores that hold feedback
events and snapshots for many processes (`SQLiteStore`, `RedisStore`).
Stores know nothing of routing: they keep records and raise their own typed errors.
"""

from metallm.state._base import (
    AnswerStore,
    BudgetState,
    BudgetStore,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    PoolStore,
    SettingsStore,
    Snapshot,
    StateStore,
    snapshot_bytes,
)
from metallm.state._redis import RedisStore
from metallm.state._sqlite import SQLiteStore
from metallm.state._state_file import FORMAT_VERSION, read_state, write_state

__all__ = [
    "FORMAT_VERSION",
    "BudgetState",
    "AnswerStore",
    "BudgetStore",
    "DecisionRecord",
    "FeedbackEvent",
    "MalformedEvent",
    "PoolStore",
    "RedisStore",
    "SQLiteStore",
    "SettingsStore",
    "Snapshot",
    "StateStore",
    "read_state",
    "snapshot_bytes",
    "write_state",
]
