"""``python -m benchmarks.grading_overhead``: what a judge adds to the user's call.

``ChatMetaLLM.invoke`` over two instant fake members (the embedding served from the cache, so
the router's and LangChain's own work is what is timed), three settings measured in interleaved
rounds so a slow spell of a shared machine hits each alike: no feedback handler; the feedback
handler grading each answer by a plain function at once (an evaluator); and the handler with a grader whose judge takes 50 ms per answer and
grades every one (``sample_rate=1``). The user's call only enqueues the answer: the judge's
50 ms must not show, only the enqueue. The grader's queue is large enough to hold every answer,
and its thread drains it while the calls go on.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from metallm import Router, SentenceTransformerEmbedder
from metallm_langchain import ChatMetaLLM, MetaLLMFeedbackHandler

QUERY = "How long should bread dough rise before baking?"
JUDGE_SECONDS = 0.05


def _slow_judge(prompt: str, answer: str, **_: Any) -> float:
    time.sleep(JUDGE_SECONDS)
    return 1.0


def _timed(llm: ChatMetaLLM, config: dict[str, Any], calls: int) -> float:
    """Median milliseconds of one ``invoke``."""
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        llm.invoke(QUERY, config=config)
        times[i] = time.perf_counter() - started
    return float(np.median(times) * 1e3)


def main(argv: list[str] | None = None) -> int:
    """Print each setting's median per round, the median over rounds and the difference."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per setting and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    embedder = SentenceTransformerEmbedder()
    embedder.embed([QUERY])  # cached: the embedding is not what is timed

    def pool() -> ChatMetaLLM:
        members = {name: FakeListChatModel(responses=["ok"]) for name in ("a", "b")}
        return ChatMetaLLM(models=members, router=Router(["a", "b"], embedder=embedder, seed=0))

    plain, handled, judged = pool(), pool(), pool()
    grader = judged.router.grade_with(
        _slow_judge, sample_rate=1.0, max_queue=args.calls * args.rounds * 2
    )
    settings = {
        "no feedback handler": (plain, {}),
        "feedback handler, an evaluator, no judge": (
            handled,
            {"callbacks": [MetaLLMFeedbackHandler(evaluator=lambda text, meta: 1.0,
                                                  router=handled.router)]},
        ),
        f"handler + a judge of {JUDGE_SECONDS * 1e3:.0f} ms, every answer": (
            judged, {"callbacks": [MetaLLMFeedbackHandler(grader=grader, router=judged.router)]}
        ),
    }  # fmt: skip
    for llm, config in settings.values():
        _timed(llm, config, 20)  # warm up
    medians: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.rounds):
        for name, (llm, config) in settings.items():
            medians[name].append(_timed(llm, config, args.calls))
        print(f"round {r + 1}: " + ", ".join(f"{m[-1]:.3f} ms" for m in medians.values()),
              flush=True)  # fmt: skip
    print(f"\nChatMetaLLM.invoke, {args.calls} calls x {args.rounds} rounds (embedding cached):")
    base = float(np.median(medians["no feedback handler"]))
    for name, values in medians.items():
        median = float(np.median(values))
        print(f"  {name:<45} median {median:7.3f} ms (rounds {min(values):.3f}-{max(values):.3f})"
              f"  {median - base:+7.3f} ms")  # fmt: skip
    stats = grader.stats()
    print(f"  the judge graded {stats['graded']} answers, {stats['queued']} still queued, "
          f"{stats['dropped']} dropped: the calls never waited for it")  # fmt: skip
    grader.close(timeout=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
