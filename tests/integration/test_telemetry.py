"""Telemetry over real clients: spans following the GenAI conventions, metrics, Prometheus.

ChatMetaLLM routes over ChatOpenAI members on the local server; an OpenTelemetry SDK with an
in-memory span exporter and metric reader stands in for the application's set-up; httpx's own
instrumentation shows each provider call, which must nest under metallm's attempt span.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from metallm import Router
from metallm.serving import OpenTelemetry
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, langchain_pool

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def otel():
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=tracer_provider)
    yield OpenTelemetry(tracer_provider, meter_provider), spans, reader
    HTTPXClientInstrumentor().uninstrument()


def _metrics(reader) -> dict[str, list]:  # noqa: ANN001
    found: dict[str, list] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


def test_each_routed_call_is_one_span_with_the_decision_and_the_members_call_inside(
    server, embedder, otel
):
    telemetry, spans, reader = otel
    router = Router(list(PRICES), embedder=embedder, seed=0, telemetry=telemetry)
    llm = ChatMetaLLM(models=langchain_pool(server), prices=PRICES, router=router)
    answers = [llm.invoke("What is the tallest mountain?")]
    chunks = list(llm.stream("Name a river."))
    answers.append(chunks[-1])
    answers.append(asyncio.run(llm.ainvoke("Name a lake.")))
    llm.record_feedback(answers[0].response_metadata["metallm"]["decision_id"], quality=1.0)

    finished = spans.get_finished_spans()
    routes = [s for s in finished if s.name.startswith("metallm.route ")]
    assert len(routes) == 3
    for span, answer in zip(sorted(routes, key=lambda s: s.start_time), answers):
        meta = answer.response_metadata["metallm"]
        attributes = span.attributes
        assert span.name == f"metallm.route {meta['model']}"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == meta["model"]
        assert attributes["metallm.decision_id"] == meta["decision_id"]
        assert attributes["metallm.cost_usd"] == pytest.approx(meta["cost_usd"])
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
        assert list(attributes["metallm.models"]) == list(PRICES)
        assert len(attributes["metallm.predicted_quality"]) == len(PRICES)
        (attempt,) = [s for s in finished if s.parent and s.parent.span_id == span.context.span_id]
        assert attempt.name == f"metallm.attempt {meta['model']}"
        inside = [s for s in finished if s.parent and s.parent.span_id == attempt.context.span_id]
        assert inside and all(s.name.startswith("POST") for s in inside)  # the member's HTTP call
    (feedback,) = [s for s in finished if s.name == "metallm.feedback"]
    assert feedback.attributes["metallm.feedback.outcome"] == "recorded"

    metrics = _metrics(reader)
    assert sum(p.value for p in metrics["metallm.decisions"]) == 3
    cost = sum(a.response_metadata["metallm"]["cost_usd"] for a in answers)
    assert sum(p.value for p in metrics["metallm.cost"]) == pytest.approx(cost)
    assert {p.attributes["type"] for p in metrics["metallm.tokens"]} == {"input", "output"}
    assert sum(p.count for p in metrics["metallm.latency"]) == 3
    assert [p.attributes["outcome"] for p in metrics["metallm.feedback"]] == ["recorded"]


def test_a_fallback_is_a_failed_attempt_span_then_the_answering_one(embedder, otel):
    telemetry, spans, reader = otel
    scripts = {"broken": ScriptedModel(fail_status=500), "fine": ScriptedModel(reply="ok")}
    with OpenAICompatibleServer(scripts) as server:
        from langchain_openai import ChatOpenAI

        models = {
            name: ChatOpenAI(model=name, base_url=server.base_url, api_key="k", max_retries=0)
            for name in scripts
        }
        router = Router(list(models), embedder=embedder, seed=0, telemetry=telemetry)
        known = router.embed(["hello", "hello again"])  # learned offline: "broken" looks best
        router.fit(known, [[1.0, 0.5]] * 2, [[0.0, 0.0]] * 2, tune=False)
        llm = ChatMetaLLM(models=models, prices={m: (1.0, 1.0) for m in models}, router=router)
        assert llm.invoke("hello").content
    routes = [s for s in spans.get_finished_spans() if s.name.startswith("metallm.route")]
    failing = [r for r in routes if any(e.name == "metallm.attempt_failed" for e in r.events)]
    assert failing  # the broken member was tried first at least once, then the fine one
    route = failing[0]
    assert route.name == "metallm.route fine" and route.attributes["metallm.attempts"] == 2
    attempts = [
        s
        for s in spans.get_finished_spans()
        if s.parent and s.parent.span_id == route.context.span_id
    ]
    assert [a.name for a in sorted(attempts, key=lambda s: s.start_time)] == [
        "metallm.attempt broken",
        "metallm.attempt fine",
    ]
    points = _metrics(reader)["metallm.fallbacks"]
    assert {p.attributes["model"] for p in points} == {"broken"}


def test_without_a_configured_provider_nothing_is_made(server, embedder):
    from opentelemetry import trace

    router = Router(list(PRICES), embedder=embedder, seed=0)  # telemetry="auto"
    call = router.route("hello")
    assert type(call._report).__name__ == "_Silent"  # no span for nobody to record
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"


def test_a_worker_serves_its_counts_to_prometheus_with_one_call(server):
    code = f"""
import types
import urllib.request
from metallm.serving import serve_prometheus
from tests.integration.conftest import PRICES, langchain_pool
from metallm_langchain import ChatMetaLLM

metrics = serve_prometheus(port=0)  # the one call a worker makes
provider = types.SimpleNamespace(base_url={server.base_url!r})  # the tests' local server
llm = ChatMetaLLM(models=langchain_pool(provider), prices=PRICES)
for i in range(7):
    llm.invoke(f"question {{i}}")
page = urllib.request.urlopen(f"http://127.0.0.1:{{metrics.server_port}}/metrics").read().decode()
print(page)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    page = result.stdout
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("metallm_decisions_total{")
    ]
    assert sum(counts) == 7, page[-3000:]
    assert 'model="mini"' in page or 'model="together-pro"' in page
    assert "metallm_latency_seconds_bucket" in page or "metallm_latency_bucket" in page


@contextlib.contextmanager
def _instrumented(instrumentor, embedder):  # noqa: ANN001, ANN202
    """A router reporting to an in-memory SDK that ``instrumentor`` (a framework's own
    instrumentation) also writes to; the finished spans fill the yielded list at the end."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor.instrument(tracer_provider=provider)
    finished: list = []
    try:
        yield (
            Router(list(PRICES), embedder=embedder, seed=0, telemetry=OpenTelemetry(provider)),
            finished,
        )
    finally:
        instrumentor.uninstrument()
        finished.extend(spans.get_finished_spans())


def test_langchains_own_instrumentation_shows_the_member_under_the_router(server, embedder):
    """Traceloop's LangChain instrumentation (callback-based): the member's run is the child of
    the router's run; metallm's own span, with the decision, sits beside them in the same
    process (that instrumentation parents by run id and does not set the current span)."""
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    with _instrumented(LangchainInstrumentor(), embedder) as (router, finished):
        llm = ChatMetaLLM(models=langchain_pool(server), prices=PRICES, router=router)
        model = llm.invoke("Say hello.").response_metadata["metallm"]["model"]
    by_id = {s.context.span_id: s for s in finished}
    member_class = type(llm.models[model]).__name__
    (member,) = [s for s in finished if s.name == f"{member_class}.chat"]
    assert by_id[member.parent.span_id].name == "ChatMetaLLM.chat"
    (route,) = [s for s in finished if s.name == f"metallm.route {model}"]
    assert route.attributes["gen_ai.request.model"] == model


def test_the_routers_state_is_read_as_gauges_when_metrics_are_collected(otel):
    import numpy as np

    from metallm import Budget

    telemetry, _, reader = otel
    prices = {"a": (1.0, 2.0), "b": (3.0, 4.0)}
    router = Router(list(prices), embedder=None, budget=Budget(usd_per_query=0.01, name="team"),
                    telemetry=telemetry, seed=0)  # fmt: skip
    ids = []
    for i in range(3):
        call = router.route(np.full(4, i + 1.0), prices=prices)
        call.run(lambda decision: decision.arm)
        ids.append(call.succeeded(input_tokens=100, output_tokens=50)["decision_id"])
    router.record(ids[0], quality=1.0)
    metrics = _metrics(reader)
    assert [p.value for p in metrics["metallm.pending_decisions"]] == [2]
    assert [p.value for p in metrics["metallm.quarantined_events"]] == [0]
    (spent,) = metrics["metallm.budget.spent"]
    assert spent.attributes == {"budget": "team"}
    assert spent.value == pytest.approx(router.budget_status()["spent_usd"])
    (weight,) = metrics["metallm.budget.cost_weight"]
    assert weight.value == pytest.approx(router.budget_status()["cost_weight"])


def test_llamaindexs_own_instrumentation_nests_the_routing_span_under_the_routers(server, embedder):
    """OpenInference's LlamaIndex instrumentation sets the current span: metallm's routing span
    is a child of ``MetaLLM.complete``, and so is the chosen member's own span."""
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    from metallm_llamaindex import MetaLLM
    from tests.integration.test_llamaindex_providers import llamaindex_pool

    with _instrumented(LlamaIndexInstrumentor(), embedder) as (router, finished):
        llm = MetaLLM(llms=llamaindex_pool(server), prices=PRICES, router=router)
        model = llm.complete("Say hello.").additional_kwargs["metallm"]["model"]
    by_id = {s.context.span_id: s for s in finished}
    (routing,) = [s for s in finished if s.name == f"metallm.route {model}"]
    assert by_id[routing.parent.span_id].name == "MetaLLM.complete"
    member = type(llm.llms[model]).__name__ if hasattr(llm, "llms") else None
    members = [s for s in finished if s.name.endswith(".complete") and s.name != "MetaLLM.complete"]
    assert members and any(by_id[s.parent.span_id].name == "MetaLLM.complete" for s in members)
    assert member is None or any(s.name.startswith(member) for s in members)
