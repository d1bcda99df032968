"""Provider faults: falling back to the next-best model, and cooling down failing ones.

A provider error (HTTP 429/5xx, timeout, refused connection, malformed response) on the
chosen model is learned as quality 0 for that model, and the call moves on to the next-best
model for the same query. A model that keeps failing is left out of routing for a while
(cooled down) and then comes back on its own. The loop that moves from model to model is
`metallm.serving._call.RoutedCall`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from metallm.exceptions import ConfigurationError, EmptyResponseError, MetaLLMError

__all__ = ["Cooldown", "Fallbacks", "is_provider_error"]


@dataclass(frozen=True)
class Fallbacks:
    """Whether and how far a failed call moves on to the next-best model.

    ``max_attempts`` counts the first try; None tries every model once. ``provider_errors``
    adds exception types that count as a provider's failure (see `is_provider_error`).

    Args:
        enabled: Whether to move on at all.
        max_attempts: The most models tried, the first included (None: each once).
        provider_errors: More exception types that count as a provider's failure.
    """

    enabled: bool = True
    max_attempts: int | None = None
    provider_errors: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")


@dataclass
class Cooldown:
    """Leave a model out for ``seconds`` after ``after_failures`` consecutive failures.

    Args:
        after_failures: Consecutive failures that start a cooldown.
        seconds: How long the model is left out.
        clock: Seconds (tests pass their own).
    """

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
        """Count a failure of ``arm``; enough in a row start its cooldown.

        Args:
            arm: The model that failed.
        """
        with self._lock:
            streak = self._streak.get(arm, 0) + 1
            self._streak[arm] = streak
            if streak >= self.after_failures:
                self._until[arm] = self.clock() + self.seconds
                self._streak[arm] = 0

    def succeeded(self, arm: str) -> None:
        """``arm`` answered: its failure streak and cooldown end.

        Args:
            arm: The model that answered.
        """
        with self._lock:
            self._streak.pop(arm, None)
            self._until.pop(arm, None)

    @property
    def active(self) -> bool:
        """Whether any model was put on cooldown and has not succeeded since.

        No clock read: cheap enough for every routing decision; `cooling` says which still are.
        """
        return bool(self._until)

    def cooling(self) -> set[str]:
        """Models that are cooling down now."""
        if not self._until:
            return set()
        now = self.clock()
        with self._lock:
            return {arm for arm, until in self._until.items() if until > now}


PROVIDER_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
"""HTTP statuses that are the provider's failure: a timeout, rate limiting, a server error."""

PROVIDER_ERROR_NAMES = frozenset(
    {
        # openai (ChatOpenAI, ChatTogether, LlamaIndex OpenAI/OpenAILike/Together)
        "APIConnectionError",
        "APITimeoutError",
        "APIResponseValidationError",
        # httpx / httpcore / requests / urllib3, under any client
        "TransportError",
        "TimeoutException",
        "RemoteProtocolError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "ProtocolError",
        "IncompleteRead",
        # a body that is not the JSON it claims to be
        "JSONDecodeError",
    }
)
"""Exception class names (anywhere in the error's class hierarchy) raised by provider clients
for a provider's failure; matched by name so the core imports no client library."""


def _status(error: BaseException) -> int | None:
    for value in (
        getattr(error, "status_code", None),
        getattr(getattr(error, "response", None), "status_code", None),
        getattr(error, "status", None),
    ):
        if isinstance(value, int):
            return value
    return None


def _caused_by_the_caller(error: BaseException) -> bool:
    """Whether a client's error wraps the caller's runtime trouble, not the provider's.

    The OpenAI client reports a call made on a closed event loop (an async client reused
    across ``asyncio.run`` calls) or a cancelled task as a "connection error"; its cause
    says what really happened, and that teaches nothing about the model.
    """
    seen = 0
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None and seen < 10:
        if isinstance(cause, asyncio.CancelledError):
            return True
        if isinstance(cause, RuntimeError) and "event loop is closed" in str(cause).lower():
            return True
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


def is_provider_error(error: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether ``error`` is the provider's failure (worth a fallback, learned as the model's).

    Provider failures are HTTP 408, 429 and 5xx answers, timeouts and connection errors raised
    by the provider's client, a malformed response body, a stream that ends before its first chunk
    (`EmptyResponseError`), and the exception types in ``extra``.
    Anything else (a ``TypeError`` from a bad keyword, a ``ValueError`` from a tool schema, a
    closed event loop or a cancelled task, even when the client wraps them in a connection
    error, metallm's own errors) is the caller's: it propagates unchanged and
    teaches the router nothing.

    Args:
        error: What the call raised.
        extra: More exception types that count as the provider's (``Fallbacks``).

    >>> is_provider_error(TimeoutError("read timed out")), is_provider_error(TypeError("bad kwarg"))
    (True, False)
    """
    if isinstance(error, EmptyResponseError):  # the provider answered with nothing
        return True
    if isinstance(error, MetaLLMError) or not isinstance(error, Exception):
        return False
    if _caused_by_the_caller(error):
        return False
    if extra and isinstance(error, extra):
        return True
    status = _status(error)
    if (
        status is not None and status >= 400
    ):  # an error status decides (a 200 with a bad body does not)
        return status in PROVIDER_STATUS
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    # openai.APIError itself (no status): an error event in the middle of a stream
    return bool(names & PROVIDER_ERROR_NAMES) or type(error).__name__ == "APIError"
