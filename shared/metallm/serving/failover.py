"""Provider faults: falling back to the next-best model, and cooling down failing ones.

A provider error (HTTP 429/5xx, timeout, refused connection, malformed response) on the
chosen model is learned as quality 0 for that model, and the call moves on to the next-best
model for the same query. A model that keeps failing is left out of routing for a while
(cooled down) and then comes back on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metallm.exceptions import AllModelsFailedError, ConfigurationError, DecisionError, MetaLLMError

if TYPE_CHECKING:
    from metallm.serving.router import Decision, Router

__all__ = ["Attempts", "Cooldown", "Fallbacks", "is_provider_error"]


@dataclass(frozen=True)
class Fallbacks:
    """Whether and how far a failed call moves on to the next-best model.

    ``max_attempts`` counts the first try; None tries every model once.
    """

    enabled: bool = True
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")


@dataclass
class Cooldown:
    """Leave a model out for ``seconds`` after ``after_failures`` consecutive failures."""

    after_failures: int = 3
    seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _streak: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _until: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.after_failures < 1:
            raise ConfigurationError("after_failures must be at least 1")
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ConfigurationError("seconds must be a finite number >= 0")

    def failed(self, arm: str) -> None:
        with self._lock:
            streak = self._streak.get(arm, 0) + 1
            self._streak[arm] = streak
            if streak >= self.after_failures:
                self._until[arm] = self.clock() + self.seconds
                self._streak[arm] = 0

    def succeeded(self, arm: str) -> None:
        with self._lock:
            self._streak.pop(arm, None)
            self._until.pop(arm, None)

    @property
    def active(self) -> bool:
        """Whether any model was put on cooldown and has not succeeded since (no clock read:
        cheap enough for every routing decision; :meth:`cooling` says which still are)."""
        return bool(self._until)

    def cooling(self) -> set[str]:
        """Models that are cooling down now."""
        if not self._until:
            return set()
        now = self.clock()
        with self._lock:
            return {arm for arm, until in self._until.items() if until > now}


def is_provider_error(error: BaseException) -> bool:
    """Errors worth a fallback: anything but metallm's own input and configuration errors."""
    return isinstance(error, Exception) and not isinstance(error, MetaLLMError)


class Attempts:
    """The models tried for one call, in order; adapters drive it around their provider calls.

    >>> attempts = router.attempts("a question")            # doctest: +SKIP
    >>> decision = attempts.first()                         # doctest: +SKIP
    >>> # on a provider error: decision = attempts.failed(decision, error) -> next model or None
    """

    def __init__(
        self,
        router: Router,
        query: str,
        *,
        force: str | None,
        fallbacks: Fallbacks,
        session: str | None = None,
        record_errors: bool = True,
    ) -> None:
        self.router = router
        self.query = query
        self.force = force
        self.fallbacks = fallbacks
        self.session = session
        self.record_errors = record_errors
        self.errors: list[tuple[str, BaseException]] = []

    def first(self) -> Decision:
        return self.router.select(self.query, force=self.force, session=self.session)

    def failed(self, decision: Decision, error: BaseException, *, retry: bool = True) -> Decision | None:
        """Learn the failure; the next decision to try, or None when none is left (or ``retry`` is off)."""
        if not is_provider_error(error):
            return None
        if self.record_errors:
            try:
                self.router.record(decision.id, quality=0.0, cost=0.0)
            except DecisionError:
                pass
        self.router.cooldown.failed(decision.arm)
        self.errors.append((decision.arm, error))
        limit = self.fallbacks.max_attempts or len(self.router.arms)
        tried = [arm for arm, _ in self.errors]
        if not retry or not self.fallbacks.enabled or decision.forced or len(tried) >= min(
            limit, len(self.router.arms)
        ):
            return None
        return self.router.select(decision.embedding, exclude=tried, ignore_cooldown=True)

    def next_or_raise(self, decision: Decision, error: Exception) -> Decision:
        """The next model to try after ``error``; else raise what the caller should see.

        Call it inside the ``except`` block that caught ``error``.
        """
        following = self.failed(decision, error)
        if following is not None:
            return following
        final = self.error(error)
        if final is error:
            raise error
        raise final from error

    def succeeded(self, decision: Decision) -> None:
        self.router.cooldown.succeeded(decision.arm)
        if self.session is not None:
            self.router.stick(self.session, decision.arm)

    def error(self, last: BaseException) -> BaseException:
        """What the caller gets: the error itself after one try, else one listing every try."""
        if len(self.errors) <= 1:
            return last
        return AllModelsFailedError(self.errors)
