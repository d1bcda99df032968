"""Progress on the evaluation commands: a bar over replayed queries, a line per long stage.

Bars are tqdm's (the ``bench`` extra), written to stderr; without tqdm, or with progress off,
nothing is shown. The embedder's own bars are never nested inside ours (each batch embedded
is smaller than the size at which sentence-transformers shows one).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """A bar counting units up to ``total`` (a no-op when disabled or tqdm is missing).

    Args:
        desc: What is counted, e.g. ``"simulating"``.
        total: How many there will be.
        unit: The unit's name.
        enabled: Whether to show it.
    """

    def __init__(self, desc: str, total: int, unit: str, enabled: bool = True) -> None:
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm comes with the bench extra
                return
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more.

        Args:
            n: How many were done.
        """
        if self._bar is not None:
            self._bar.update(n)

    def describe(self, desc: str) -> None:
        """Say what is being counted now (e.g. the run replayed).

        Args:
            desc: The new description.
        """
        if self._bar is not None:
            self._bar.set_description(desc)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()


@contextmanager
def stage(what: str, enabled: bool = True) -> Iterator[None]:
    """One line to stderr when a long step starts and one with its time when it ends.

    Args:
        what: The step, e.g. ``"fitting the default router (cross-validation)"``.
        enabled: Whether to print.

    >>> with stage("counting", enabled=False):
    ...     total = sum(range(10))
    """
    if not enabled:
        yield
        return
    print(f"metallm: {what} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(f"metallm: {what}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
