"""``python -m benchmarks.telemetry_overhead``: what telemetry adds to one routed call.

One routed call here is ``router.route(vector)``, ``call.run(...)`` and ``call.succeeded(...)``
(no embedding, no provider: the router's own work, where telemetry's cost would show). Three
settings, measured in interleaved rounds so a slow spell of a shared machine hits each alike:
``telemetry=None``; ``"auto"`` with OpenTelemetry installed but no provider configured (what
a user who never set OpenTelemetry up gets); and an SDK provider recording every span and
metric in memory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from metallm.serving import OpenTelemetry
from metallm.serving._router import Router


def _timed(router: Router, vectors: np.ndarray) -> float:
    """Median microseconds of one routed call over ``vectors``."""
    times = np.empty(len(vectors))
    for i, vector in enumerate(vectors):
        started = time.perf_counter()
        call = router.route(vector)
        call.run(lambda decision: decision.arm)
        call.succeeded(input_tokens=100, output_tokens=20)
        times[i] = time.perf_counter() - started
    return float(np.median(times) * 1e6)


def main(argv: list[str] | None = None) -> int:
    """Print each setting's median per round and the median over rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per setting and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    recording = OpenTelemetry(
        tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])
    )
    arms = [f"model-{i}" for i in range(5)]
    settings = {
        "telemetry=None": Router(arms, embedder=None, seed=0, telemetry=None),
        'telemetry="auto", OpenTelemetry not configured': Router(arms, embedder=None, seed=0),
        "an SDK recording every span and metric": Router(
            arms, embedder=None, seed=0, telemetry=recording
        ),
    }
    vectors = np.random.default_rng(0).normal(size=(args.calls, 385))
    for router in settings.values():
        _timed(router, vectors[:200])  # warm up
    medians: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.rounds):
        for name, router in settings.items():
            medians[name].append(_timed(router, vectors))
        print(
            f"round {r + 1}: " + ", ".join(f"{m[-1]:.1f} us" for m in medians.values()), flush=True
        )
    print(
        f"\none routed call (route + run + succeeded), {args.calls} calls x {args.rounds} rounds:"
    )
    base = float(np.median(medians["telemetry=None"]))
    for name, values in medians.items():
        median = float(np.median(values))
        print(
            f"  {name:<50} median {median:7.1f} us (rounds {min(values):.1f}-{max(values):.1f})"
            f"  {median - base:+6.1f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
