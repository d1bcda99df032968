"""MetaLLM over real OpenAILike / TogetherLLM clients talking HTTP to the local server."""

from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike
from llama_index.llms.together import TogetherLLM
from pydantic import BaseModel

from metallm import AllModelsFailedError, Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel, count_tokens
from metallm_llamaindex import MetaLLM
from tests.integration.conftest import PRICES

QUESTION = "What is the tallest mountain on Earth?"
USAGE_WHEN_STREAMING = {"stream_options": {"include_usage": True}}


def llamaindex_pool(server, **kwargs) -> dict:
    common = dict(
        api_base=server.base_url,
        api_key="test-key",
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=16000,
        max_retries=0,
        additional_kwargs=USAGE_WHEN_STREAMING,
        **kwargs,
    )
    return {
        "mini": OpenAILike(model="mini", **common),
        "together-pro": TogetherLLM(model="together-pro", **common),
    }


@pytest.fixture
def llm(server, embedder) -> MetaLLM:
    return MetaLLM(
        llms=llamaindex_pool(server),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0),
    )


def _cost(server, model: str, prompt: str) -> float:
    reply = server.models[model].answer(prompt)
    return (count_tokens(prompt) * PRICES[model][0] + count_tokens(reply) * PRICES[model][1]) / 1e6


@pytest.mark.parametrize("model", list(PRICES))
def test_chat_and_complete_cost_the_reported_usage(llm, server, model):
    chat = llm.chat([ChatMessage(role="user", content=QUESTION)], model=model)
    meta = chat.additional_kwargs["metallm"]
    assert chat.message.content == server.models[model].answer(QUESTION)
    assert meta["cost_usd"] == pytest.approx(_cost(server, model, QUESTION), rel=1e-12)
    completion = llm.complete(QUESTION, model=model)
    assert completion.additional_kwargs["metallm"]["cost_usd"] == pytest.approx(
        _cost(server, model, QUESTION), rel=1e-12
    )


@pytest.mark.parametrize("model", list(PRICES))
def test_streams_cost_the_reported_usage(llm, server, model):
    pieces = list(llm.stream_chat([ChatMessage(role="user", content=QUESTION)], model=model))
    assert pieces[-1].message.content == server.models[model].answer(QUESTION)
    assert pieces[-1].additional_kwargs["metallm"]["cost_usd"] == pytest.approx(
        _cost(server, model, QUESTION), rel=1e-12
    )
    last = list(llm.stream_complete(QUESTION, model=model))[-1]
    assert last.additional_kwargs["metallm"]["cost_usd"] == pytest.approx(
        _cost(server, model, QUESTION), rel=1e-12
    )


async def test_async_paths(llm, server):
    chat = await llm.achat([ChatMessage(role="user", content=QUESTION)])
    assert chat.message.content == server.models[chat.additional_kwargs["metallm"]["model"]].answer(
        QUESTION
    )
    completion = await llm.acomplete(QUESTION)
    assert completion.additional_kwargs["metallm"]["cost_usd"] > 0
    pieces = [p async for p in await llm.astream_chat([ChatMessage(role="user", content=QUESTION)])]
    assert pieces[-1].additional_kwargs["metallm"]["cost_usd"] > 0
    pieces = [p async for p in await llm.astream_complete(QUESTION)]
    assert pieces[-1].additional_kwargs["metallm"]["cost_usd"] > 0


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def test_tool_calling_over_http(llm, server):
    response = llm.chat_with_tools(
        [FunctionTool.from_defaults(multiply)], user_msg="What is 3 times 3?"
    )
    calls = llm.get_tool_calls_from_response(response)
    assert calls[0].tool_name == "multiply" and calls[0].tool_kwargs == {"a": 3, "b": 3}
    assert server.requests[-1]["tools"][0]["function"]["name"] == "multiply"


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str


def test_structured_output_over_http(llm):
    city = llm.structured_predict(City, PromptTemplate("Name the city in {text}."), text="'Lisbon'")
    assert city == City(name="Lisbon", country="Lisbon")


def test_a_failing_member_falls_back(embedder):
    with OpenAICompatibleServer(
        {"mini": ScriptedModel(fail_status=500), "together-pro": ScriptedModel(reply="fine")}
    ) as server:
        router = Router(list(PRICES), embedder=embedder, seed=0)  # seeded: no exploring
        router.fit(["warm up"], [[1.0, 0.0]], [[0.0, 0.0]])  # mini is the first choice
        llm = MetaLLM(llms=llamaindex_pool(server), prices=PRICES, router=router)
        assert llm.complete(QUESTION).text == "fine"
        pieces = list(llm.stream_chat([ChatMessage(role="user", content=QUESTION)]))
        assert pieces[-1].additional_kwargs["metallm"]["model"] == "together-pro"
        # every failed request was learned as a failure, counted apart from the fit row
        assert server.models["mini"].requests >= 1
        assert router.failure_counts["mini"] == server.models["mini"].requests


def test_every_member_failing_is_one_error(embedder):
    with OpenAICompatibleServer(
        {"mini": ScriptedModel(fail_status=503), "together-pro": ScriptedModel(malformed=True)}
    ) as server:
        llm = MetaLLM(llms=llamaindex_pool(server), router=Router(list(PRICES), embedder=embedder))
        with pytest.raises(AllModelsFailedError) as info:
            llm.complete(QUESTION)
        assert sorted(arm for arm, _ in info.value.errors) == ["mini", "together-pro"]


def test_a_mixed_pool_sends_tool_calls_only_to_members_that_can_call_tools(server, embedder):
    pool = llamaindex_pool(server)
    pool["mini"] = OpenAILike(  # the same server, declared unable to call functions
        model="mini",
        api_base=server.base_url,
        api_key="test-key",
        is_chat_model=True,
        is_function_calling_model=False,
        context_window=16000,
        max_retries=0,
    )
    llm = MetaLLM(llms=pool, prices=PRICES, router=Router(list(PRICES), embedder=embedder, seed=0))
    for _ in range(3):
        response = llm.chat_with_tools(
            [FunctionTool.from_defaults(multiply)], user_msg="What is 3 times 3?"
        )
        meta = response.message.additional_kwargs.get("metallm") or response.additional_kwargs.get(
            "metallm"
        )
        assert meta["model"] == "together-pro" and meta["excluded"] == {"mini": "no tool calling"}
        assert llm.get_tool_calls_from_response(response)[0].tool_kwargs == {"a": 3, "b": 3}
    plain = llm.chat([ChatMessage(role="user", content=QUESTION)], model="mini")
    assert plain.message.content == server.models["mini"].reply  # mini still answers plain chats
