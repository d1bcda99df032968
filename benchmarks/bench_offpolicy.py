"""Time and peak memory of one off-policy estimate (IPS, SNIPS, DR, DRos with 200 resamples).

Synthetic logs of 10,000 and 100,000 decisions over 5 models, a given direct method (so only
the estimators and their bootstrap are timed), three interleaved rounds.

Run it: .venv/bin/python -m benchmarks.bench_offpolicy
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from metallm.evaluation._offpolicy import DecisionLog, estimate


def _log(n: int, k: int = 5) -> tuple[DecisionLog, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    chosen = rng.integers(0, k, n)
    quality = (rng.random(n) < 0.7).astype(float)
    log = DecisionLog(
        [f"m{j}" for j in range(k)],
        rng.normal(size=(n, 8)),
        chosen,
        np.full(n, 1 / k),
        quality,
        np.full(n, 0.01),
    )
    candidate = np.eye(k)[np.zeros(n, dtype=int)]  # always the first model
    return log, candidate, (np.full((n, k), 0.7), np.full((n, k), 0.01))


def main() -> None:
    """Run it (see the module docstring)."""
    sizes = (10_000, 100_000)
    logs = {n: _log(n) for n in sizes}
    seconds: dict[int, list[float]] = {n: [] for n in sizes}
    peaks: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(3):
        for n in sizes:  # interleaved: the machine's noise falls on every size alike
            log, candidate, direct = logs[n]
            tracemalloc.start()
            start = time.perf_counter()
            estimate(log, candidate, cost_weight=0.1, scale=0.01, direct=direct)
            seconds[n].append(time.perf_counter() - start)
            peaks[n].append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
    print(f"{'logged decisions':>16} {'seconds (median of 3)':>22} {'peak MiB (median)':>18}")
    for n in sizes:
        print(f"{n:>16,} {float(np.median(seconds[n])):>22.2f} {float(np.median(peaks[n])):>18.0f}")


if __name__ == "__main__":
    main()
