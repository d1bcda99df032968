"""A worker process: ChatMetaLLM over the local server, a Redis store, OpenTelemetry, Prometheus.

Run by tests/integration/test_dashboard_live.py as ``python -m
tests.integration.telemetry_worker BASE_URL REDIS_URL PREFIX CALLS``; routes CALLS calls, grades
each, then prints (as JSON) its spans and what its own Prometheus endpoint counted.
"""

from __future__ import annotations

import json
import sys
import types
import urllib.request

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from metallm import RedisStore, Router, SquareCB
from metallm.serving import serve_prometheus
from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, langchain_pool


def main() -> None:
    base_url, redis_url, prefix, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)  # the application's set-up; metallm uses the globals
    HTTPXClientInstrumentor().instrument()
    metrics = serve_prometheus(port=0)
    router = Router(  # an exploring policy: both members get traffic
        list(PRICES), store=RedisStore(redis_url, prefix=prefix), policy=SquareCB(floor=0.2)
    )
    llm = ChatMetaLLM(
        models=langchain_pool(types.SimpleNamespace(base_url=base_url)),
        prices=PRICES,
        router=router,
    )
    for i in range(calls):
        answer = llm.invoke(f"Question {i}: name a {('river', 'mountain', 'city')[i % 3]}.")
        meta = answer.response_metadata["metallm"]
        llm.record_feedback(meta["decision_id"], quality=0.9 if meta["model"] == "mini" else 1.0)
    page = urllib.request.urlopen(f"http://127.0.0.1:{metrics.server_port}/metrics").read().decode()
    decisions = sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("metallm_decisions_total{")
    )
    finished = spans.get_finished_spans()
    by_parent: dict[int, list[str]] = {}
    for span in finished:
        if span.parent is not None:
            by_parent.setdefault(span.parent.span_id, []).append(span.name)
    routes = [
        {
            "name": span.name,
            "decision_id": span.attributes["metallm.decision_id"],
            "children": by_parent.get(span.context.span_id, []),
            "grandchildren": [
                name
                for child in finished
                if child.parent is not None and child.parent.span_id == span.context.span_id
                for name in by_parent.get(child.context.span_id, [])
            ],
        }
        for span in finished
        if span.name.startswith("metallm.route ")
    ]
    print(json.dumps({"decisions_counted": decisions, "routes": routes}))
    metrics.shutdown()


if __name__ == "__main__":
    main()
