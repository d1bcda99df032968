"""The embedders' part of ``python -m benchmarks.speed``: what one routed text query costs, and loading.

``Router.select(text)`` on distinct 30-word queries (no cache hit) with the default embedder
beside sentence-transformers, interleaved; the embeddings' agreement (cosine); one query on one
or two intra-op threads with the other core idle and busy (the measurement behind
``metallm.embedding._onnx.QUERY_THREADS``); and a fresh process's load time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import numpy as np

from metallm.embedding._choice import make_embedder
from metallm.embedding._embedders import SentenceTransformerEmbedder
from metallm.serving._router import Router

__all__ = ["bench_load", "bench_query_threads", "bench_select_text", "fresh_runs"]

WORDS = (
    "please explain briefly how a court decides whether an earlier precedent on contract damages "
    "should be overruled when the facts of the new case differ in important ways and what weight "
    "recent appellate opinions carry in that analysis"
).split()


def queries(n: int, *, seed: int) -> list[str]:
    """``n`` distinct 30-word queries (shuffled words), so no embedding is served from a cache."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.permutation(WORDS)[:30]) for _ in range(n)]


def _trained(embedder: Any, dimension: int) -> Router:
    """A router as the adapters make one (reading the prompt's length), fitted on random rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, dimension))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X = np.hstack([X, rng.random((2000, 1))])  # the prompt-length feature
    arms = [f"model-{i}" for i in range(10)]
    router = Router(arms, embedder=embedder, seed=0)
    return router.fit(X, rng.random((2000, 10)), rng.random((2000, 10)) / 1000, tune=False)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(
        (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1), dtype=float
    )


def bench_select_text(calls: int = 200, rounds: int = 5) -> list[str]:
    """``Router.select(text)`` median and p99 per embedder, in interleaved rounds, with ratios."""
    reference = SentenceTransformerEmbedder(cache_size=0)
    embedders: dict[str, Any] = {"sentence-transformers": reference}
    default = make_embedder("default")
    label = f"default ({type(default).__name__}"
    label += f", {'int8' if getattr(default, 'quantize', False) else 'fp32'})"
    embedders[label] = default
    for kind in ("onnx", "onnx-int8"):
        try:
            candidate = make_embedder(kind)
            candidate.embed(["load"])
        except Exception as e:  # no onnxruntime, or no local model folder
            return [f"Router.select(text): ONNX Runtime skipped ({e})"]
        if repr(candidate) != repr(default):
            embedders[f"{kind} (OnnxEmbedder)"] = candidate
    routers = {name: _trained(e, reference.dimension) for name, e in embedders.items()}
    check = queries(50, seed=99)
    expected = reference.embed(check)
    agreement = {name: _cosines(e.embed(check), expected) for name, e in embedders.items()}
    times: dict[str, list[np.ndarray]] = {name: [] for name in routers}
    for round_ in range(rounds):
        texts = queries(calls + 10, seed=round_)
        for name, router in routers.items():
            for text in texts[:10]:  # warm the session, not the cache (shifted below)
                router.select(text + " warm")
            out = np.empty(calls)
            for i, text in enumerate(texts[10:]):
                start = time.perf_counter()
                router.select(f"{text} {name}")
                out[i] = time.perf_counter() - start
            times[name].append(out * 1000)
    base = float(np.median([np.median(t) for t in times["sentence-transformers"]]))
    lines = [
        f"Router.select(text), distinct 30-word queries (10 arms; {rounds} interleaved rounds of "
        f"{calls}; median of the rounds' medians and p99s):"
    ]
    for name, rounds_ in times.items():
        median = float(np.median([np.median(t) for t in rounds_]))
        p99 = float(np.median([np.percentile(t, 99) for t in rounds_]))
        spread = [float(np.median(t)) for t in rounds_]
        target = "   target <= 5 ms" if name.startswith("default") else ""
        lines.append(
            f"  {name:<40} median {median:>6.2f} ms   p99 {p99:>6.2f} ms   "
            f"{base / median:>4.1f}x sentence-transformers   (rounds {min(spread):.2f}-{max(spread):.2f};"
            f" cosine to sentence-transformers >= {agreement[name].min():.4f}){target}"
        )
    return lines


def _busy_core() -> subprocess.Popen[bytes]:
    """A process that keeps one core busy until terminated."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def bench_query_threads(calls: int = 100, rounds: int = 3) -> list[str]:
    """One query on 1 and 2 intra-op threads, fp32 and int8, with the other core idle and busy."""
    from metallm.embedding._onnx import QUERY_THREADS, OnnxEmbedder

    try:
        settings = {
            (quantize, threads): OnnxEmbedder(
                quantize=quantize, query_threads=threads, cache_size=0
            )
            for quantize in (False, True)
            for threads in (1, 2)
        }
        for embedder in settings.values():
            embedder.embed(["load"])
    except Exception as e:
        return [f"query threads: skipped ({e})"]
    lines = [
        "one query on 1 or 2 intra-op threads (ONNX Runtime, no spinning; median ms, p99 in brackets):"
    ]
    for busy in (False, True):
        hog = _busy_core() if busy else None
        try:
            time.sleep(0.2 if busy else 0)
            times: dict[tuple[bool, int], list[float]] = {key: [] for key in settings}
            for round_ in range(rounds):
                texts = queries(calls, seed=1000 + round_)
                for key, embedder in settings.items():
                    for i, text in enumerate(texts):
                        start = time.perf_counter()
                        embedder.embed([f"{text} {key} {busy} {i}"])
                        times[key].append((time.perf_counter() - start) * 1000)
        finally:
            if hog is not None:
                hog.terminate()
                hog.wait()
        cells = []
        for (quantize, threads), t in times.items():
            chosen = "*" if QUERY_THREADS[quantize] == threads else " "
            cells.append(
                f"{'int8' if quantize else 'fp32'} x{threads}{chosen} {np.median(t):5.2f} ({np.percentile(t, 99):5.2f})"
            )
        lines.append(
            f"  {'other core busy' if busy else 'other core idle':<16} " + "   ".join(cells)
        )
    lines.append("  * the setting OnnxEmbedder uses (QUERY_THREADS)")
    return lines


_LOAD_SCRIPT = """
import time
start = time.perf_counter()
from metallm.embedding._choice import default_embedder
embedder = default_embedder()
embedder.embed(["first query"])
print(f"{time.perf_counter() - start:.3f} {type(embedder).__name__}")
"""


def fresh_runs(script: str, runs: int) -> list[list[str]]:
    """The last output line of ``script`` run ``runs`` times, each in a fresh Python process, split.

    Raises RuntimeError (with the end of stderr) when a run fails.
    """
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-300:])
        out.append(done.stdout.strip().splitlines()[-1].split())
    return out


def bench_load(runs: int = 3) -> list[str]:
    """Import, load and first embedding of the default embedder in a fresh process (export cached)."""
    try:
        lines = fresh_runs(_LOAD_SCRIPT, runs)
    except RuntimeError as e:
        return [f"fresh-process load: failed ({e})"]
    seconds_per_run = [float(seconds) for seconds, _ in lines]
    name = lines[-1][1]
    return [
        f"fresh process, import to first embedding with the default embedder ({name}; the first run "
        f"may include the one-time export): {', '.join(f'{s:.2f}' for s in seconds_per_run)} s"
    ]
