"""Costs are never silently zero: list prices, the missing-price warning, budgets, cached tokens."""

from __future__ import annotations

import logging

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI
from llama_index.llms.openai_like import OpenAILike

from metallm import Budget, ConfigurationError, Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel, count_tokens
from metallm_langchain import ChatMetaLLM
from metallm_llamaindex import MetaLLM

PROMPT = "What is the tallest mountain on Earth?"
GPT_4O_MINI = (0.15, 0.60)  # genai-prices' list price, USD per 1M input / output tokens


@pytest.fixture(scope="module")
def named_server():
    """Members named as at their provider, so their list prices can be found."""
    server = OpenAICompatibleServer(
        {
            "gpt-4o-mini": ScriptedModel(reply="Mount Everest."),
            "house-model": ScriptedModel(reply="Everest, 8,849 m."),
        }
    )
    server.start()
    yield server
    server.stop()


def _chat(server, name: str) -> ChatOpenAI:
    return ChatOpenAI(model=name, base_url=server.base_url, api_key="k", stream_usage=True)


def _listed_cost(server, name: str) -> float:
    reply = server.models[name].answer(PROMPT)
    return (count_tokens(PROMPT) * GPT_4O_MINI[0] + count_tokens(reply) * GPT_4O_MINI[1]) / 1e6


def test_a_member_without_a_price_is_priced_from_the_list_and_says_so(
    named_server, embedder, caplog
):
    with caplog.at_level(logging.WARNING, logger="metallm"):
        llm = ChatMetaLLM(
            models={"mini": _chat(named_server, "gpt-4o-mini"), "house": _chat(named_server, "house-model")},
            prices={"house": (1.0, 2.0)},
            router=Router(["mini", "house"], embedder=embedder, seed=0),
        )  # fmt: skip
    assert llm.prices["mini"][:2] == GPT_4O_MINI and "no price" not in caplog.text
    meta = llm.invoke(PROMPT, model="mini").response_metadata["metallm"]
    assert meta["price_source"] == "genai-prices"
    assert meta["cost_usd"] == pytest.approx(_listed_cost(named_server, "gpt-4o-mini"))
    assert llm.invoke(PROMPT, model="house").response_metadata["metallm"]["price_source"] == "given"


def test_a_member_with_no_price_anywhere_is_named_once_and_a_budget_refuses_it(
    named_server, caplog
):
    members = {
        "mini": _chat(named_server, "gpt-4o-mini"),
        "house": _chat(named_server, "house-model"),
    }
    with caplog.at_level(logging.WARNING, logger="metallm"):
        ChatMetaLLM(models=members, router=Router(list(members), embedder=None, seed=0))
    warnings = [r.getMessage() for r in caplog.records if "no price" in r.getMessage()]
    assert len(warnings) == 1 and "['house']" in warnings[0] and "prices={'house'" in warnings[0]
    budgeted = Router(list(members), embedder=None, seed=0, budget=Budget(usd_per_query=0.001))
    with pytest.raises(ConfigurationError, match=r"a budget needs every member's price.*house"):
        ChatMetaLLM(models=members, router=budgeted)


def test_a_member_added_later_without_a_price_is_refused_under_a_budget(named_server):
    budgeted = Router(["mini"], embedder=None, seed=0, budget=Budget(usd_per_query=0.001))
    llm = ChatMetaLLM(models={"mini": _chat(named_server, "gpt-4o-mini")}, router=budgeted)
    with pytest.raises(ConfigurationError, match="a budget needs every member's price"):
        llm.add_model("house", _chat(named_server, "house-model"))
    assert "house" not in llm.models and "house" not in llm.router.arms
    llm.add_model("house", _chat(named_server, "house-model"), price=(1.0, 2.0))
    assert llm.router.arms == ("mini", "house")


def test_cached_input_tokens_are_priced_at_the_cached_rate(embedder):
    usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "total_tokens": 1100,
        "input_token_details": {"cache_read": 800},
    }
    member = GenericFakeChatModel(messages=iter([AIMessage("ok", usage_metadata=usage)] * 3))
    llm = ChatMetaLLM(
        models={"m": member},
        prices={"m": (1.0, 2.0, 0.1)},  # USD per 1M input, output, cached input tokens
        router=Router(["m"], embedder=embedder, seed=0),
    )
    meta = llm.invoke("hello").response_metadata["metallm"]
    assert meta["cost_usd"] == pytest.approx((200 * 1.0 + 800 * 0.1 + 100 * 2.0) / 1e6)


def test_an_openailike_member_is_priced_from_the_list_too(named_server, embedder):
    common = dict(api_base=named_server.base_url, api_key="k", is_chat_model=True, max_retries=0)
    llm = MetaLLM(
        llms={"mini": OpenAILike(model="gpt-4o-mini", **common)},
        router=Router(["mini"], embedder=embedder, seed=0),
    )
    assert llm.prices["mini"][:2] == GPT_4O_MINI
    meta = llm.complete(PROMPT).additional_kwargs["metallm"]
    assert meta["price_source"] == "genai-prices"
    assert meta["cost_usd"] == pytest.approx(_listed_cost(named_server, "gpt-4o-mini"))


@pytest.mark.parametrize("adapter", ["langchain", "llamaindex"])
@pytest.mark.parametrize("streamed", [False, True])
def test_cached_tokens_a_provider_reports_over_http_are_priced_at_the_cached_rate(
    embedder, adapter, streamed
):
    server = OpenAICompatibleServer({"cached": ScriptedModel(reply="From cache.", cached_tokens=4)})
    prices = {"m": (1.0, 2.0, 0.1)}  # USD per 1M input, output, cached input tokens
    with server:
        if adapter == "langchain":
            member = ChatOpenAI(
                model="cached", base_url=server.base_url, api_key="k", stream_usage=True
            )
            llm = ChatMetaLLM(models={"m": member}, prices=prices,
                              router=Router(["m"], embedder=embedder, seed=0))  # fmt: skip
            if streamed:
                chunks = list(llm.stream(PROMPT))
                meta = chunks[-1].response_metadata["metallm"]
            else:
                meta = llm.invoke(PROMPT).response_metadata["metallm"]
        else:
            member = OpenAILike(model="cached", api_base=server.base_url, api_key="k",
                                is_chat_model=True, max_retries=0,
                                additional_kwargs={"stream_options": {"include_usage": True}})  # fmt: skip
            llm = MetaLLM(llms={"m": member}, prices=prices,
                          router=Router(["m"], embedder=embedder, seed=0))  # fmt: skip
            if streamed:
                *_, last = llm.stream_complete(PROMPT)
                meta = last.additional_kwargs["metallm"]
            else:
                meta = llm.complete(PROMPT).additional_kwargs["metallm"]
    tokens_in, tokens_out = count_tokens(PROMPT), count_tokens("From cache.")
    expected = ((tokens_in - 4) * 1.0 + 4 * 0.1 + tokens_out * 2.0) / 1e6
    assert meta["cost_usd"] == pytest.approx(expected)
