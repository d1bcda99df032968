"""One routed call with fallbacks: the loop both framework adapters drive.

``router.route(text, ...)`` chooses the first model; the adapter calls that model. On a
provider error, `RoutedCall.failed` learns it (quality 0, cooldown) and returns the
next-best model, or raises what the caller should see. On an answer,
`RoutedCall.succeeded` prices it from the reported usage, attaches the cost for the
later feedback, keeps the session on that model and returns the decision's metadata.
`RoutedCall.run`, `arun`, `open_stream` and
`aopen_stream` are that loop for a plain call and for a stream (which falls
back only while nothing has reached the caller), sync and async.

Bookkeeping never costs the caller an answer: once a provider has answered, trouble in
metallm's own records (an evicted decision, a store that is down) is logged and counted in
`metallm.Router.bookkeeping_errors`, and the answer is returned.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from metallm.exceptions import AllModelsFailedError, EmptyResponseError, MetaLLMError
from metallm.serving._capabilities import Capabilities, Needs, exclusions
from metallm.serving._decisions import Decision, explain
from metallm.serving._failover import Fallbacks, is_provider_error
from metallm.serving._pricing import Prices, usage_cost
from metallm.serving._telemetry import NO_TELEMETRY, Telemetry

__all__ = ["CallBook", "RoutedCall", "Routes"]

logger = logging.getLogger("metallm.serving")

T = TypeVar("T")


class Routes(Protocol):
    """What a routed call asks of the router that made it (its public API)."""

    @property
    def id(self) -> str:
        """The router's id, in the metadata."""

    @property
    def active_arms(self) -> tuple[str, ...]:
        """The models routed to."""

    @property
    def latency_weight(self) -> float:
        """``l`` in the reward, in the metadata."""

    @property
    def budget(self) -> Any:
        """The budget held (None: none)."""

    def select(
        self,
        query: Any,
        *,
        exclude: Collection[str] = (),
        force: str | None = None,
        session: str | None = None,
        ignore_cooldown: bool = False,
        run_id: str | None = None,
        prices: Prices | None = None,
    ) -> Decision:
        """Choose a model for one query."""

    def observe_cost(
        self, decision_id: str, cost: float, *, spend: bool = True, latency: float | None = None
    ) -> None:
        """Attach a decision's measured cost."""

    def stick(self, session: str, arm: str) -> None:
        """Keep a session on a model."""

    def budget_status(self) -> dict[str, Any] | None:
        """The budget's state now."""


class CallBook(Protocol):
    """The router's books a routed call writes to: failures, cooldown, bookkeeping trouble."""

    def record_failure(self, decision_id: str) -> None:
        """Learn a provider's failure on this decision (quality 0, cost 0, counted apart)."""

    def model_failed(self, arm: str) -> None:
        """Count a failure towards the model's cooldown."""

    def model_answered(self, arm: str) -> None:
        """Clear the model's run of failures."""

    def bookkeeping_failed(self) -> None:
        """Count trouble in metallm's own records after a provider answered."""


class RoutedCall:
    """The models tried for one call, in order, and what each attempt taught the router.

    Made by ``Router.route`` (its arguments are documented there).

    Args:
        router: The router that chose the first model (its public API).
        book: Where failures, cooldowns and bookkeeping trouble are written (the router's).
        query: The routing text or embedding.
        force: See ``Router.route``.
        session: See ``Router.route``.
        fallbacks: See ``Router.route``.
        record_errors: See ``Router.route``.
        prices: See ``Router.route``.
        decision: See ``Router.route``.
        run_id: See ``Router.route``.
        needs: See ``Router.route``.
        capabilities: See ``Router.route``.
        available: See ``Router.route``.
        telemetry: Where the call, its attempts and its outcome are reported (the router's).

    >>> from metallm import Router
    >>> router = Router(["small", "large"], embedder=None)
    >>> call = router.route([1.0, 0.0])
    >>> answer = call.run(lambda decision: f"answered by {decision.arm}")
    >>> metadata = call.succeeded(input_tokens=12, output_tokens=30)
    >>> metadata["model"] == call.decision.arm
    True
    """

    def __init__(
        self,
        router: Routes,
        book: CallBook,
        query: Any,
        *,
        force: str | None = None,
        session: str | None = None,
        fallbacks: Fallbacks | None = None,
        record_errors: bool = True,
        prices: Prices | None = None,
        decision: Decision | None = None,
        run_id: str | None = None,
        needs: Needs | None = None,
        capabilities: Mapping[str, Capabilities] | None = None,
        available: Collection[str] | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        began = time.time()  # the routing span covers the choice too
        self.router = router
        self._book = book
        self.run_id = run_id
        """The framework's id of the call: feedback can find the answering decision by it."""
        self.session = session
        self.fallbacks = fallbacks or Fallbacks()
        self.record_errors = record_errors
        self.prices: Prices = prices or {}
        self.errors: list[tuple[str, BaseException]] = []
        """(model, error) for each failed attempt, in order."""
        self.attempts: list[dict[str, Any]] = []
        """Each model tried: ``{"model", "error" (type name, None when it answered), "seconds"}``."""
        self.first_item_seconds: float | None = None
        """Seconds from the answering attempt's start to its stream's first item (time to first token)."""
        arms = router.active_arms
        missing = (
            {}
            if available is None
            else {a: "not in this process's pool" for a in arms if a not in available}
        )
        self.excluded: dict[str, str] = (
            {}
            if force is not None
            else {
                **missing,
                **exclusions(needs, capabilities or {}, [a for a in arms if a not in missing]),
            }
        )
        """Members that cannot serve this request, with the reason (never tried)."""
        self.decision: Decision = (
            decision
            if decision is not None
            else router.select(
                query,
                force=force,
                session=session,
                run_id=run_id,
                exclude=self.excluded,
                prices=self.prices,
            )
        )
        """The model to try now (the next one after each `failed`)."""
        self._report = telemetry.call(self.decision, began)
        self._started = time.monotonic()  # after the choice: embedding is not the model's latency

    # -- the protocol -------------------------------------------------------------------
    def failed(self, error: BaseException) -> Decision:
        """Learn that the current model failed with ``error``; the next model to try.

        Call it inside the ``except`` block that caught ``error``.

        Args:
            error: What the provider raised.

        Returns:
            The next decision (also ``self.decision``).

        Raises:
            BaseException: ``error`` itself when there is no next model after one attempt,
                or when it is not a provider's error (a bad argument, a closed event loop).
            AllModelsFailedError: No next model after several attempts; lists each.
        """
        if not is_provider_error(error, self.fallbacks.provider_errors):
            self._report.gave_up(error)
            raise error
        self._learn_failure(error)
        following = self._next()
        if following is None:
            self._report.gave_up(error)
            if len(self.errors) <= 1:
                raise error
            raise AllModelsFailedError(self.errors) from error
        failed = self.attempts[-1]
        logger.warning(
            "metallm: %s failed after %.2f s (%s: %s); falling back to %s",
            failed["model"],
            failed["seconds"],
            failed["error"],
            error,
            following.arm,
        )
        self.decision = following
        self._started = time.monotonic()
        return following

    def failed_midstream(self, error: BaseException) -> None:
        """Learn a failure after part of the answer reached the caller (no fallback then).

        Args:
            error: What the provider raised mid-stream.
        """
        if is_provider_error(error, self.fallbacks.provider_errors):
            self._learn_failure(error)
        self._report.gave_up(error)

    def succeeded(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The current model answered: price it, keep the session on it; its metadata.

        Args:
            input_tokens: What the provider reported (None: unknown, so ``cost_usd`` is None
                and a later feedback needs ``cost=``).
            output_tokens: Likewise.
            cached_input_tokens: How many input tokens the provider read from its cache
                (priced at the cached rate when the model's price has one).

        Returns:
            The decision's metadata (see ``metadata``).
        """
        decision = self.decision
        seconds = time.monotonic() - self._started
        self.attempts.append({"model": decision.arm, "error": None, "seconds": seconds})
        cost = None
        if input_tokens is not None and output_tokens is not None:
            if _usable(input_tokens) and _usable(output_tokens):
                cached = cached_input_tokens if _usable(cached_input_tokens) else 0
                cost = usage_cost(
                    self.prices, decision.arm, input_tokens, output_tokens, cached or 0
                )
            else:
                logger.warning(
                    "metallm: %s reported unusable usage (input_tokens=%r, output_tokens=%r); "
                    "its cost is unknown for decision %s",
                    decision.arm,
                    input_tokens,
                    output_tokens,
                    decision.id,
                )
        if cost is None and self.router.budget is not None:
            logger.warning(
                "metallm: %s reported no usable token usage for decision %s: its cost is not "
                "counted against the budget (ask the provider for usage, e.g. stream_usage=True)",
                decision.arm,
                decision.id,
            )
        self._bookkeep(
            "attach the cost of",
            lambda: self.router.observe_cost(
                decision.id, cost or 0.0, spend=cost is not None, latency=seconds
            ),
        )
        self._book.model_answered(decision.arm)
        if self.session is not None:
            self.router.stick(self.session, decision.arm)
        metadata = self.metadata(cost, seconds)
        self._report.answered(metadata, (input_tokens, output_tokens))
        return metadata

    def metadata(
        self, cost_usd: float | None = None, latency_s: float | None = None
    ) -> dict[str, Any]:
        """The current decision as response metadata.

        Args:
            cost_usd: What the answer cost (None: unknown yet).
            latency_s: Seconds the answering attempt took.

        Returns:
            ``decision_id``, ``model``, scores, ``excluded``, ``cost_usd``, ``attempts``, ...
        """
        return {
            **self.decision.to_metadata(),
            "latency_weight": self.router.latency_weight,
            "excluded": dict(self.excluded),
            "cost_usd": cost_usd,
            "latency_s": latency_s,
            "time_to_first_token_s": self.first_item_seconds,
            "router_id": self.router.id,
            "attempts": [dict(a) for a in self.attempts],
            "budget": self.router.budget_status(),
        }

    def explain(self) -> str:
        """Why the current model: `Decision.explain` with the members left out and why."""
        return explain(self.metadata())

    # -- the loop, for plain calls and streams ------------------------------------------
    def run(self, attempt: Callable[[Decision], T]) -> T:
        """``attempt(decision)`` for each model in turn until one answers.

        Args:
            attempt: Calls the decision's model; raises what the provider raised.

        Returns:
            The first answer.
        """
        while True:
            try:
                with self._report.attempt(self.decision.arm):
                    return attempt(self.decision)
            except Exception as error:
                self.failed(error)

    async def arun(self, attempt: Callable[[Decision], Awaitable[T]]) -> T:
        """``run`` for a coroutine.

        Args:
            attempt: Awaits the decision's model.
        """
        while True:
            try:
                with self._report.attempt(self.decision.arm):
                    return await attempt(self.decision)
            except Exception as error:
                self.failed(error)

    def open_stream(self, start: Callable[[Decision], Iterator[T]]) -> Iterator[T]:
        """A stream from the first model whose stream starts; relayed with ``relay``.

        A model that fails before its first item is left for the next one; after that the
        caller already holds part of an answer, so a failure is learned and re-raised.

        Args:
            start: Opens the decision's model's stream.
        """
        while True:
            try:
                with self._report.attempt(self.decision.arm):
                    items = start(self.decision)
                    first = next(items, _END)
                if first is _END:
                    raise _empty(self.decision.arm)
                self.first_item_seconds = time.monotonic() - self._started
                break
            except Exception as error:
                self.failed(error)
        return self.relay(first, items)

    async def aopen_stream(
        self, start: Callable[[Decision], AsyncIterator[T] | Awaitable[AsyncIterator[T]]]
    ) -> AsyncIterator[T]:
        """``open_stream`` for an async stream (or a coroutine that returns one).

        Args:
            start: Opens the decision's model's stream.
        """
        while True:
            try:
                with self._report.attempt(self.decision.arm):
                    opened = start(self.decision)
                    items: AsyncIterator[T] = (
                        await opened if inspect.isawaitable(opened) else opened
                    )
                    first = await anext(items, _END)
                if first is _END:
                    raise _empty(self.decision.arm)
                self.first_item_seconds = time.monotonic() - self._started
                break
            except Exception as error:
                self.failed(error)
        return self.arelay(first, items)

    def relay(self, first: Any, rest: Iterator[T]) -> Iterator[T]:
        """Yield ``first`` and the rest; a failure on the way is learned and re-raised.

        Args:
            first: The stream's first item, already read.
            rest: The rest of the stream.
        """
        try:
            if first is not _END:
                yield first
                yield from rest
        except Exception as error:
            self.failed_midstream(error)
            raise

    async def arelay(self, first: Any, rest: AsyncIterator[T]) -> AsyncIterator[T]:
        """``relay`` for an async stream.

        Args:
            first: The stream's first item, already read.
            rest: The rest of the stream.
        """
        try:
            if first is not _END:
                yield first
                async for item in rest:
                    yield item
        except Exception as error:
            self.failed_midstream(error)
            raise

    # -- internals ----------------------------------------------------------------------
    def _learn_failure(self, error: BaseException) -> None:
        decision = self.decision
        seconds = time.monotonic() - self._started
        self.attempts.append(
            {"model": decision.arm, "error": type(error).__name__, "seconds": seconds}
        )
        self._report.attempt_failed(decision.arm, error, seconds)
        if self.record_errors:
            self._bookkeep("record the failure of", lambda: self._book.record_failure(decision.id))
        self._book.model_failed(decision.arm)
        self.errors.append((decision.arm, error))

    def _next(self) -> Decision | None:
        tried = [arm for arm, _ in self.errors]
        able = len(self.router.active_arms) - len(self.excluded)
        limit = min(self.fallbacks.max_attempts or able, able)
        if not self.fallbacks.enabled or self.decision.forced or len(tried) >= limit:
            return None
        return self.router.select(
            self.decision.embedding,
            exclude=[*tried, *self.excluded],
            ignore_cooldown=True,
            run_id=self.run_id,
            prices=self.prices,
        )

    def _bookkeep(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except MetaLLMError as e:
            self._book.bookkeeping_failed()
            logger.warning(
                "metallm could not %s decision %s (%s: %s); the call goes on",
                what,
                self.decision.id,
                type(e).__name__,
                e,
            )


def _usable(tokens: object) -> bool:
    return isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0


class _End:
    def __repr__(self) -> str:
        return "<end of stream>"


_END: Any = _End()


def _empty(arm: str) -> EmptyResponseError:
    """A provider's stream that ended before its first item: a failure, so the next model is tried."""
    return EmptyResponseError(
        f"{arm}'s stream ended before its first chunk (a malformed or empty provider response)"
    )
