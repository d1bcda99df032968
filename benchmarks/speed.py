"""``python -m benchmarks.speed``: the speed and memory budget, measured and printed.

For 10 arms and MiniLM-sized (384-d) embeddings: ``select`` latency and ``select_batch``
throughput (full and compact features), ``record`` latency alone and through the SQLite and
Redis stores, embedding latency of a 30-word query for each embedder, ``select(text)`` with the
default embedder beside sentence-transformers (`embedding_speed`),
the router's memory,
and the LangChain adapter's overhead over calling its inner model directly.
These machines are shared and noisy: read medians, and run it twice.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.embedding_speed import bench_load, bench_query_threads, bench_select_text
from metallm.evaluation._progress import stage
from metallm.exceptions import InvalidInputError, MetaLLMError
from metallm.learning._features import (
    ClusterFeatures,
    EmbeddingFeatures,
    FeatureMap,
    ProjectedFeatures,
    RandomFeatures,
)
from metallm.learning._neighbours import BLEND_DIMS, BLEND_ROWS, NeighbourQuality
from metallm.serving._router import Router
from metallm.state import RedisStore, SQLiteStore

ARMS = [f"model-{i}" for i in range(10)]
DIM = 384
QUERY = (
    "Please explain briefly how a court decides whether an earlier precedent on contract "
    "damages should be overruled when the facts of the new case differ in important ways"
)


def _timings(fn: Callable[[int], object], n: int, warmup: int = 200) -> np.ndarray:
    for i in range(warmup):
        fn(i)
    out = np.empty(n)
    for i in range(n):  # fresh indices: calls that consume something (a decision) never repeat
        start = time.perf_counter()
        fn(warmup + i)
        out[i] = time.perf_counter() - start
    return out * 1e6  # microseconds


def _line(label: str, us: np.ndarray, target: str = "") -> str:
    return f"  {label:<46} median {np.median(us):>9.1f} us   p99 {np.percentile(us, 99):>9.1f} us   {target}"


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, DIM))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, rng.random((n, len(ARMS))), rng.random((n, len(ARMS))) / 1000


def _trained(features: FeatureMap, rows: int = 3000, **kwargs: object) -> Router:
    X, Q, C = _data(rows)
    if kwargs.get("prompt_length"):
        X = _with_length(X)
    return Router(ARMS, embedder=None, features=features, seed=0, **kwargs).fit(X, Q, C, tune=False)  # type: ignore[arg-type]


def _with_length(X: np.ndarray) -> np.ndarray:
    """Vectors as a text router sees them: the embedding and the prompt's length (0-2 kchars)."""
    lengths = np.random.default_rng(3).random((X.shape[0], 1)) * 2
    return np.hstack([X, lengths])


def _rounds_line(label: str, medians: list[float], p99s: list[float], target: str) -> str:
    """Median over rounds of each round's median (and p99), with the spread of the medians."""
    spread = f"(rounds {min(medians):.0f}-{max(medians):.0f})" if len(medians) > 1 else ""
    return (
        f"  {label:<46} median {np.median(medians):>9.1f} us   p99 {np.median(p99s):>9.1f} us   "
        f"{target} {spread}"
    ).rstrip()


def _timed_line(label: str, rounds: list[np.ndarray], target: str) -> str:
    """`_rounds_line` of timings (microseconds) measured in rounds."""
    return _rounds_line(
        label,
        [float(np.median(t)) for t in rounds],
        [float(np.percentile(t, 99)) for t in rounds],
        target,
    )


def bench_routing(n: int, rounds: int = 5) -> list[str]:
    """Routing latency and throughput per configuration, measured in interleaved rounds.

    Each configuration is measured ``rounds`` times, interleaved, so a slow spell of a shared
    machine hits every configuration alike; the median over rounds is printed.
    """
    lines = [
        f"routing (10 arms, 384-d embeddings given; {rounds} rounds of {n} calls, median of the rounds):"
    ]
    X, _, _ = _data(20_000, seed=1)
    configurations = {
        "full features (385)": _trained(EmbeddingFeatures()),
        "default features (ProjectedFeatures 128)": _trained(ProjectedFeatures(128)),
        "text router (128 + prompt length for cost)": _trained(
            ProjectedFeatures(128), prompt_length=True
        ),
        "compact features (ProjectedFeatures 64)": _trained(ProjectedFeatures(64)),
        "map + kNN blend, always (10,000 rows)": _trained(
            ProjectedFeatures(128), rows=10_000, neighbours=NeighbourQuality(k=50, weight=0.5)
        ),
    }
    vectors = {label: X for label in configurations}
    vectors["text router (128 + prompt length for cost)"] = _with_length(X)
    select: dict[str, list[np.ndarray]] = {label: [] for label in configurations}
    record: dict[str, list[np.ndarray]] = {label: [] for label in configurations}
    rates: dict[str, list[float]] = {label: [] for label in configurations}
    for _ in range(rounds):
        for label, router in configurations.items():
            V = vectors[label]
            select[label].append(_timings(lambda i: router.select(V[i % len(V)]), n))  # noqa: B023
            batch = V[:10_000]
            router.select_batch(batch[:100])
            start = time.perf_counter()
            router.select_batch(batch)
            rates[label].append(len(batch) / (time.perf_counter() - start))
            decisions = router.select_batch(np.repeat(V[:1], n + 200, axis=0))
            record[label].append(
                _timings(lambda i: router.record(decisions[i].id, quality=1.0, cost=0.001), n)  # noqa: B023
            )
    for label in configurations:
        lines.append(_timed_line(f"select, {label}", select[label], "target <= 50 us"))
        spread = f"(rounds {min(rates[label]):,.0f}-{max(rates[label]):,.0f})" if rounds > 1 else ""
        lines.append(
            f"  {'select_batch, ' + label:<46} {np.median(rates[label]):>12,.0f} decisions/s   "
            f"target >= 100,000 {spread}".rstrip()
        )
        lines.append(_timed_line(f"record, {label}", record[label], "target <= 50 us"))
    return lines


def _store_lines(kind: str, store: object, X: np.ndarray, n: int, budget: str) -> list[str]:
    """Select (with its ledger write) beside select without a store, in interleaved rounds; then record."""
    plain = _trained(ProjectedFeatures(64))
    stored = _trained(ProjectedFeatures(64), store=store, sync_interval=None)
    without: list[float] = []
    with_ledger: list[float] = []
    for _ in range(3):
        without.append(float(np.median(_timings(lambda i: plain.select(X[i % len(X)]), n))))
        with_ledger.append(float(np.median(_timings(lambda i: stored.select(X[i % len(X)]), n))))
    decisions = stored.select_batch(X)
    record = _timings(lambda i: stored.record(decisions[i].id, quality=1.0, cost=0.001), n)
    extra = float(np.median(with_ledger) - np.median(without))
    return [
        f"  {'select, no store':<46} median {np.median(without):>9.1f} us   (rounds {min(without):.0f}-{max(without):.0f})",
        f"  {'select + ledger write -> ' + kind:<46} median {np.median(with_ledger):>9.1f} us   "
        f"(rounds {min(with_ledger):.0f}-{max(with_ledger):.0f}); the ledger adds {extra / 1000:.3f} ms   target <= {budget}",
        _line(f"record -> {kind} (event + settle, one write)", record, f"target <= {budget}"),
    ]


def bench_stores(n: int) -> list[str]:
    """Routing and feedback through the SQLite and Redis stores (a Redis server is started on loopback)."""
    lines = ["through a store (compact features; every decision kept in the store's ledger):"]
    X, _, _ = _data(n + 400, seed=2)
    with tempfile.TemporaryDirectory() as folder:
        lines += _store_lines(
            "SQLiteStore", SQLiteStore(Path(folder) / "state.sqlite"), X, n, "1 ms"
        )
    binary = shutil.which("redis-server")
    if binary is None:
        lines.append("  RedisStore: skipped, redis-server is not installed")
        return lines
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="bench")
        for _ in range(100):
            try:
                store.client.ping()
                break
            except Exception:
                time.sleep(0.05)
        lines += _store_lines("RedisStore", store, X, n, "2 ms")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return lines


def bench_embedders(n: int, static_model: str | None) -> list[str]:
    """Embedding latency of one 30-word query for each embedder."""
    from metallm.embedding._embedders import SentenceTransformerEmbedder, StaticEmbedder

    lines = [f"embedding one 30-word query ({len(QUERY.split())} words):"]
    minilm = SentenceTransformerEmbedder(cache_size=0)
    minilm.embed([QUERY])
    lines.append(
        _line(
            f"MiniLM, sentence-transformers ({minilm.model_name[-40:]})",
            _timings(lambda i: minilm.embed([QUERY]), max(50, n // 20), warmup=10),
            "the reference (Router.select(text) below)",
        )
    )
    cached = SentenceTransformerEmbedder()
    cached.embed([QUERY])
    lines.append(
        _line(
            "MiniLM, repeated query (LRU cache hit)",
            _timings(lambda i: cached.embed([QUERY]), n),
            "",
        )
    )
    if static_model:
        static = StaticEmbedder(static_model)
        static.embed([QUERY])
        lines.append(
            _line(
                "static MiniLM (model2vec distilled, no cache)",
                _timings(lambda i: static.embed([QUERY + str(i)]), n),
                "target <= 5 ms",
            )
        )
    else:
        lines.append(
            "  static MiniLM: skipped (pass --static-model DIR; make one with `metallm distill --out DIR`)"
        )
    return lines


CAPACITY_ARMS = [f"model-{i}" for i in range(12)]


def capacity_candidates() -> dict[str, tuple[FeatureMap, NeighbourQuality | None]]:
    """What cross-validation chooses among, as a text router of 12 models runs each."""
    return {
        "linear, full embedding (385 + length)": (EmbeddingFeatures(), None),
        "cold default, ProjectedFeatures 128": (ProjectedFeatures(128), None),
        "clusters 32 + embedding (417 + length)": (ClusterFeatures(32, 0.05, 3.0, 10.0), None),
        "clusters 32 + PCA 128 (161 + length), default": (
            ClusterFeatures(32, 0.05, 3.0, 10.0, dims=128),
            None,
        ),
        "linear, PCA 128 (129 + length), default": (ProjectedFeatures(128, 3.0), None),
        "random ReLU 64 + 192 (257 + length)": (RandomFeatures(64, 192), None),
        "projection 128 + kNN blend (10,000 rows)": (
            ProjectedFeatures(128),
            NeighbourQuality(k=50, weight=0.5),
        ),
        # what a default fit serves where the table blend over the linear map scores best
        "linear PCA 128 + table blend (2,000 x 64), default": (
            ProjectedFeatures(128, 3.0),
            NeighbourQuality(k=100, weight=0.5, max_rows=BLEND_ROWS, dims=BLEND_DIMS, online=False),
        ),
        # never a default fit's (the blend competes with the cluster map): Router(neighbours=...)
        "clusters + PCA 128 + table blend, not default": (
            ClusterFeatures(32, 0.05, 3.0, 10.0, dims=128),
            NeighbourQuality(k=100, weight=0.5, max_rows=BLEND_ROWS, dims=BLEND_DIMS, online=False),
        ),
    }


def bench_capacity(n: int, rounds: int = 3) -> list[str]:
    """Each capacity candidate: select (embedding given) and record time, and its state's size.

    Twelve models, 384-d embeddings with the prompt's length, fitted on 3,000 rows (10,000 for
    the kNN blend's memory), the default policy and drift detector; select and record measured
    in interleaved rounds; the state is the saved file's size (statistics, feature map, memory).
    """
    lines = [
        f"capacity candidates (12 models, 384-d + length; {rounds} interleaved rounds of {n} calls):"
    ]
    rng = np.random.default_rng(4)
    routers = {}
    for label, (features, neighbours) in capacity_candidates().items():
        rows = 10_000 if neighbours is not None else 3_000
        X = _with_length(_data(rows)[0])
        Q, C = rng.random((rows, 12)), rng.random((rows, 12)) / 1000
        routers[label] = Router(CAPACITY_ARMS, embedder=None, features=features, seed=0,
                                prompt_length=True, neighbours=neighbours).fit(
            X, Q, C, tune=False
        )  # fmt: skip
    V = _with_length(_data(20_000, seed=1)[0])
    select: dict[str, list[np.ndarray]] = {label: [] for label in routers}
    record: dict[str, list[np.ndarray]] = {label: [] for label in routers}
    for _ in range(rounds):
        for label, router in routers.items():
            select[label].append(_timings(lambda i: router.select(V[i % len(V)]), n))  # noqa: B023
            decisions = router.select_batch(np.repeat(V[:1], n + 200, axis=0))
            record[label].append(
                _timings(lambda i: router.record(decisions[i].id, quality=1.0, cost=0.001), n)  # noqa: B023
            )
    with tempfile.TemporaryDirectory() as folder:
        for label, router in routers.items():
            size = router.save(Path(folder) / "state.npz").stat().st_size / 1e6
            lines.append(_timed_line(f"select, {label}", select[label], "target <= 200 us"))
            lines.append(_timed_line(f"record, {label}", record[label], "target <= 500 us"))
            per_model = size / len(CAPACITY_ARMS)
            lines.append(
                f"  {'state, ' + label:<46} {size:>9.1f} MB ({per_model:.2f} MB per model)   "
                "target < 100 MB"
            )
    return lines


def bench_memory() -> list[str]:
    """The router's memory beyond the embedding model, full and compact features."""
    lines = ["router memory beyond the embedding model (10 arms, trained):"]
    X, Q, C = _data(3000)
    for label, features in (
        ("full features", EmbeddingFeatures()),
        ("compact features", ProjectedFeatures(64)),
    ):
        gc.collect()
        tracemalloc.start()
        router = Router(ARMS, embedder=None, features=features).fit(X, Q, C, tune=False)
        router.select_batch(X[:1000])  # 1,000 pending decisions held too
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lines.append(
            f"  {label:<46} {current / 1e6:>9.1f} MB held ({peak / 1e6:.1f} MB peak while fitting)   target < 50 MB"
        )
        del router
    return lines


def bench_adapters(n: int) -> list[str]:
    """The LangChain adapter's overhead over its inner model, and a fresh process's first answer."""
    try:
        from benchmarks.langchain_overhead import first_answer, wrapper_overhead
    except ImportError as e:
        return [f"LangChain adapter: skipped ({e})"]
    return [
        *wrapper_overhead(n, QUERY, _timings, _line),
        *first_answer(n, QUERY, _timings, _line),
    ]


def run_speed(*, n: int = 5000, rounds: int = 5, static_model: str | None = None) -> int:
    """Measure and print every figure; returns the exit code."""
    if n < 1 or rounds < 1:
        raise InvalidInputError("--n and --rounds must be at least 1")
    print(
        f"speed budget (python -m benchmarks.speed): python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores\n"
    )
    sections: list[tuple[str, Callable[[], list[str]]]] = [
        (f"routing, {rounds} rounds of {n} calls", lambda: bench_routing(n, rounds)),
        ("capacity candidates", lambda: bench_capacity(min(n, 2000), rounds)),
        ("the stores", lambda: bench_stores(min(n, 2000))),
        ("memory", bench_memory),
        ("the embedders", lambda: bench_embedders(min(n, 2000), static_model)),
        (
            "select on text",
            lambda: bench_select_text(calls=max(20, min(n, 5000) // 25), rounds=rounds),
        ),
        ("query threads", lambda: bench_query_threads(calls=max(20, min(n, 5000) // 50))),
        ("loading", lambda: bench_load(runs=3 if n >= 1000 else 1)),
        ("the adapters", lambda: bench_adapters(min(n, 2000))),
    ]
    for i, (what, measure) in enumerate(sections, 1):
        with stage(f"[{i}/{len(sections)}] measuring {what}"):  # each printed as it is done
            section = measure()
        print("\n".join(section) + "\n", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.speed``: every figure, in interleaved rounds."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.speed",
        description="the speed and memory budget, measured in interleaved rounds",
    )
    parser.add_argument("--n", type=int, default=5000, help="timed calls per measurement")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the routing measurements (median printed)"
    )
    parser.add_argument(
        "--static-model",
        default=os.environ.get("METALLM_STATIC_MODEL"),
        help="folder of a distilled static embedder (metallm distill)",
    )
    args = parser.parse_args(argv)
    try:
        return run_speed(n=args.n, rounds=args.rounds, static_model=args.static_model)
    except MetaLLMError as e:
        print(f"python -m benchmarks.speed: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
