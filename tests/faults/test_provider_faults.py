"""A provider that answers a stream with nothing: the call goes to the healthy member."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from metallm import Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_langchain import ChatMetaLLM

ARMS = ["bad", "good"]


@pytest.fixture(scope="module")
def provider():
    scripts = {"bad": ScriptedModel(malformed=True), "good": ScriptedModel(reply="fine")}
    with OpenAICompatibleServer(scripts) as server:
        yield server


def _llm(provider, embedder) -> ChatMetaLLM:
    router = Router(ARMS, embedder=embedder, seed=0)  # seeded: the test needs "bad" first
    texts = ["hello"] * 10
    router.partial_fit(texts, ["bad"] * 10, [1.0] * 10, [0.0] * 10)  # it would pick "bad"
    router.partial_fit(texts, ["good"] * 10, [0.2] * 10, [0.0] * 10)
    members = {
        m: ChatOpenAI(model=m, base_url=provider.base_url, api_key="k", max_retries=0) for m in ARMS
    }
    return ChatMetaLLM(models=members, router=router, prices={"bad": (1, 1), "good": (1, 1)})


def test_a_malformed_stream_falls_back_to_the_healthy_member(provider, embedder):
    llm = _llm(provider, embedder)
    chunks = list(llm.stream("hello"))
    assert "".join(c.content for c in chunks) == "fine"
    metadata = chunks[-1].response_metadata["metallm"]
    assert metadata["model"] == "good"
    assert [(a["model"], a["error"]) for a in metadata["attempts"]] == [
        ("bad", "EmptyResponseError"),
        ("good", None),
    ]


async def test_a_malformed_async_stream_falls_back_too(provider, embedder):
    llm = _llm(provider, embedder)
    chunks = [c async for c in llm.astream("hello")]
    assert "".join(c.content for c in chunks) == "fine"
