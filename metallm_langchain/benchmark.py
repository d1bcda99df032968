"""The LangChain wrapper's overhead over calling the inner model directly (for metallm.evaluation.speed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from langchain_core.language_models.fake_chat_models import FakeListChatModel

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
