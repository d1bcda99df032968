"""Feedback in bulk: the items a grading job records, and what became of each."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Feedback", "FeedbackSummary"]


@dataclass(frozen=True)
class Feedback:
    """One outcome to learn: the decision (or the framework run it answered) and its quality.

    ``cost`` (USD) may be left out when the router measured it when the model answered.
    """

    decision_id: str | None = None
    quality: float = 0.0
    cost: float | None = None
    run_id: str | None = None


@dataclass
class FeedbackSummary:
    """What :meth:`metallm.Router.record_many` did with each item."""

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
