"""Telemetry: each routed call as an OpenTelemetry span, and metrics an operator can chart.

A routed call is one span (``metallm.route <chosen model>``), following the OpenTelemetry
GenAI semantic conventions where they apply (``gen_ai.operation.name``,
``gen_ai.request.model`` = the chosen member, ``gen_ai.usage.*``) and carrying metallm's
decision as ``metallm.*`` attributes; each attempt is a child span (``metallm.attempt
<model>``) inside which the member is called, so a provider client's own instrumentation
(LangChain's, LlamaIndex's, httpx's) shows the member's call under the router's. Feedback is
an event on a span of its own, linked by the decision id.

Only ``opentelemetry-api`` is used (``pip install "metallm[telemetry]"``); which exporter, and
whether anything is recorded at all, is the application's choice. Without the package, or with
no tracer and meter provider configured, every hook returns at once.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

__all__ = [
    "METRICS",
    "NO_TELEMETRY",
    "CallTelemetry",
    "OpenTelemetry",
    "Telemetry",
    "serve_prometheus",
    "telemetry_for",
]

METRICS = {
    "metallm.decisions": "Routed calls by chosen model and reason (chosen, forced, session).",
    "metallm.fallbacks": "Attempts that failed and moved on, by model and error type.",
    "metallm.cost": "USD the answering models cost, by model.",
    "metallm.tokens": "Tokens the answering models reported, by model and type (input, output).",
    "metallm.latency": "Seconds of the answering attempt, by model.",
    "metallm.time_to_first_token": "Seconds to a stream's first item, by model.",
    "metallm.feedback": "Feedback calls by outcome (recorded, duplicate, expired, unknown).",
    "metallm.pending_decisions": "Decisions waiting for feedback in this process (a gauge).",
    "metallm.spooled_events": "Feedback spooled locally while the store is down (a gauge).",
    "metallm.quarantined_events": "Store events not learned: bad values, unknown models (a gauge).",
    "metallm.budget.spent": "USD spent in the budget's current period, by budget (a gauge).",
    "metallm.budget.cost_weight": "The budget's p, the weight of cost, by budget (a gauge).",
}
"""Every metric metallm emits (names and what they count); labels are model names, reasons and
outcomes only, never prompts or ids, so their cardinality is the pool's size."""


class CallTelemetry(Protocol):
    """What one routed call reports (a no-op when telemetry is off)."""

    def attempt(self, model: str) -> AbstractContextManager[None]:
        """The context in which ``model`` is called (its span is current inside)."""
        ...

    def attempt_failed(self, model: str, error: BaseException, seconds: float) -> None:
        """An attempt failed (the call may go on with another model)."""

    def answered(self, metadata: Mapping[str, Any], tokens: tuple[int | None, int | None]) -> None:
        """The call ended with an answer: its decision's metadata and reported tokens."""

    def gave_up(self, error: BaseException) -> None:
        """The call ended with ``error`` raised to the caller."""


class Telemetry(Protocol):
    """A router's telemetry: starts each call's report, and reports feedback."""

    def call(self, decision: Any, started: float) -> CallTelemetry:
        """The report of one routed call.

        Args:
            decision: The first choice (a `metallm.Decision`).
            started: When routing began (epoch seconds).
        """
        ...

    def feedback(self, decision_id: str, outcome: str, quality: float | None) -> None:
        """Report a feedback call and what became of it.

        Args:
            decision_id: The decision graded.
            outcome: ``recorded``, ``duplicate``, ``expired`` or ``unknown``.
            quality: The grade (None: not given).
        """

    def watch(self, router: Any) -> None:
        """Report ``router``'s state as gauges, read when the metrics are collected.

        Args:
            router: A router (its ``health()``; held weakly).
        """


class _Silent:
    """Telemetry that reports nothing (the default without OpenTelemetry)."""

    def attempt(self, model: str) -> AbstractContextManager[None]:
        return _NOTHING

    def attempt_failed(self, model: str, error: BaseException, seconds: float) -> None:
        pass

    def answered(self, metadata: Mapping[str, Any], tokens: tuple[int | None, int | None]) -> None:
        pass

    def gave_up(self, error: BaseException) -> None:
        pass

    def call(self, decision: Any, started: float) -> _Silent:
        return self

    def feedback(self, decision_id: str, outcome: str, quality: float | None) -> None:
        pass

    def watch(self, router: Any) -> None:
        pass


_NOTHING = nullcontext()
NO_TELEMETRY = _Silent()
"""Telemetry that reports nothing."""


class OpenTelemetry:
    """Spans and metrics through the OpenTelemetry API's global (or given) providers.

    Args:
        tracer_provider: Where spans go (None: the global one the application configured).
        meter_provider: Where metrics go (None: the global one).

    Example (an application's set-up; metallm never picks an exporter)::

        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        router = Router(["mini", "pro"], telemetry=OpenTelemetry())
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        from opentelemetry import metrics, trace

        self._trace = trace
        self._metrics = metrics
        self._given = tracer_provider is not None or meter_provider is not None
        self._seen_set = False
        self._next_check = 0.0
        self.tracer = trace.get_tracer("metallm", tracer_provider=tracer_provider)
        meter = metrics.get_meter("metallm", meter_provider=meter_provider)
        self.decisions = meter.create_counter(
            "metallm.decisions", "{call}", METRICS["metallm.decisions"]
        )
        self.fallbacks = meter.create_counter(
            "metallm.fallbacks", "{attempt}", METRICS["metallm.fallbacks"]
        )
        self.cost = meter.create_counter("metallm.cost", "USD", METRICS["metallm.cost"])
        self.tokens = meter.create_counter("metallm.tokens", "{token}", METRICS["metallm.tokens"])
        self.latency = meter.create_histogram("metallm.latency", "s", METRICS["metallm.latency"])
        self.first_token = meter.create_histogram(
            "metallm.time_to_first_token", "s", METRICS["metallm.time_to_first_token"]
        )
        self.feedbacks = meter.create_counter(
            "metallm.feedback", "{call}", METRICS["metallm.feedback"]
        )
        self._routers: weakref.WeakSet[Any] = weakref.WeakSet()
        gauges = (
            ("metallm.pending_decisions", "{decision}", "pending_in_memory"),
            ("metallm.spooled_events", "{event}", "spooled_events"),
            ("metallm.quarantined_events", "{event}", "quarantined_events"),
        )
        for name, unit, key in gauges:
            meter.create_observable_gauge(name, [self._summed(key)], unit, METRICS[name])
        for name, key, unit in (
            ("metallm.budget.spent", "spent_usd", "USD"),
            ("metallm.budget.cost_weight", "cost_weight", "1"),
        ):
            meter.create_observable_gauge(name, [self._budgets(key)], unit, METRICS[name])

    def watch(self, router: Any) -> None:
        """Report ``router``'s pending, spooled and quarantined counts and budget as gauges.

        Args:
            router: A router (held weakly: a router that is gone stops being reported).
        """
        self._routers.add(router)

    def _summed(self, key: str) -> Callable[[Any], Iterable[Any]]:
        """A gauge's callback: ``health()[key]`` summed over this process's routers."""

        def observe(options: Any) -> Iterable[Any]:
            from opentelemetry.metrics import Observation

            total = sum(int(router.health()[key] or 0) for router in list(self._routers))
            return [Observation(total)]

        return observe

    def _budgets(self, key: str) -> Callable[[Any], Iterable[Any]]:
        """A gauge's callback: each budget's ``key``, labelled by the budget's name."""

        def observe(options: Any) -> Iterable[Any]:
            from opentelemetry.metrics import Observation

            seen: dict[str, float] = {}
            for router in list(self._routers):
                status = router.budget_status()
                if status and status.get(key) is not None:
                    seen[str(status.get("name", "default"))] = float(status[key])
            return [Observation(value, {"budget": name}) for name, value in seen.items()]

        return observe

    def call(self, decision: Any, started: float) -> CallTelemetry:
        """A call's span, opened at ``started`` with the decision's attributes.

        Args:
            decision: The first choice (a `metallm.Decision`).
            started: When routing began (epoch seconds).
        """
        if not self._configured():
            return NO_TELEMETRY  # nothing would record it: not a span's worth of work
        span = self.tracer.start_span(
            f"metallm.route {decision.arm}",
            start_time=int(started * 1e9),
            attributes=_decision_attributes(decision),
        )
        return _CallSpan(self, span, decision)

    def feedback(self, decision_id: str, outcome: str, quality: float | None) -> None:
        """Count a feedback call; a span event names its decision.

        Args:
            decision_id: The decision graded.
            outcome: ``recorded``, ``duplicate``, ``expired`` or ``unknown``.
            quality: The grade (None: not given).
        """
        if not self._configured():
            return
        self.feedbacks.add(1, {"outcome": outcome})
        with self.tracer.start_as_current_span("metallm.feedback") as span:
            span.set_attribute("metallm.decision_id", decision_id)
            span.set_attribute("metallm.feedback.outcome", outcome)
            if quality is not None:
                span.set_attribute("metallm.feedback.quality", float(quality))

    def _configured(self) -> bool:
        """Whether the application set a tracer or meter provider (or gave one).

        Looked up at most once a second until one is set (spans start within a second of the
        application's set-up), then never again.
        """
        if self._given or self._seen_set:
            return True
        now = time.monotonic()
        if now < self._next_check:  # looked less than a second ago: not yet
            return False
        self._next_check = now + 1.0
        tracer = type(self._trace.get_tracer_provider()).__name__
        meter = type(self._metrics.get_meter_provider()).__name__
        self._seen_set = tracer not in _UNSET or meter not in _UNSET  # set once, set for good
        return self._seen_set


_UNSET = {"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider"}
"""The API's stand-ins until an application sets a provider: nothing would be recorded."""


class _CallSpan:
    """One routed call's span, its attempts' child spans and its metrics."""

    def __init__(self, telemetry: OpenTelemetry, span: Any, decision: Any) -> None:
        self._t = telemetry
        self._span = span
        self._reason = "forced" if decision.forced else ("session" if decision.sticky else "chosen")

    @contextmanager
    def attempt(self, model: str) -> Iterator[None]:
        trace = self._t._trace
        parent = trace.set_span_in_context(self._span)
        with self._t.tracer.start_as_current_span(
            f"metallm.attempt {model}",
            context=parent,
            attributes={"gen_ai.request.model": model, "gen_ai.operation.name": "chat"},
            record_exception=True,
        ):
            yield

    def attempt_failed(self, model: str, error: BaseException, seconds: float) -> None:
        self._t.fallbacks.add(1, {"model": model, "error": type(error).__name__})
        self._span.add_event(
            "metallm.attempt_failed",
            {"gen_ai.request.model": model, "error.type": type(error).__name__, "seconds": seconds},
        )

    def answered(self, metadata: Mapping[str, Any], tokens: tuple[int | None, int | None]) -> None:
        model = str(metadata["model"])
        span = self._span
        span.update_name(f"metallm.route {model}")
        span.set_attributes(_answer_attributes(metadata, tokens))
        self._t.decisions.add(1, {"model": model, "reason": self._reason})
        if metadata.get("cost_usd") is not None:
            self._t.cost.add(float(metadata["cost_usd"]), {"model": model})
        for kind, count in zip(("input", "output"), tokens):
            if count is not None:
                self._t.tokens.add(int(count), {"model": model, "type": kind})
        if metadata.get("latency_s") is not None:
            self._t.latency.record(float(metadata["latency_s"]), {"model": model})
        if metadata.get("time_to_first_token_s") is not None:
            self._t.first_token.record(float(metadata["time_to_first_token_s"]), {"model": model})
        span.end()

    def gave_up(self, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.record_exception(error)
        self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._span.set_attribute("error.type", type(error).__name__)
        self._span.end()


def _decision_attributes(decision: Any) -> dict[str, Any]:
    arms = list(decision.scores)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "metallm",
        "gen_ai.request.model": decision.arm,
        "metallm.decision_id": decision.id,
        "metallm.models": arms,
        "metallm.cost_weight": float(decision.cost_weight),
        "metallm.forced": bool(decision.forced),
    }
    if decision.propensity is not None:
        attributes["metallm.propensity"] = float(decision.propensity)
    if decision.predicted_quality:
        attributes["metallm.predicted_quality"] = [
            float(decision.predicted_quality[a]) for a in arms
        ]
    if decision.predicted_cost:
        attributes["metallm.predicted_cost"] = [float(decision.predicted_cost[a]) for a in arms]
    return attributes


def _answer_attributes(
    metadata: Mapping[str, Any], tokens: tuple[int | None, int | None]
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.request.model": str(metadata["model"]),
        "metallm.model": str(metadata["model"]),
        "metallm.attempts": len(metadata.get("attempts") or []),
    }
    excluded = metadata.get("excluded") or {}
    if excluded:
        attributes["metallm.excluded"] = [f"{m}: {why}" for m, why in excluded.items()]
    if metadata.get("cost_usd") is not None:
        attributes["metallm.cost_usd"] = float(metadata["cost_usd"])
    if metadata.get("latency_s") is not None:
        attributes["metallm.latency_s"] = float(metadata["latency_s"])
    budget = metadata.get("budget")
    if budget:
        attributes["metallm.budget.cost_weight"] = float(budget["cost_weight"])
        attributes["metallm.budget.capped"] = bool(budget.get("capped"))
    if tokens[0] is not None:
        attributes["gen_ai.usage.input_tokens"] = int(tokens[0])
    if tokens[1] is not None:
        attributes["gen_ai.usage.output_tokens"] = int(tokens[1])
    return attributes


def telemetry_for(setting: Telemetry | str | None) -> Telemetry:
    """The telemetry a router reports to.

    Args:
        setting: ``"auto"`` (OpenTelemetry when ``opentelemetry-api`` is installed, through the
            providers the application configures), None (none), or a `Telemetry`.

    Returns:
        The telemetry.
    """
    if setting is None:
        return NO_TELEMETRY
    if setting == "auto":
        try:
            return OpenTelemetry()
        except ImportError:
            return NO_TELEMETRY
    if isinstance(setting, str):
        from metallm.exceptions import ConfigurationError

        raise ConfigurationError(f"telemetry must be 'auto', None or a Telemetry, got {setting!r}")
    return setting


def now() -> float:
    """The epoch time a span starts at."""
    return time.time()


def serve_prometheus(port: int = 9464, addr: str = "127.0.0.1") -> Any:
    """Serve every metric at ``http://addr:port/metrics`` for Prometheus; one call per worker.

    Sets the global OpenTelemetry meter provider to one read by a Prometheus reader (the
    ``prometheus`` extra: ``opentelemetry-sdk``, ``opentelemetry-exporter-prometheus``,
    ``prometheus-client``); routers with ``telemetry="auto"`` then count into it. Names follow
    Prometheus' rules: ``metallm.decisions`` is ``metallm_decisions_total``.

    Args:
        port: The port (0: a free one, read back from the returned server's ``server_port``).
        addr: The address to bind (loopback by default: metrics name your models).

    Returns:
        The HTTP server (``shutdown()`` stops it).

    Raises:
        ConfigurationError: The ``prometheus`` extra is not installed.
    """
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as e:
        from metallm.exceptions import ConfigurationError

        raise ConfigurationError(
            'serve_prometheus needs the prometheus extra: pip install "metallm[prometheus]"'
        ) from e
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    server, _ = start_http_server(port, addr=addr)
    return server
