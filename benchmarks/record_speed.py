"""``python -m benchmarks.record_speed``: ``record()`` and ``select()`` of a router without a store.

Prints the median microseconds per call over ``--n`` calls, for the default features (a
128-d projection of a 385-d vector) and 10 models. Run it for two checkouts in interleaved
rounds (these machines are shared and noisy) to compare them, e.g.::

    for round in 1 2 3; do
      PYTHONPATH=/tmp/old/shared:/tmp/old .venv/bin/python -m benchmarks.record_speed --label old
      .venv/bin/python -m benchmarks.record_speed --label new
    done
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from metallm import Router


def measure(n: int) -> tuple[float, float, float]:
    """Median microseconds of ``select``, ``record`` and ``observe_cost`` + ``record``."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 385))
    router = Router([f"m{i}" for i in range(10)], embedder=None, seed=0)
    for x in X[:200]:  # warm: the statistics exist
        router.record(router.select(x).id, quality=0.5, cost=0.001)
    selects, records, costed = [], [], []
    for i, x in enumerate(X):
        started = time.perf_counter()
        decision = router.select(x)
        selects.append(time.perf_counter() - started)
        started = time.perf_counter()
        if i % 2:
            router.record(decision.id, quality=float(i % 3) / 2, cost=0.001)
            records.append(time.perf_counter() - started)
        else:
            router.observe_cost(decision.id, 0.001, latency=0.5)
            router.record(decision.id, quality=1.0)
            costed.append(time.perf_counter() - started)
    return (
        float(np.median(selects)) * 1e6,
        float(np.median(records)) * 1e6,
        float(np.median(costed)) * 1e6,
    )


def main(argv: list[str] | None = None) -> int:
    """Print one round's figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record_speed")
    parser.add_argument("--n", type=int, default=4000, help="calls per measurement")
    parser.add_argument("--label", default="this checkout", help="printed beside the figures")
    args = parser.parse_args(argv)
    select, record, costed = measure(args.n)
    print(
        f"{args.label:<14} select {select:7.1f} us   record {record:7.1f} us   "
        f"observe_cost + record {costed:7.1f} us   (median of {args.n // 2})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
