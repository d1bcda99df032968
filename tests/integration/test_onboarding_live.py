"""A new member onboarded with a short quiz over real provider clients on the local server."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI
from llama_index.llms.openai_like import OpenAILike

from metallm import Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm.testing.prompts import ASTRONOMY, COOKING
from metallm_langchain import ChatMetaLLM
from metallm_llamaindex import MetaLLM

PRICES = {"mini": (0.15, 0.6), "pro": (2.5, 10.0)}
PROMPTS = COOKING + ASTRONOMY


@pytest.fixture(scope="module")
def provider():
    scripts = {
        "mini": ScriptedModel(reply="a guess"),
        "pro": ScriptedModel(reply="right, and expensive"),
        "expert": ScriptedModel(reply="right, and cheap"),
    }
    with OpenAICompatibleServer(scripts) as server:
        yield server


def _grade(prompt: str, answer: str) -> float:
    return 1.0 if answer.startswith("right") else 0.2


def _fitted_router(embedder) -> Router:
    router = Router(list(PRICES), embedder=embedder, seed=0)
    for _ in range(3):  # what the pool knows: pro is right, mini guesses
        router.partial_fit(
            PROMPTS, ["mini"] * len(PROMPTS), [0.2] * len(PROMPTS), [1e-5] * len(PROMPTS)
        )
        router.partial_fit(
            PROMPTS, ["pro"] * len(PROMPTS), [1.0] * len(PROMPTS), [2e-4] * len(PROMPTS)
        )
    return router


def test_chatmetallm_onboards_a_member_with_a_quiz(provider, embedder):
    llm = ChatMetaLLM(
        models={m: ChatOpenAI(model=m, base_url=provider.base_url, api_key="k") for m in PRICES},
        prices=PRICES,
        router=_fitted_router(embedder),
    )
    before = provider.models["expert"].requests
    expert = ChatOpenAI(model="expert", base_url=provider.base_url, api_key="k")
    grades = llm.onboard_model("expert", expert, PROMPTS, _grade, n=8, price=(0.1, 0.4))
    assert grades == [1.0] * 8 and provider.models["expert"].requests - before == 8
    assert llm.router.counts["expert"] == 8
    chosen = llm.invoke("How do I keep bread from going stale?").response_metadata["metallm"]
    assert chosen["predicted_quality"]["expert"] > 0.6  # it learned the newcomer is good


def test_metallm_onboards_a_member_with_a_quiz(provider, embedder):
    common = dict(api_base=provider.base_url, api_key="k", is_chat_model=True)
    llm = MetaLLM(
        llms={m: OpenAILike(model=m, **common) for m in PRICES},
        prices=PRICES,
        router=_fitted_router(embedder),
    )
    grades = llm.onboard_model("expert", OpenAILike(model="expert", **common), PROMPTS, _grade, n=8,
                               price=(0.1, 0.4))  # fmt: skip
    assert grades == [1.0] * 8 and llm.router.counts["expert"] == 8
