"""Typed errors raised by metallm.

The hierarchy::

    MetaLLMError
    ├── ConfigurationError        a router, policy or pool that cannot work as given
    ├── InvalidInputError         a query, embedding or feedback value that is wrong
    │   ├── UnknownArmError       an arm (model) name the router does not know
    │   ├── EmptyQueryError       a query with no text to route on
    │   ├── DimensionMismatchError  an embedding of the wrong size
    │   ├── InvalidFeedbackError  NaN/inf/out-of-range quality, negative cost
    │   ├── RoutingTableError     a routing table file that cannot be used (names column/row)
    │   └── NoCapableModelError   no pool member can serve the request (names who lacks what)
    ├── DecisionError             feedback that does not match a pending decision
    │   ├── UnknownDecisionError  never issued, or evicted from the pending buffer
    │   ├── ExpiredDecisionError  feedback that came after the decision's time to live (says when)
    │   └── DuplicateFeedbackError  feedback already recorded for that decision
    ├── StateFileError            a saved router file that is corrupt or mismatched
    ├── StoreError                a state store (SQLite, Redis) failed (wraps the driver's error)
    │   ├── CorruptStoreError     the store's file is corrupt, deleted or replaced: restore it
    │   └── SpoolFullError        feedback fits neither the store nor the local spool (disk full)
    │   ├── DuplicateEventError   the store already holds an event for that decision id
    │   └── LogTrimmedError       the events after a router's position were trimmed (reload a snapshot)
    ├── EmbedderError             the embedding model could not be loaded or run
    ├── InfeasibleBudgetError     no cost weight keeps the mean cost within a budget
    ├── EmptyResponseError        a provider's stream ended before its first chunk
    └── AllModelsFailedError      every model tried for one call failed (lists each error)

Every error says what went wrong and, where it can, what to do about it.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

__all__ = [
    "AllModelsFailedError",
    "ConfigurationError",
    "CorruptStoreError",
    "DecisionError",
    "DimensionMismatchError",
    "DuplicateEventError",
    "DuplicateFeedbackError",
    "EmbedderError",
    "EmptyResponseError",
    "EmptyQueryError",
    "ExpiredDecisionError",
    "InfeasibleBudgetError",
    "InvalidFeedbackError",
    "InvalidInputError",
    "LogTrimmedError",
    "MetaLLMError",
    "NoCapableModelError",
    "RoutingTableError",
    "SpoolFullError",
    "StateFileError",
    "StoreError",
    "UnknownArmError",
    "UnknownDecisionError",
]


class MetaLLMError(Exception):
    """Base class of every error metallm raises on purpose."""


class ConfigurationError(MetaLLMError, ValueError):
    """The router, policy or model pool cannot work as configured."""


class InvalidInputError(MetaLLMError, ValueError):
    """A query, embedding or feedback value is not acceptable."""


class UnknownArmError(InvalidInputError):
    """An arm (model) name that the router does not know."""

    def __init__(self, arm: str, known: tuple[str, ...]) -> None:
        self.arm = arm
        self.known = known
        super().__init__(f"unknown model {arm!r}; the router's models are {list(known)}")


class EmptyQueryError(InvalidInputError):
    """A query with no text to embed and route on."""


class DimensionMismatchError(InvalidInputError):
    """An embedding whose size differs from the router's."""


class InvalidFeedbackError(InvalidInputError):
    """Quality or cost values that cannot be learned from."""


class RoutingTableError(InvalidInputError):
    """A routing table (prompt, per-model quality and cost) that cannot be used."""


class NoCapableModelError(InvalidInputError):
    """No pool member can serve the request: ``needs`` says what it needs, ``reasons`` who lacks what."""

    def __init__(self, needs: str, reasons: dict[str, str]) -> None:
        self.needs = needs
        self.reasons = dict(reasons)
        lacks = "; ".join(f"{arm}: {why}" for arm, why in self.reasons.items())
        super().__init__(
            f"no model in the pool can serve this request, which needs {needs} ({lacks}). "
            "Add a member that can, shorten the request, or correct the capabilities given "
            "for a member (capabilities={...})"
        )


class DecisionError(MetaLLMError, LookupError):
    """Feedback that does not match a pending decision."""


class UnknownDecisionError(DecisionError):
    """A decision id that was never issued or was evicted from the pending buffer."""


class ExpiredDecisionError(DecisionError):
    """Feedback for a decision whose time to live (``feedback_ttl``) ran out; nothing is learned."""

    def __init__(self, decision_id: str, decided_at: float, expired_at: float) -> None:

        self.decision_id = decision_id
        self.decided_at = decided_at
        self.expired_at = expired_at
        when = _dt.datetime.fromtimestamp(expired_at, tz=_dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        super().__init__(
            f"decision {decision_id} expired at {when} ({expired_at - decided_at:.0f} s after it was made): "
            "feedback must arrive within the router's feedback_ttl; raise feedback_ttl for slower feedback"
        )


class DuplicateFeedbackError(DecisionError):
    """Feedback for a decision that already has its feedback recorded."""


class StateFileError(MetaLLMError, ValueError):
    """A saved router state that cannot be loaded."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"cannot load router state from {str(self.path)!r}: {problem}")


class StoreError(MetaLLMError, RuntimeError):
    """A state store failed; the driver's own error (``sqlite3``, ``redis``) is the cause.

    Stores raise only these, so the router never depends on which store it talks to.
    """


class CorruptStoreError(StoreError):
    """The store's data cannot be trusted: its file is corrupt, or was deleted or replaced.

    Routing goes on and feedback is spooled locally; restore the file (or point the router at a
    new one) and restart the process.
    """


class SpoolFullError(StoreError):
    """Feedback could be written neither to the store nor to the local spool (disk full, say).

    Nothing was acknowledged: record the same feedback again once there is room.
    """


class DuplicateEventError(StoreError):
    """The store already holds a feedback event for this decision id."""


class LogTrimmedError(StoreError):
    """The store trimmed its event log past this router's position: restart from its snapshot."""


class EmbedderError(MetaLLMError, RuntimeError):
    """The embedding model could not be loaded or run."""


class InfeasibleBudgetError(MetaLLMError, ValueError):
    """No cost weight keeps the mean cost per query within the budget."""

    def __init__(self, budget: float, cheapest: float) -> None:
        self.budget = budget
        self.cheapest = cheapest
        super().__init__(
            f"no cost weight keeps the mean cost within ${budget:.6g}/query; the cheapest "
            f"routing found costs ${cheapest:.6g}/query. Raise the budget or add a cheaper model."
        )


class EmptyResponseError(MetaLLMError, RuntimeError):
    """A provider answered with nothing: its stream ended before its first chunk."""


class AllModelsFailedError(MetaLLMError, RuntimeError):
    """Every model tried for one call failed; ``errors`` lists (model, exception) in order."""

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        self.errors = list(errors)
        lines = "; ".join(f"{arm}: {type(e).__name__}: {e}" for arm, e in self.errors)
        super().__init__(f"all {len(self.errors)} models tried failed: {lines}")
