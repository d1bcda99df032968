"""The LangChain wrapper's overhead over calling the inner model directly (a section of ``python -m benchmarks.speed``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from benchmarks.embedding_speed import fresh_runs
from metallm import ProjectedFeatures, Router, SentenceTransformerEmbedder
from metallm_langchain.chat_models import ChatMetaLLM


def wrapper_overhead(
    n: int, query: str, timings: Callable[..., np.ndarray], line: Callable[..., str]
) -> list[str]:
    """Median ChatMetaLLM.invoke time minus the inner model's, the embedding served from cache."""
    inner = FakeListChatModel(responses=["ok"])
    embedder = SentenceTransformerEmbedder()
    embedder.embed([query])  # embedding excluded: the query is served from the cache
    router = Router(["a", "b"], embedder=embedder, features=ProjectedFeatures(64))
    llm = ChatMetaLLM(models={"a": inner, "b": FakeListChatModel(responses=["ok"])}, router=router)
    direct = timings(lambda i: inner.invoke(query), n, warmup=100)
    routed: Any = timings(lambda i: llm.invoke(query), n, warmup=100)
    overhead = float(np.median(routed) - np.median(direct))
    return [
        "LangChain wrapper (embedding excluded: cache hit):",
        line("inner model invoke directly", direct),
        line("ChatMetaLLM.invoke over it", routed),
        f"  {'overhead (difference of medians)':<46} {overhead / 1000:>9.3f} ms   target <= 1 ms",
    ]


_FIRST_ANSWER = """
import time
started = time.perf_counter()
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from metallm_langchain import ChatMetaLLM
imported = time.perf_counter()
llm = ChatMetaLLM(
    models={"a": FakeListChatModel(responses=["ok"]), "b": FakeListChatModel(responses=["ok"])}
)
answer = llm.invoke("Please explain briefly how a court decides whether a precedent is overruled")
done = time.perf_counter()
print(f"{imported - started:.3f} {done - imported:.3f} {type(llm.router.embedder).__name__}")
"""


def first_answer(
    n: int, query: str, timings: Callable[..., np.ndarray], line: Callable[..., str]
) -> list[str]:
    """A fresh process: ChatMetaLLM construction (default router and embedder) to its first answer."""
    try:
        lines = fresh_runs(_FIRST_ANSWER, 3 if n >= 1000 else 1)
    except RuntimeError as e:
        return [f"fresh-process first answer: failed ({e})"]
    measured = [(float(imports), float(answer)) for imports, answer, _ in lines]
    embedder = lines[-1][2]
    return [
        f"fresh process, ChatMetaLLM construction to first answer (fake chat models, {embedder}): "
        f"{', '.join(f'{a:.2f}' for _, a in measured)} s   target <= 2 s "
        f"(imports before it: {', '.join(f'{i:.2f}' for i, _ in measured)} s)"
    ]
