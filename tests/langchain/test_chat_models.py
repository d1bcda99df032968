"""Behaviour of ChatMetaLLM: every LangChain entry point routes and reports its decision."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langchain_core.callbacks import (
    BaseCallbackHandler,
    UsageMetadataCallbackHandler,
    get_usage_metadata_callback,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from pydantic import BaseModel

from metallm import ConfigurationError, Router
from metallm.exceptions import EmptyQueryError, InvalidFeedbackError, UnknownArmError
from metallm_langchain import ChatMetaLLM
from tests.embedders import CountingEmbedder, wait_for
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
    assert meta["cost_usd"] == pytest.approx(
        _expected_cost(meta["model"], len(QUESTION.split()), msg.content)
    )
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
    assert meta["cost_usd"] == pytest.approx(
        _expected_cost(meta["model"], len(QUESTION.split()), full.content)
    )


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
    msg = llm.invoke(
        [SystemMessage("Be brief."), HumanMessage("hi"), AIMessage("hello"), HumanMessage(QUESTION)]
    )
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


def test_feedback_by_the_router_runs_id(llm):
    run_id = uuid.uuid4()
    meta = _meta(llm.invoke(QUESTION, config={"run_id": run_id}))
    llm.record_feedback(run_id=run_id, quality=1.0)
    assert llm.router.counts[meta["model"]] == 1
    with pytest.raises(InvalidFeedbackError, match="decision_id or by run_id"):
        llm.record_feedback(meta["decision_id"], run_id=run_id, quality=1.0)


async def test_answers_are_delivered_even_when_the_bookkeeping_lost_their_decisions(embedder, pool):
    """8 concurrent calls through a router that keeps only 2 pending decisions: all 8 answer."""
    router = Router(list(pool), embedder=embedder, max_pending=2)
    llm = ChatMetaLLM(models=pool, prices=PRICES, router=router)
    answers = await asyncio.gather(*[llm.ainvoke(f"{QUESTION} ({i})") for i in range(8)])
    assert len(answers) == 8 and all(a.content for a in answers)
    assert router.evicted_decisions == 6
    assert router.bookkeeping_errors >= 1  # the costs of evicted decisions could not be attached


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


def test_tool_calls_go_only_to_members_that_can_call_tools(embedder):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    router = Router(["plain", "tools"], embedder=embedder, seed=0)
    llm = ChatMetaLLM(
        models={
            "plain": FakeListChatModel(responses=["x"] * 10),
            "tools": ScriptedChatModel(tool_args={"a": 1, "b": 2}),
        },
        router=router,
    )
    for _ in range(5):  # however the bandit leans, a tool request never reaches "plain"
        message = llm.bind_tools([Add]).invoke("What is 1 + 2?")
        meta = _meta(message)
        assert meta["model"] == "tools" and message.tool_calls[0]["args"] == {"a": 1, "b": 2}
        assert meta["excluded"] == {"plain": "no tool calling"}
    assert _meta(llm.invoke("hello", model="plain"))["excluded"] == {}
    only_plain = ChatMetaLLM(
        models={"plain": FakeListChatModel(responses=["x"])},
        router=Router(["plain"], embedder=embedder),
    )
    with pytest.raises(ConfigurationError, match="no pool member supports tool calling"):
        only_plain.bind_tools([Add])


def test_pool_and_router_must_match(embedder):
    with pytest.raises(ConfigurationError, match="differ"):
        ChatMetaLLM(models={"a": ScriptedChatModel()}, router=Router(["a", "b"], embedder=embedder))
    with pytest.raises(ConfigurationError, match="not in the pool"):
        ChatMetaLLM(models={"a": ScriptedChatModel()}, prices={"z": (1.0, 1.0)})
    with pytest.raises(ConfigurationError, match="empty"):
        ChatMetaLLM(models={})


class ProviderHTTPError(Exception):
    """What a provider client raises for an HTTP error status (duck-typed by ``status_code``)."""

    status_code = 500


def test_provider_error_is_recorded_as_a_failure_and_re_raised(embedder):
    boom = ScriptedChatModel(fail_with=ProviderHTTPError("HTTP 500 from provider"))
    llm = ChatMetaLLM(
        models={"bad": boom, "good": ScriptedChatModel()},
        router=Router(["bad", "good"], embedder=embedder),
    )
    with pytest.raises(ProviderHTTPError, match="HTTP 500"):
        llm.invoke(QUESTION, model="bad")
    assert llm.router.failure_counts == {"bad": 1, "good": 0} and llm.router.counts == {
        "bad": 0,
        "good": 0,
    }
    assert llm.router.pending_decisions == 0
    with pytest.raises(ProviderHTTPError, match="HTTP 500"):
        list(llm.stream(QUESTION, model="bad"))
    assert llm.router.failure_counts["bad"] == 2


def test_a_members_type_error_reaches_the_caller_and_teaches_nothing(embedder):
    """A bad keyword is the caller's bug: no fallback, no failure learned, no cooldown."""
    llm = ChatMetaLLM(
        models={"a": ScriptedChatModel(fail_with=TypeError("got an unexpected keyword argument 'foo'")),
                "b": ScriptedChatModel(fail_with=TypeError("got an unexpected keyword argument 'foo'"))},
        router=Router(["a", "b"], embedder=embedder),
    )  # fmt: skip
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        llm.invoke(QUESTION)
    assert llm.router.n_updates == 0 and llm.router.failure_counts == {"a": 0, "b": 0}
    assert not llm.router.cooldown.active


def _assert_nested(collector: RunCollectorCallbackHandler) -> None:
    (router_run,) = collector.traced_runs
    assert router_run.name == "ChatMetaLLM"
    assert [child.name for child in router_run.child_runs] == ["ScriptedChatModel"]
    assert router_run.child_runs[0].parent_run_id == router_run.id


@pytest.mark.parametrize("mode", ["invoke", "stream", "batch"])
def test_the_chosen_models_run_nests_under_the_routers_run_in_traces(llm, mode):
    collector = RunCollectorCallbackHandler()
    config = {"callbacks": [collector]}
    if mode == "invoke":
        llm.invoke(QUESTION, config=config)
    elif mode == "stream":
        list(llm.stream(QUESTION, config=config))
    else:
        llm.batch([QUESTION], config=config)
    _assert_nested(collector)


def test_a_chain_stream_nests_too(llm):
    collector = RunCollectorCallbackHandler()
    list((RunnableLambda(lambda x: x) | llm).stream(QUESTION, config={"callbacks": [collector]}))
    (chain_run,) = collector.traced_runs
    (router_run,) = [r for r in chain_run.child_runs if r.name == "ChatMetaLLM"]
    assert [child.name for child in router_run.child_runs] == ["ScriptedChatModel"]


@pytest.mark.parametrize("mode", ["ainvoke", "astream"])
async def test_async_runs_nest_too(llm, mode):
    collector = RunCollectorCallbackHandler()
    config = {"callbacks": [collector]}
    if mode == "ainvoke":
        await llm.ainvoke(QUESTION, config=config)
    else:
        [c async for c in llm.astream(QUESTION, config=config)]
    _assert_nested(collector)


class StartCounter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[str] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.starts.append(serialized.get("id", ["?"])[-1])


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_plain_handlers_see_one_chat_model_run_per_call(llm, mode):
    counter = StartCounter()
    if mode == "invoke":
        llm.invoke(QUESTION, config={"callbacks": [counter]})
    else:
        list(llm.stream(QUESTION, config={"callbacks": [counter]}))
    assert counter.starts == ["ChatMetaLLM"]


async def test_astream_events_streams_each_token_once_and_shows_the_member_as_a_child(llm, pool):
    chain = RunnableLambda(lambda x: x) | llm  # invoke inside a chain: implicit streaming
    events = [ev async for ev in chain.astream_events(QUESTION, version="v2")]
    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    tokens = "".join(e["data"]["chunk"].content for e in streamed)
    assert [e["name"] for e in starts] == ["ChatMetaLLM", "ScriptedChatModel"]
    router, member = starts
    assert member["parent_ids"][-1] == router["run_id"]
    assert {e["run_id"] for e in streamed} == {router["run_id"]}
    assert tokens in {m.reply for m in pool.values()}


async def test_implicit_streaming_still_nests_in_traces(llm):
    collector = RunCollectorCallbackHandler()
    chain = RunnableLambda(lambda x: x) | llm
    [
        ev
        async for ev in chain.astream_events(
            QUESTION, version="v2", config={"callbacks": [collector]}
        )
    ]
    (chain_run,) = collector.traced_runs
    (router_run,) = [r for r in chain_run.child_runs if r.name == "ChatMetaLLM"]
    assert [child.name for child in router_run.child_runs] == ["ScriptedChatModel"]


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


def test_construction_warms_the_embedder_up_in_the_background_unless_told_not_to(pool, monkeypatch):
    warmed, opted_out, by_environment = CountingEmbedder(), CountingEmbedder(), CountingEmbedder()
    ChatMetaLLM(models=pool, router=Router(list(pool), embedder=warmed))
    assert wait_for(lambda: warmed.texts == ["metallm warm-up"])
    ChatMetaLLM(models=pool, router=Router(list(pool), embedder=opted_out), warmup=False)
    monkeypatch.setenv("METALLM_WARMUP", "0")
    ChatMetaLLM(models=pool, router=Router(list(pool), embedder=by_environment))
    assert not wait_for(lambda: opted_out.texts or by_environment.texts, seconds=0.5)


def test_members_are_added_and_removed_at_runtime(pool, embedder, tmp_path):
    from metallm import ConfigurationError, SQLiteStore
    from metallm.exceptions import UnknownArmError

    store = tmp_path / "state.sqlite"
    router = Router(list(pool), embedder=embedder, seed=0, store=SQLiteStore(store))
    llm = ChatMetaLLM(models=dict(pool), prices=PRICES, router=router)
    llm.add_model("new", ScriptedChatModel(reply="new says hi"), price=(0.5, 1.0))
    answer = llm.invoke("Say hello.", model="new")
    assert answer.content == "new says hi"
    assert answer.response_metadata["metallm"]["cost_usd"] > 0  # priced with the new price
    with pytest.raises(ConfigurationError, match="already a member"):
        llm.add_model("new", ScriptedChatModel())
    with pytest.raises(ConfigurationError, match="chat model"):
        llm.add_model("other", "not a model")  # type: ignore[arg-type]
    llm.remove_model("small")
    assert {llm.invoke("Say hello.").response_metadata["metallm"]["model"] for _ in range(8)} <= {
        "large",
        "new",
    }
    with pytest.raises(UnknownArmError):
        llm.remove_model("small")
    # a process that has not added "new" itself sees it in the pool but never routes to it
    elsewhere = ChatMetaLLM(
        models={"large": pool["large"]},
        prices={"large": PRICES["large"]},
        router=Router(["small", "large"], embedder=embedder, store=SQLiteStore(store)),
    )
    assert "new" in elsewhere.router.active_arms
    meta = elsewhere.invoke("Say hello.").response_metadata["metallm"]
    assert meta["model"] == "large" and meta["excluded"]["new"] == "not in this process's pool"


def test_the_model_pickles_with_what_its_router_learned(pool):
    import pickle

    llm = ChatMetaLLM(models=pool, prices=PRICES, router=Router(list(pool), seed=0))
    for _ in range(3):
        msg = llm.invoke(QUESTION)
        llm.record_feedback(_meta(msg)["decision_id"], quality=1.0)
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.router is not None and copy.router.counts == llm._router.counts
    assert copy.router.n_updates == llm._router.n_updates == 3
    assert copy.prices == llm.prices and set(copy.models) == set(pool)
    assert _meta(copy.invoke(QUESTION))["model"] in pool
