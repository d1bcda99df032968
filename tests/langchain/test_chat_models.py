"""Behaviour of ChatMetaLLM: every LangChain entry point routes and reports its decision."""

from __future__ import annotations

import pytest
from langchain_core.callbacks import (
    BaseCallbackHandler,
    UsageMetadataCallbackHandler,
    get_usage_metadata_callback,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel

from metallm import ConfigurationError, EmptyQueryError, Router, UnknownArmError
from metallm_langchain import ChatMetaLLM
from tests.langchain.conftest import PRICES
from tests.langchain.fakes import ScriptedChatModel

QUESTION = "What is the boiling point of water at sea level?"


def _meta(message: AIMessage) -> dict:
    return message.response_metadata["metallm"]


def _expected_cost(model: str, words_in: int, reply: str) -> float:
    price_in, price_out = PRICES[model]
    return (words_in * price_in + len(reply.split()) * price_out) / 1e6


def test_invoke_carries_the_decision_and_its_cost(llm, pool):
    msg = llm.invoke(QUESTION)
    meta = _meta(msg)
    assert meta["model"] in pool
    assert msg.content == pool[meta["model"]].reply
    assert set(meta["scores"]) == {"small", "large"}
    assert meta["cost_weight"] == llm.router.cost_weight
    assert meta["cost_usd"] == pytest.approx(_expected_cost(meta["model"], len(QUESTION.split()), msg.content))
    assert msg.response_metadata["model_name"] == f"{meta['model']}-v1"  # the provider's own name
    assert llm.router.pending_decisions == 1


async def test_ainvoke_is_routed(llm, pool):
    msg = await llm.ainvoke(QUESTION)
    assert msg.content == pool[_meta(msg)["model"]].reply


def test_stream_yields_the_chosen_models_words_and_the_decision_last(llm, pool):
    chunks = list(llm.stream(QUESTION))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    meta = _meta(full)
    assert full.content == pool[meta["model"]].reply
    assert "metallm" in chunks[-1].response_metadata
    assert all("metallm" not in c.response_metadata for c in chunks[:-1])
    assert full.usage_metadata["output_tokens"] == len(full.content.split())
    assert meta["cost_usd"] == pytest.approx(_expected_cost(meta["model"], len(QUESTION.split()), full.content))


async def test_astream_yields_the_chosen_models_words(llm, pool):
    chunks = [c async for c in llm.astream(QUESTION)]
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.content == pool[_meta(full)["model"]].reply
    assert len(chunks) > 2


def test_batch_and_abatch_route_each_input(llm):
    outs = llm.batch([QUESTION, "Name a prime number above 100."])
    assert len({_meta(m)["decision_id"] for m in outs}) == 2


async def test_abatch_routes_each_input(llm):
    outs = await llm.abatch([QUESTION, "Name a prime number above 100."])
    assert all(_meta(m)["model"] in ("small", "large") for m in outs)


def test_model_kwarg_forces_a_member(llm):
    for _ in range(3):
        msg = llm.invoke(QUESTION, model="large")
        assert _meta(msg)["model"] == "large"
        assert _meta(msg)["forced"] is True


def test_unknown_forced_model_is_a_clear_error(llm):
    with pytest.raises(UnknownArmError, match="unknown model 'gpt-9'"):
        llm.invoke(QUESTION, model="gpt-9")


def test_routes_on_the_last_human_message(llm, pool):
    msg = llm.invoke([SystemMessage("Be brief."), HumanMessage("hi"), AIMessage("hello"), HumanMessage(QUESTION)])
    first_call = pool[_meta(msg)["model"]].calls[-1]
    assert first_call["messages"][-1].content == QUESTION


def test_messages_without_text_are_rejected(llm):
    with pytest.raises(EmptyQueryError):
        llm.invoke([HumanMessage("   ")])


def test_feedback_updates_the_chosen_model_with_the_measured_cost(llm):
    msg = llm.invoke(QUESTION)
    meta = _meta(msg)
    llm.record_feedback(meta["decision_id"], quality=1.0)
    assert llm.router.counts[meta["model"]] == 1
    assert sum(llm.router.counts.values()) == 1
    assert llm.router.cost_scale == pytest.approx(meta["cost_usd"])


def test_a_chain_uses_the_router_as_its_llm(llm, pool):
    chain = ChatPromptTemplate.from_messages([("human", "Answer briefly: {q}")]) | llm
    msg = chain.invoke({"q": QUESTION})
    assert msg.content == pool[_meta(msg)["model"]].reply


class Add(BaseModel):
    """Add two integers."""

    a: int
    b: int


def test_bind_tools_reaches_the_chosen_member(llm):
    msg = llm.bind_tools([Add], tool_choice="any").invoke("What is 1 + 2?")
    assert msg.tool_calls[0]["name"] == "Add"
    assert msg.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert "metallm" in msg.response_metadata


def test_bind_tools_streams_tool_calls(llm):
    chunks = list(llm.bind_tools([Add]).stream("What is 1 + 2?"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.tool_calls[0]["args"] == {"a": 1, "b": 2}


def test_with_structured_output_parses_the_chosen_answer(llm):
    result = llm.with_structured_output(Add).invoke("What is 1 + 2?")
    assert result == Add(a=1, b=2)


def test_bind_tools_needs_every_member_to_support_tools(embedder):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    llm = ChatMetaLLM(models={"a": FakeListChatModel(responses=["x"]), "b": ScriptedChatModel()})
    with pytest.raises(ConfigurationError, match="do not support tool calling: \\['a'\\]"):
        llm.bind_tools([Add])


def test_pool_and_router_must_match(embedder):
    with pytest.raises(ConfigurationError, match="differ"):
        ChatMetaLLM(models={"a": ScriptedChatModel()}, router=Router(["a", "b"], embedder=embedder))
    with pytest.raises(ConfigurationError, match="not in the pool"):
        ChatMetaLLM(models={"a": ScriptedChatModel()}, prices={"z": (1.0, 1.0)})
    with pytest.raises(ConfigurationError, match="empty"):
        ChatMetaLLM(models={})


def test_provider_error_is_recorded_as_a_failure_and_re_raised(embedder):
    boom = ScriptedChatModel(fail_with=RuntimeError("HTTP 500 from provider"))
    llm = ChatMetaLLM(models={"bad": boom, "good": ScriptedChatModel()},
                      router=Router(["bad", "good"], embedder=embedder))
    with pytest.raises(RuntimeError, match="HTTP 500"):
        llm.invoke(QUESTION, model="bad")
    assert llm.router.counts == {"bad": 1, "good": 0}
    assert llm.router.pending_decisions == 0
    with pytest.raises(RuntimeError, match="HTTP 500"):
        list(llm.stream(QUESTION, model="bad"))
    assert llm.router.counts["bad"] == 2


class RunRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.runs: list[tuple[str, object, object]] = []

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kwargs):
        self.runs.append((serialized.get("id", ["?"])[-1], run_id, parent_run_id))


def _assert_nested(recorder: RunRecorder) -> None:
    names = [name for name, _, _ in recorder.runs]
    assert names == ["ChatMetaLLM", "ScriptedChatModel"], names
    (_, router_run, _), (_, _, inner_parent) = recorder.runs
    assert inner_parent == router_run


@pytest.mark.parametrize("mode", ["invoke", "stream", "chain_stream", "batch"])
def test_the_chosen_models_run_nests_under_the_routers_run(llm, mode):
    recorder = RunRecorder()
    config = {"callbacks": [recorder]}
    if mode == "invoke":
        llm.invoke(QUESTION, config=config)
    elif mode == "stream":
        list(llm.stream(QUESTION, config=config))
    elif mode == "chain_stream":
        list((RunnableLambda(lambda x: x) | llm).stream(QUESTION, config=config))
    else:
        llm.batch([QUESTION], config=config)
    _assert_nested(recorder)


@pytest.mark.parametrize("mode", ["ainvoke", "astream"])
async def test_async_runs_nest_too(llm, mode):
    recorder = RunRecorder()
    config = {"callbacks": [recorder]}
    if mode == "ainvoke":
        await llm.ainvoke(QUESTION, config=config)
    else:
        [c async for c in llm.astream(QUESTION, config=config)]
    _assert_nested(recorder)


async def test_implicit_streaming_inside_astream_events_nests(llm):
    chain = RunnableLambda(lambda x: x) | llm
    starts = [e for e in [ev async for ev in chain.astream_events(QUESTION, version="v2")]
              if e["event"] == "on_chat_model_start"]
    assert [e["name"] for e in starts] == ["ChatMetaLLM", "ScriptedChatModel"]
    assert starts[1]["parent_ids"][-1] == starts[0]["run_id"]


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_usage_is_counted_once(llm, mode):
    handler = UsageMetadataCallbackHandler()
    with get_usage_metadata_callback() as ctx_counter:
        if mode == "invoke":
            msg = llm.invoke(QUESTION, config={"callbacks": [handler]})
        else:
            chunks = list(llm.stream(QUESTION, config={"callbacks": [handler]}))
            msg = chunks[0]
            for c in chunks[1:]:
                msg += c
    truth = len(QUESTION.split()) + len(msg.content.split())
    for counter in (handler, ctx_counter):
        totals = [u["total_tokens"] for u in counter.usage_metadata.values()]
        assert totals == [truth], counter.usage_metadata
