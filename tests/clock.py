"""A clock a test moves by hand, so nothing waits for real time to pass."""

from __future__ import annotations

import time


class FakeClock:
    """Seconds since the epoch that only move when the test says (``advance``).

    >>> clock = FakeClock(); start = clock(); clock.advance(2.5); clock() - start
    2.5
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
