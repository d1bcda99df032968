"""Latency over real provider clients: a slow and a fast member of equal quality and price.

The local OpenAI-compatible server answers "slow" after 0.4 s and "fast" at once. ChatMetaLLM
(ChatOpenAI members) and MetaLLM (OpenAILike members) measure every call; with a latency weight
the router learns to prefer the fast member, and without one it has no reason to.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from langchain_openai import ChatOpenAI
from llama_index.llms.openai_like import OpenAILike

from metallm import Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_langchain import ChatMetaLLM
from metallm_llamaindex import MetaLLM

PRICES = {"fast": (0.5, 1.5), "slow": (0.5, 1.5)}  # the same price: only latency differs
SLOW = 0.4  # seconds the slow member waits: the gap a loaded machine adds to both calls alike
TOPICS = ["bread", "tides", "volcanoes", "chess", "orbits", "tea", "bridges", "glaciers"]


@pytest.fixture(scope="module")
def provider():
    scripts = {
        "fast": ScriptedModel(reply="An answer."),
        "slow": ScriptedModel(reply="An answer.", latency=SLOW),
    }
    with OpenAICompatibleServer(scripts) as server:
        yield server


def _assert_measured(seconds: dict[str, list[float]]) -> None:
    """Every call measured: the slow member's wait shows as the gap between the two medians.

    Relative, not absolute: load slows both members' calls alike, the wait stays between them.
    """
    assert min(seconds["slow"]) >= SLOW
    gap = statistics.median(seconds["slow"]) - statistics.median(seconds["fast"])
    assert SLOW * 0.75 <= gap <= SLOW * 3, seconds


def _late_share_of_fast(ask, record, n: int) -> tuple[float, dict[str, list[float]]]:
    picks, seconds = [], {"fast": [], "slow": []}
    for i in range(n):
        meta = ask(f"Tell me one fact about {TOPICS[i % len(TOPICS)]} (question {i}).")
        record(meta["decision_id"])
        picks.append(meta["model"])
        seconds[meta["model"]].append(meta["latency_s"])
    return float(np.mean([p == "fast" for p in picks[n // 2 :]])), seconds


def test_chatmetallm_learns_to_prefer_the_fast_member_with_a_latency_weight(provider, embedder):
    members = {m: ChatOpenAI(model=m, base_url=provider.base_url, api_key="k", max_retries=0)
               for m in PRICES}  # fmt: skip
    llm = ChatMetaLLM(
        models=members,
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, latency_weight=1.0, seed=0),
    )
    share, seconds = _late_share_of_fast(
        lambda text: llm.invoke(text).response_metadata["metallm"],
        lambda decision_id: llm.record_feedback(decision_id, quality=0.8),
        40,
    )
    assert share >= 0.8, seconds
    _assert_measured(seconds)
    explained = llm.router.select("Tell me one fact about rivers.").predicted_latency
    assert explained["slow"] - explained["fast"] > SLOW / 4  # (ridge-shrunk: few slow calls)


def test_metallm_learns_to_prefer_the_fast_member_with_a_latency_weight(provider, embedder):
    common = dict(api_base=provider.base_url, api_key="k", is_chat_model=True, max_retries=0)
    llm = MetaLLM(
        llms={m: OpenAILike(model=m, **common) for m in PRICES},
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, latency_weight=1.0, seed=0),
    )
    share, seconds = _late_share_of_fast(
        lambda text: llm.complete(text).additional_kwargs["metallm"],
        lambda decision_id: llm.record_feedback(decision_id, quality=0.8),
        40,
    )
    assert share >= 0.8, seconds
    _assert_measured(seconds)
