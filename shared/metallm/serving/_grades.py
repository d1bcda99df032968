"""Several grades for one decision: who graded it, and which grade is in force.

One answer can be graded by a judge (in the background, `Grader`), by a task check (a test
that passed, a label: what ``Router.record`` is by default) and by a person (thumbs up or down:
what the adapters' ``record_feedback`` is by default). Each grade names its **source**; sources
rank ``judge < check < human``. The first grade of a decision is learned as always. A later
grade from a source ranked **above** the grade in force replaces it: the router's statistics
move as if the later grade had been learned instead (`metallm.learning.LinearBandit.correct`;
the cost, counted once, is unchanged), the log gets a correction event, and every process
sharing the store applies it in log order. A later grade from the same source, or one ranked
below, is refused with `DuplicateFeedbackError` (the grade in force stands): a judge that
finishes after a person answered never overrides the person.

>>> from metallm import Router
>>> router = Router(["a", "b"], embedder=None)
>>> decision = router.select([1.0, 0.0])
>>> router.record(decision.id, quality=1.0, cost=0.01, source="judge")
>>> router.record(decision.id, quality=0.0, source="human")  # the person overrides the judge
>>> router.grade_in_force(decision.id)
('human', 0.0)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from metallm.exceptions import InvalidFeedbackError

__all__ = [
    "DEFAULT_SOURCE",
    "GRADE_SOURCES",
    "GradeBook",
    "GradeInForce",
    "base_id",
    "check_source",
    "correction_id",
    "source_rank",
]

GRADE_SOURCES: dict[str, int] = {"judge": 1, "check": 2, "human": 3}
"""Each source's rank: a later grade replaces the one in force only from a higher rank."""

DEFAULT_SOURCE = "check"
"""What ``Router.record`` grades as when no source is named (a label, a task check)."""

_SEPARATOR = "#"


def check_source(source: object) -> str:
    """``source`` when it is a known grade source.

    Args:
        source: What the caller named.

    Raises:
        InvalidFeedbackError: Anything else (the message lists the sources).
    """
    if not isinstance(source, str) or source not in GRADE_SOURCES:
        raise InvalidFeedbackError(
            f"a grade's source is one of {list(GRADE_SOURCES)} (ranked in that order: a later "
            f"grade from a higher rank replaces the one in force), got {str(source)[:40]!r}"
        )
    return source


def source_rank(source: str | None) -> int:
    """The rank of a grade's source (None, in logs older than sources: a check's).

    Args:
        source: The source's name.

    >>> source_rank("human") > source_rank("judge")
    True
    """
    return GRADE_SOURCES.get(source or DEFAULT_SOURCE, 0)


def correction_id(decision_id: str, source: str) -> str:
    """The log id of a correction: ``"<decision id>#<source>"`` (one per decision and source).

    Args:
        decision_id: The decision corrected.
        source: Who graded it again.

    >>> correction_id("d1", "human")
    'd1#human'
    """
    return f"{decision_id}{_SEPARATOR}{source}"


def base_id(event_id: str) -> str:
    """The decision a log id grades (its own id, or what a correction id names).

    Args:
        event_id: An event's decision id in the log.

    >>> base_id("d1#human"), base_id("d1")
    ('d1', 'd1')
    """
    return event_id.split(_SEPARATOR, 1)[0]


class GradeInForce(NamedTuple):
    """A graded decision's grade in force, with what a correction of it needs."""

    arm: str
    vector: np.ndarray
    """The query's vector, as the log holds it."""
    quality: float
    source: str
    time: float
    """When the decision was made (a correction must come within ``feedback_ttl`` of it)."""
    propensity: float | None
    shadows: str | None


class GradeBook:
    """The latest graded decisions' grades in force (a bounded memory; oldest forgotten first).

    Args:
        size: Decisions remembered (a correction of an older one is refused as unknown).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._grades: OrderedDict[str, GradeInForce] = OrderedDict()

    def __len__(self) -> int:
        return len(self._grades)

    def get(self, decision_id: str) -> GradeInForce | None:
        """The grade in force of a decision (None: not graded, or forgotten)."""
        return self._grades.get(decision_id)

    def put(self, decision_id: str, grade: GradeInForce) -> None:
        """Remember (or replace) the grade in force of a decision."""
        self._grades[decision_id] = grade
        self._grades.move_to_end(decision_id)
        while len(self._grades) > self.size:
            self._grades.popitem(last=False)

    def clear(self) -> None:
        """Forget every grade (the statistics start again from a snapshot)."""
        self._grades.clear()
