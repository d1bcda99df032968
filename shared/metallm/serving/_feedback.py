"""Feedback in bulk: the items a grading job records, and what became of each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from metallm.exceptions import (
    DecisionError,
    DuplicateFeedbackError,
    ExpiredDecisionError,
    InvalidFeedbackError,
    UnknownDecisionError,
)

__all__ = ["Feedback", "FeedbackSummary", "Records", "record_all"]


class Records(Protocol):
    """Anything that records feedback by decision id or by a framework's run id (a router)."""

    def record(
        self, decision_id: str, *, quality: float, cost: float | None = None, source: str = ...
    ) -> None:
        """Learn the outcome of a decision."""

    def record_run(
        self, run_id: str, *, quality: float, cost: float | None = None, source: str = ...
    ) -> None:
        """Learn the outcome of the decision that answered a framework call."""


@dataclass(frozen=True)
class Feedback:
    """One outcome to learn: the decision (or the framework run it answered) and its quality.

    ``cost`` (USD) may be left out when the router measured it when the model answered.

    Args:
        decision_id: The decision (or leave it out and give ``run_id``).
        quality: The answer's quality in [0, 1].
        cost: USD (None: the cost measured when the model answered).
        run_id: The framework's id of the call the decision answered.
        source: Who graded it (``"judge"``, ``"check"``, ``"human"``; see ``Router.record``).
    """

    decision_id: str | None = None
    quality: float = 0.0
    cost: float | None = None
    run_id: str | None = None
    source: str = "check"


@dataclass
class FeedbackSummary:
    """What `metallm.Router.record_many` did with each item.

    Args:
        recorded: Items learned.
        unknown: Items whose decision was never issued, or evicted.
        expired: Items later than the router's ``feedback_ttl``.
        duplicate: Items whose decision already had feedback.
        invalid: Items with bad values or no cost known.
        errors: ``(decision or run id, error)`` for each item not recorded.
    """

    recorded: int = 0
    unknown: int = 0
    expired: int = 0
    duplicate: int = 0
    invalid: int = 0
    errors: list[tuple[str, Exception]] = field(default_factory=list)
    """(decision or run id, error) for every item that was not recorded, in order."""

    @property
    def total(self) -> int:
        """Items seen."""
        return self.recorded + self.unknown + self.expired + self.duplicate + self.invalid


def record_all(router: Records, feedback: Iterable[Feedback]) -> FeedbackSummary:
    """Record each item on ``router``; what became of each, without stopping at errors.

    Args:
        router: Where the feedback goes.
        feedback: The items, each with a decision id or a run id.

    Returns:
        How many items were recorded, unknown, expired, duplicate or invalid, and each error.
    """
    summary = FeedbackSummary()
    for item in feedback:
        key = item.decision_id if item.decision_id is not None else item.run_id
        try:
            if item.decision_id is not None:
                router.record(
                    item.decision_id, quality=item.quality, cost=item.cost, source=item.source
                )
            elif item.run_id is not None:
                router.record_run(
                    item.run_id, quality=item.quality, cost=item.cost, source=item.source
                )
            else:
                raise InvalidFeedbackError("feedback needs a decision_id or a run_id")
        except (DecisionError, InvalidFeedbackError) as e:
            kind = {
                ExpiredDecisionError: "expired",
                DuplicateFeedbackError: "duplicate",
                UnknownDecisionError: "unknown",
            }.get(type(e), "invalid")
            setattr(summary, kind, getattr(summary, kind) + 1)
            summary.errors.append((str(key), e))
            continue
        summary.recorded += 1
    return summary
