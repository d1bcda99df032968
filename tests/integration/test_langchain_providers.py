"""ChatMetaLLM over real ChatOpenAI / ChatTogether clients talking HTTP to the local server."""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from metallm import AllModelsFailedError, Cooldown, Fallbacks, LinUCB, Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel, count_tokens
from metallm_langchain import ChatMetaLLM, MetaLLMFeedbackHandler
from tests.integration.conftest import PRICES, langchain_pool
from tests.topics import ASTRONOMY, COOKING

QUESTION = "What is the tallest mountain on Earth?"


@pytest.fixture
def llm(server, embedder) -> ChatMetaLLM:
    return ChatMetaLLM(
        models=langchain_pool(server),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0),
    )


def _expected_cost(server, model: str, prompt: str) -> float:
    reply = server.models[model].answer(prompt)
    return (count_tokens(prompt) * PRICES[model][0] + count_tokens(reply) * PRICES[model][1]) / 1e6


def _joined(chunks):
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    return full


def test_invoke_costs_the_reported_usage_times_the_prices(llm, server):
    for model in PRICES:
        msg = llm.invoke(QUESTION, model=model)
        meta = msg.response_metadata["metallm"]
        assert msg.usage_metadata["input_tokens"] == count_tokens(QUESTION)
        assert meta["cost_usd"] == pytest.approx(_expected_cost(server, model, QUESTION), rel=1e-12)
        assert msg.response_metadata["model_name"] == model


def test_streamed_cost_matches_and_usage_is_counted_once(llm, server):
    for model in PRICES:
        with get_usage_metadata_callback() as counter:
            full = _joined(list(llm.stream(QUESTION, model=model)))
        assert full.content == server.models[model].answer(QUESTION)
        assert full.response_metadata["metallm"]["cost_usd"] == pytest.approx(
            _expected_cost(server, model, QUESTION), rel=1e-12
        )
        truth = count_tokens(QUESTION) + count_tokens(full.content)
        assert [u["total_tokens"] for u in counter.usage_metadata.values()] == [truth]


async def test_ainvoke_astream_and_abatch(llm, server):
    msg = await llm.ainvoke(QUESTION)
    assert msg.content == server.models[msg.response_metadata["metallm"]["model"]].answer(QUESTION)
    full = _joined([c async for c in llm.astream(QUESTION)])
    assert full.response_metadata["metallm"]["cost_usd"] > 0
    outs = await llm.abatch([QUESTION, "Name a large desert."])
    assert all(o.response_metadata["metallm"]["cost_usd"] > 0 for o in outs)


def test_batch(llm):
    outs = llm.batch([QUESTION, "Name a large desert.", "Who wrote Hamlet?"])
    assert len({o.response_metadata["metallm"]["decision_id"] for o in outs}) == 3


class Weather(BaseModel):
    """Get the weather for a city."""

    city: str


def test_tool_calling_and_structured_output_over_http(llm, server):
    msg = llm.bind_tools([Weather], tool_choice="any").invoke("What is the weather in 'Lisbon'?")
    assert msg.tool_calls[0]["name"] == "Weather" and msg.tool_calls[0]["args"] == {
        "city": "Lisbon"
    }
    assert server.requests[-1]["tool_choice"] == "required"
    assert llm.with_structured_output(Weather).invoke("Weather in 'Oslo'?") == Weather(city="Oslo")


def test_strict_tools_and_parallel_calls_reach_the_chosen_members_request(llm, server):
    bound = llm.bind_tools([Weather], strict=True, parallel_tool_calls=False, tool_choice="Weather")
    msg = bound.invoke("What is the weather in 'Lisbon'?")
    assert msg.tool_calls[0]["args"] == {"city": "Lisbon"}
    sent = server.requests[-1]
    assert sent["tools"][0]["function"]["strict"] is True  # what ChatOpenAI sends when asked
    assert sent["parallel_tool_calls"] is False
    assert sent["tool_choice"]["function"]["name"] == "Weather"


# -- fallbacks ------------------------------------------------------------------------------
def _pool(server, **kwargs):
    return {
        name: ChatOpenAI(
            model=name,
            base_url=server.base_url,
            api_key="k",
            max_retries=0,
            stream_usage=True,
            **kwargs,
        )
        for name in server.models
    }


@pytest.mark.parametrize(
    "fault",
    [
        ScriptedModel(fail_status=429),
        ScriptedModel(fail_status=500),
        ScriptedModel(fail_status=503),
        ScriptedModel(malformed=True),
        ScriptedModel(latency=2.0),
    ],
    ids=["429", "500", "503", "malformed", "timeout"],
)
def test_a_failing_arm_falls_back_to_the_next_best(fault, embedder):
    with OpenAICompatibleServer(
        {"broken": fault, "healthy": ScriptedModel(reply="fine")}
    ) as server:
        router = Router(["broken", "healthy"], embedder=embedder, seed=0)
        llm = ChatMetaLLM(models=_pool(server, timeout=0.5), router=router)
        # make the broken arm the router's first choice, then watch it fall back
        router.fit(["warm up"], [[1.0, 0.0]], [[0.0, 0.0]])
        msg = llm.invoke(QUESTION)
        assert msg.content == "fine"
        assert msg.response_metadata["metallm"]["model"] == "healthy"
        assert router.counts["broken"] == 1  # the fit row: real feedback
        assert (
            router.failure_counts["broken"] == 1
        )  # the failure, learned as quality 0, counted apart
        assert router.pending_decisions == 1  # the healthy answer awaits its feedback


def test_connection_refused_falls_back(embedder):
    with OpenAICompatibleServer({"healthy": ScriptedModel(reply="fine")}) as server:
        dead = ChatOpenAI(
            model="dead", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0
        )
        router = Router(["dead", "healthy"], embedder=embedder, seed=0)
        router.fit(["warm up"], [[1.0, 0.0]], [[0.0, 0.0]])
        llm = ChatMetaLLM(models={"dead": dead, **_pool(server)}, router=router)
        assert llm.invoke(QUESTION).content == "fine"


def test_every_arm_failing_raises_one_error_listing_each(embedder):
    with OpenAICompatibleServer(
        {"a": ScriptedModel(fail_status=500), "b": ScriptedModel(fail_status=429)}
    ) as server:
        llm = ChatMetaLLM(models=_pool(server), router=Router(["a", "b"], embedder=embedder))
        with pytest.raises(AllModelsFailedError) as info:
            llm.invoke(QUESTION)
        assert sorted(arm for arm, _ in info.value.errors) == ["a", "b"]
        message = str(info.value)
        assert "a: " in message and "scripted failure 500" in message
        assert (
            "b: " in message and "RateLimitError" in message and "scripted failure 429" in message
        )
        assert llm.router.failure_counts == {"a": 1, "b": 1} and llm.router.counts == {
            "a": 0,
            "b": 0,
        }


def test_fallbacks_can_be_turned_off_and_capped(embedder):
    with OpenAICompatibleServer({n: ScriptedModel(fail_status=500) for n in "abc"}) as server:
        off = ChatMetaLLM(
            models=_pool(server),
            router=Router(list("abc"), embedder=embedder),
            fallbacks=Fallbacks(enabled=False),
        )
        with pytest.raises(Exception, match="scripted failure 500") as info:
            off.invoke(QUESTION)
        assert not isinstance(info.value, AllModelsFailedError)
        capped = ChatMetaLLM(
            models=_pool(server),
            router=Router(list("abc"), embedder=embedder),
            fallbacks=Fallbacks(max_attempts=2),
        )
        with pytest.raises(AllModelsFailedError) as info:
            capped.invoke(QUESTION)
        assert len(info.value.errors) == 2


def test_a_stream_failing_before_its_first_token_falls_back(embedder):
    with OpenAICompatibleServer(
        {"broken": ScriptedModel(fail_status=503), "healthy": ScriptedModel(reply="all good")}
    ) as server:
        router = Router(["broken", "healthy"], embedder=embedder, seed=0)
        router.fit(["warm up"], [[1.0, 0.0]], [[0.0, 0.0]])
        llm = ChatMetaLLM(models=_pool(server), router=router)
        full = _joined(list(llm.stream(QUESTION)))
        assert full.content == "all good"
        assert full.response_metadata["metallm"]["model"] == "healthy"


def test_a_stream_failing_mid_way_raises(embedder):
    flaky = ScriptedModel(reply="one two three four five", stream_fail_after=3)
    with OpenAICompatibleServer({"flaky": flaky, "healthy": ScriptedModel(reply="fine")}) as server:
        router = Router(
            ["flaky", "healthy"], embedder=embedder, seed=0
        )  # seeded: it must pick flaky
        router.fit(["warm up"], [[1.0, 0.0]], [[0.0, 0.0]])
        llm = ChatMetaLLM(models=_pool(server), router=router)
        received = []
        with pytest.raises(Exception):  # noqa: B017 - the client's own error type for a cut stream
            for chunk in llm.stream(QUESTION):
                received.append(chunk.content)
        assert "one" in "".join(received)
        assert router.failure_counts["flaky"] == 1  # the failure was learned, apart from feedback
        assert server.models["healthy"].requests == 0  # no fallback once tokens were out


def test_a_failing_arm_cools_down_and_comes_back(embedder):
    now = [0.0]
    with OpenAICompatibleServer(
        {"flaky": ScriptedModel(fail_status=500), "steady": ScriptedModel(reply="ok")}
    ) as server:
        router = Router(
            ["flaky", "steady"],
            embedder=embedder,
            cooldown=Cooldown(after_failures=2, seconds=60, clock=lambda: now[0]),
        )
        router.fit(["warm up"], [[1.0, 0.0]], [[0.0, 0.0]])
        llm = ChatMetaLLM(models=_pool(server), router=router)
        for _ in range(2):
            with pytest.raises(Exception, match="scripted failure 500"):
                llm.invoke(QUESTION, model="flaky")
        assert router.cooldown.cooling() == {"flaky"}
        before = server.models["flaky"].requests
        for _ in range(3):
            assert llm.invoke(QUESTION).response_metadata["metallm"]["model"] == "steady"
        assert server.models["flaky"].requests == before  # not even tried while cooling
        now[0] = 61.0
        server.models["flaky"].fail_status = None
        assert router.cooldown.cooling() == set()
        assert router.select("anything").arm in {"flaky", "steady"}  # back in the pool


# -- concurrency and sessions -----------------------------------------------------------------
async def test_200_concurrent_calls_with_feedback_lose_nothing(embedder):
    scripts = {
        "mini": ScriptedModel(reply="mini answer", latency=0.01),
        "pro": ScriptedModel(reply="pro answer with more words", latency=0.01),
    }
    with OpenAICompatibleServer(scripts) as server:
        router = Router(list(scripts), embedder=embedder, policy=LinUCB(alpha=0.5), seed=1)
        llm = ChatMetaLLM(
            models=_pool(server), prices={"mini": (0.15, 0.6), "pro": (2.5, 10.0)}, router=router
        )
        handler = MetaLLMFeedbackHandler(
            evaluator=lambda text, meta: float("pro" in text), router=router
        )
        questions = (COOKING + ASTRONOMY) * 5  # 240 real sentences, 200 used
        outs = await asyncio.gather(
            *[llm.ainvoke(q, config={"callbacks": [handler]}) for q in questions[:200]]
        )
    assert handler.recorded == 200 and router.n_updates == 200 and router.pending_decisions == 0
    # Apply the same 200 feedback events one by one to a fresh router: same statistics.
    sequential = Router(list(scripts), embedder=embedder, policy=LinUCB(alpha=0.5))
    for question, msg in zip(questions, outs):
        meta = msg.response_metadata["metallm"]
        sequential.partial_fit(
            [question], [meta["model"]], [float("pro" in msg.content)], [meta["cost_usd"]]
        )
    assert sequential.counts == router.counts
    import numpy as np

    np.testing.assert_allclose(
        router.bandit.stats.A, sequential.bandit.stats.A, rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(
        router.bandit.stats.B, sequential.bandit.stats.B, rtol=1e-10, atol=1e-12
    )


def test_a_session_stays_on_one_model(embedder):
    with OpenAICompatibleServer({n: ScriptedModel(reply=n) for n in ("a", "b", "c")}) as server:
        router = Router(["a", "b", "c"], embedder=embedder, policy=LinUCB(alpha=5.0), seed=0)
        llm = ChatMetaLLM(models=_pool(server), router=router, session_key="session_id")
        for session in ("s1", "s2"):
            models = {
                llm.invoke(q, config={"metadata": {"session_id": session}}).response_metadata[
                    "metallm"
                ]["model"]
                for q in COOKING[:4] + ASTRONOMY[:4]
            }
            assert len(models) == 1
        # LangGraph-style: the session key in `configurable`, and through streaming too
        seen = {
            _joined(
                list(llm.stream(q, config={"configurable": {"session_id": "s3"}}))
            ).response_metadata["metallm"]["model"]
            for q in COOKING[:3]
        }
        assert len(seen) == 1
        # the same spelling as MetaLLM: a per-call option named by session_key (the provider never sees it)
        by_option = {
            llm.invoke(q, session_id="s4").response_metadata["metallm"]["model"]
            for q in ASTRONOMY[:4]
        }
        assert len(by_option) == 1
        assert all("session_id" not in json.dumps(body) for body in server.requests)
        unsticky = ChatMetaLLM(
            models=_pool(server),
            router=Router(["a", "b", "c"], embedder=embedder, policy=LinUCB(alpha=5.0), seed=0),
        )
        spread = {
            unsticky.invoke(q).response_metadata["metallm"]["model"]
            for q in COOKING[:4] + ASTRONOMY[:4]
        }
        assert len(spread) > 1  # without sessions the same traffic spreads over models


def test_a_sticky_session_moves_when_its_model_fails(embedder):
    scripts = {"a": ScriptedModel(reply="a"), "b": ScriptedModel(reply="b")}
    with OpenAICompatibleServer(scripts) as server:
        router = Router(["a", "b"], embedder=embedder)
        llm = ChatMetaLLM(models=_pool(server), router=router, session_key="session_id")
        config = {"metadata": {"session_id": "s"}}
        first = llm.invoke(QUESTION, config=config).response_metadata["metallm"]["model"]
        scripts[first].fail_status = 500
        moved = llm.invoke(QUESTION, config=config).response_metadata["metallm"]["model"]
        assert moved != first
        scripts[first].fail_status = None
        assert llm.invoke(QUESTION, config=config).response_metadata["metallm"]["model"] == moved


def test_real_clients_route_images_and_long_prompts_by_capability(server, embedder):
    from langchain_core.messages import HumanMessage

    llm = ChatMetaLLM(
        models=langchain_pool(server),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0),
        capabilities={"mini": {"image_inputs": False, "max_input_tokens": 500}},
    )
    image = HumanMessage(
        content=[
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    )
    for request, reason in (
        ([image], "no image inputs"),
        ("word " * 1_000, "context of 500 input tokens, the request needs about 1,250"),
    ):
        message = llm.invoke(request)  # real HTTP to the local server
        meta = message.response_metadata["metallm"]
        assert meta["model"] == "together-pro" and meta["excluded"] == {"mini": reason}
        assert message.content == server.models["together-pro"].reply  # its answer, over HTTP


def test_an_evaluator_that_raises_keeps_every_answer_over_real_clients(llm):
    def broken(text, metadata):
        raise KeyError("label")  # the run's metadata lacks the reference

    handler = MetaLLMFeedbackHandler(evaluator=broken, router=llm.router)
    config = {"callbacks": [handler]}
    assert llm.invoke("What is the capital of France?", config=config).content
    assert _joined(list(llm.stream("Name a planet.", config=config))).content
    assert all(m.content for m in llm.batch(["One?", "Two?"], config=config))
    assert handler.failed == 4 and all(isinstance(e, KeyError) for e in handler.errors)


def test_a_closed_event_loop_is_the_callers_error_never_learned_nor_a_fallback(server, embedder):
    members = langchain_pool(server, max_retries=0)
    llm = ChatMetaLLM(
        models=members, prices=PRICES, router=Router(list(members), embedder=embedder)
    )

    async def each_member():  # (clients cached from earlier tests may fail here already)
        for name in members:
            await asyncio.gather(llm.ainvoke("hello", model=name), return_exceptions=True)

    asyncio.run(each_member())  # each member's async client now belongs to a closed loop
    failures_before = sum(llm.router.failure_counts.values())

    async def many():
        calls = [llm.ainvoke(f"question {i}") for i in range(6)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(many())
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert errors  # the reused clients failed on the closed loop ...
    assert sum(llm.router.failure_counts.values()) == failures_before == 0  # ... teaches nothing
    assert all("falling back" not in str(e) for e in errors)


def test_feedback_by_the_chains_or_the_root_runs_id_reaches_the_model_call(llm):
    """The run id an app passes to ``chain.invoke`` (and LangSmith shows) grades the answer."""
    import uuid

    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda

    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | llm
    chain_run = uuid.uuid4()
    first = chain.invoke({"question": QUESTION}, config={"run_id": chain_run})
    llm.record_feedback(run_id=chain_run, quality=1.0)
    assert llm.router.counts[first.response_metadata["metallm"]["model"]] == 1

    app = RunnableLambda(lambda q: chain.invoke({"question": q}))  # the chain one level down
    root_run = uuid.uuid4()
    second = app.invoke(QUESTION, config={"run_id": root_run})
    llm.record_feedback(run_id=root_run, quality=0.0)
    assert sum(llm.router.counts.values()) == 2
    assert llm.router.health()["feedback"]["recorded"] == 2
    assert (
        second.response_metadata["metallm"]["decision_id"]
        != (first.response_metadata["metallm"]["decision_id"])
    )


def test_feedback_for_a_run_id_says_whether_it_was_graded_or_never_seen(llm):
    import uuid

    from metallm.exceptions import DuplicateFeedbackError, UnknownDecisionError

    run = uuid.uuid4()
    llm.invoke(QUESTION, config={"run_id": run})
    llm.record_feedback(run_id=run, quality=1.0)
    with pytest.raises(DuplicateFeedbackError, match="already recorded"):
        llm.record_feedback(run_id=run, quality=1.0)
    with pytest.raises(UnknownDecisionError, match="no decision was made for run .* root run"):
        llm.record_feedback(run_id=uuid.uuid4(), quality=1.0)


class City(BaseModel):
    city: str


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_asks_the_chosen_member_by_the_method_given(llm, server, method):
    """Each method reaches the provider as ChatOpenAI would send it, and parses the same."""
    server.requests.clear()
    prompt = "Which city is 'Oslo'? Answer in JSON."
    if method == "json_mode":  # the schema is in the prompt: any JSON object comes back
        structured = llm.with_structured_output(None, method=method)
    else:
        structured = llm.with_structured_output(City, method=method, strict=True)
    for model in PRICES:
        answer = structured.invoke(prompt, model=model)
        if method == "json_mode":  # the scripted model fills the keys the prompt quotes
            assert answer == {"Oslo": "test"}
        else:
            assert answer == City(city="Oslo")
        body = server.requests[-1]
        if method == "function_calling":
            assert body["tools"][0]["function"]["name"] == "City" and "response_format" not in body
            assert body["tools"][0]["function"]["strict"] is True
        elif method == "json_schema":
            assert body["response_format"]["type"] == "json_schema" and "tools" not in body
            assert body["response_format"]["json_schema"]["strict"] is True
        else:
            assert body["response_format"] == {"type": "json_object"} and "tools" not in body


def test_structured_output_with_the_raw_answer_keeps_a_parsing_error(llm):
    raw = llm.with_structured_output(City, method="json_schema", include_raw=True)
    out = raw.invoke("Which city is 'Oslo'?")
    assert out["parsed"] == City(city="Oslo") and out["parsing_error"] is None
    assert out["raw"].response_metadata["metallm"]["model"] in PRICES


def test_an_unknown_structured_output_method_is_a_clear_error(llm):
    from metallm import ConfigurationError

    with pytest.raises(ConfigurationError, match="method must be one of function_calling"):
        llm.with_structured_output(City, method="xml")
    with pytest.raises(ConfigurationError, match="unknown arguments"):
        llm.with_structured_output(City, methd="json_schema")
    with pytest.raises(ConfigurationError, match="strict is not supported"):
        llm.with_structured_output(City, method="json_mode", strict=True)


def test_a_member_that_only_forces_tool_calls_is_left_out_of_json_schema_calls(server, embedder):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    class ToolOnly(FakeMessagesListChatModel):  # langchain-core's own with_structured_output
        def bind_tools(self, tools, **kwargs):  # noqa: ANN001, ANN003
            return self

    pool = {
        "mini": langchain_pool(server)["mini"],
        "tool-only": ToolOnly(responses=[AIMessage(content="not json")]),
    }
    llm = ChatMetaLLM(
        models=pool,
        prices={"mini": PRICES["mini"], "tool-only": (0.01, 0.01)},
        router=Router(["mini", "tool-only"], embedder=embedder, seed=0),
    )
    structured = llm.with_structured_output(City, method="json_schema", include_raw=True)
    for _ in range(5):
        out = structured.invoke("Which city is 'Oslo'?")
        meta = out["raw"].response_metadata["metallm"]
        assert meta["model"] == "mini" and out["parsed"] == City(city="Oslo")
        assert "no structured output by json_schema" in meta["excluded"]["tool-only"]


def test_create_agent_answers_in_a_schema_by_tool_and_by_provider_strategy(llm, server):
    """The agent line that works with a plain ChatOpenAI works with the router in its place."""
    from langchain.agents import create_agent
    from langchain.agents.structured_output import ProviderStrategy, ToolStrategy
    from langchain_core.tools import tool

    @tool
    def lookup(name: str) -> str:
        """Look up a city."""
        return f"{name} is a city"

    tool_agent = create_agent(llm, [], response_format=ToolStrategy(City))
    out = tool_agent.invoke({"messages": [("user", "Which city is 'Oslo'?")]})
    assert out["structured_response"] == City(city="Oslo")

    server.requests.clear()
    provider_agent = create_agent(llm, [lookup], response_format=ProviderStrategy(City))
    out = provider_agent.invoke({"messages": [("user", "Which city is 'Oslo'?")]})
    assert out["structured_response"] == City(city="Oslo")
    body = server.requests[-1]
    assert body["response_format"]["type"] == "json_schema"
    assert all(t["function"]["strict"] is True for t in body["tools"])  # as ChatOpenAI gets them


def test_the_token_count_is_the_members_own_or_an_estimate_offline(server, embedder):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    class Counting(FakeListChatModel):
        def get_num_tokens(self, text: str) -> int:
            return 42

        def get_num_tokens_from_messages(self, messages, tools=None) -> int:  # noqa: ANN001
            return 7

    class Offline(FakeListChatModel):
        def get_num_tokens(self, text: str) -> int:
            raise ConnectionError("the tokenizer's tables cannot be downloaded")

    counted = ChatMetaLLM(models={"a": Counting(responses=["x"])}, prices={"a": (1.0, 1.0)},
                          router=Router(["a"], embedder=embedder, seed=0))  # fmt: skip
    assert counted.get_num_tokens("anything") == 42
    assert counted.get_num_tokens_from_messages([("user", "hi")]) == 7
    offline = ChatMetaLLM(models={"a": Offline(responses=["x"])}, prices={"a": (1.0, 1.0)},
                          router=Router(["a"], embedder=embedder, seed=0))  # fmt: skip
    assert offline.get_num_tokens("a" * 40) == 10  # about four characters a token, not 0


def test_invoke_over_streaming_members_reports_their_tokens_on_the_routers_run(server, embedder):
    from langchain_core.callbacks import BaseCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs) -> None:  # noqa: ANN003
            self.tokens.append(token)

    llm = ChatMetaLLM(
        models=langchain_pool(server, streaming=True),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0),
    )
    handler = Tokens()
    msg = llm.invoke(QUESTION, config={"callbacks": [handler]})
    assert "".join(handler.tokens) == msg.content and len(handler.tokens) > 1
    assert msg.response_metadata["metallm"]["cost_usd"] is not None


def _traced_runs(llm: ChatMetaLLM, call) -> list:  # noqa: ANN001
    """The root runs a tracer saw while ``call(config)`` ran."""
    from langchain_core.tracers.base import BaseTracer

    class Collect(BaseTracer):
        def __init__(self) -> None:
            super().__init__()
            self.roots: list = []

        def _persist_run(self, run) -> None:  # noqa: ANN001
            self.roots.append(run)

    tracer = Collect()
    result = call({"callbacks": [tracer]})
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return tracer.roots


@pytest.mark.parametrize("path", ["invoke", "stream", "batch", "ainvoke", "astream"])
def test_traces_carry_the_chosen_members_model_and_provider_on_its_child_run(llm, path):
    async def astream(config):  # noqa: ANN001
        return [c async for c in llm.astream(QUESTION, config=config)]

    calls = {
        "invoke": lambda config: llm.invoke(QUESTION, config=config),
        "stream": lambda config: list(llm.stream(QUESTION, config=config)),
        "batch": lambda config: llm.batch([QUESTION, QUESTION], config=config),
        "ainvoke": lambda config: llm.ainvoke(QUESTION, config=config),
        "astream": astream,
    }
    roots = _traced_runs(llm, calls[path])
    assert roots and all(run.name == "ChatMetaLLM" for run in roots)
    providers = {"mini": "openai", "together-pro": "together"}
    for run in roots:
        metadata = run.extra["metadata"]
        # the router's own run is not priced by LangSmith (no list price for "metallm"), so
        # the usage both runs carry is priced once: on the member's run, by its own name
        assert (metadata["ls_provider"], metadata["ls_model_name"]) == ("metallm", "metallm")
        (child,) = run.child_runs
        message = run.outputs["generations"][0][0]["message"]
        chosen = message["kwargs"]["response_metadata"]["metallm"]["model"]
        child_metadata = child.extra["metadata"]
        assert child_metadata["ls_model_name"] == chosen
        assert child_metadata["ls_provider"] == providers[chosen]
        assert child_metadata["metallm_model"] == chosen


async def test_astream_events_show_the_chosen_members_run_as_a_child_and_each_token_once(llm):
    from langchain_core.prompts import ChatPromptTemplate

    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm
    events = [e async for e in chain.astream_events({"q": QUESTION}, version="v2")]
    starts = {e["name"]: e for e in events if e["event"] == "on_chat_model_start"}
    router, member = starts.pop("ChatMetaLLM"), starts.popitem()[1]
    assert member["parent_ids"][-1] == router["run_id"]
    assert member["parent_ids"][:-1] == router["parent_ids"]
    assert member["metadata"]["metallm_model"] in PRICES
    ends = [e for e in events if e["event"] == "on_chat_model_end"]
    assert {e["run_id"] for e in ends} == {router["run_id"], member["run_id"]}
    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert {e["run_id"] for e in streamed} == {router["run_id"]}  # tokens once, the router's
    answer = next(e for e in ends if e["run_id"] == router["run_id"])["data"]["output"]
    assert "".join(e["data"]["chunk"].text for e in streamed) == answer.text


def test_the_model_serializes_with_dumpd_and_loads_back_without_secrets(server, embedder):
    from langchain_core.load import dumpd, load

    members = {  # ChatTogether does not serialize (LangChain's choice), nor does httpx.Timeout
        name: ChatOpenAI(model=name, base_url=server.base_url, api_key="test-key", timeout=60.0)
        for name in PRICES
    }
    llm = ChatMetaLLM(
        models=members,
        prices=PRICES,
        fallbacks=Fallbacks(max_attempts=1),
        router=Router(list(PRICES), embedder=embedder, seed=0),
    )
    serialized = dumpd(llm)
    assert "test-key" not in json.dumps(serialized)  # secrets by reference only
    loaded = load(
        serialized,
        secrets_map={"OPENAI_API_KEY": "test-key"},
        valid_namespaces=["metallm_langchain"],
        allowed_objects=[ChatMetaLLM, ChatOpenAI],  # LangChain's "all" lists its own classes
    )
    assert isinstance(loaded, ChatMetaLLM)
    assert loaded.dict() == llm.dict()
    assert loaded.fallbacks == Fallbacks(max_attempts=1)
    assert loaded.invoke(QUESTION, model="mini").content == server.models["mini"].answer(QUESTION)


def test_feedback_by_a_langgraph_threads_last_run_id_grades_that_runs_last_answer(llm):
    """An agent on a thread (a checkpointer): each turn's run id grades that turn's answer."""
    import uuid

    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    agent = create_agent(llm, [], checkpointer=InMemorySaver())
    turns = []
    for text in (QUESTION, "And the second tallest?"):
        run = uuid.uuid4()
        config = {"run_id": run, "configurable": {"thread_id": "thread-1"}}
        out = agent.invoke({"messages": [("user", text)]}, config=config)
        turns.append((run, out["messages"][-1].response_metadata["metallm"]))
    (_, first), (last_run, last) = turns
    llm.record_feedback(run_id=last_run, quality=1.0)
    assert llm.router.counts[last["model"]] == 1
    llm.record_feedback(first["decision_id"], quality=0.0)  # the earlier turn is still open
    assert sum(llm.router.counts.values()) == 2


async def test_a_cancelled_call_is_the_callers_choice_never_learned_nor_a_fallback(embedder):
    """An app that cancels (a timeout of its own, a user who left) does not teach a failure."""
    slow = ScriptedModel(reply="slow answer", latency=2.0)
    fast = ScriptedModel(reply="fast answer")
    with OpenAICompatibleServer({"slow": slow, "fast": fast}) as server:
        llm = ChatMetaLLM(
            models=_pool(server),
            prices={"slow": (1.0, 1.0), "fast": (1.0, 1.0)},
            router=Router(["slow", "fast"], embedder=embedder, seed=0),
        )
        for call in (
            llm.ainvoke(QUESTION, model="slow"),
            _drain(llm.astream(QUESTION, model="slow")),
        ):
            task = asyncio.ensure_future(call)
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert llm.router.failure_counts == {"slow": 0, "fast": 0}
        assert fast.requests == 0  # no fallback to the other member
        assert llm.router.health()["n_updates"] == 0  # nothing learned either way


async def _drain(chunks):  # noqa: ANN001, ANN202
    return [c async for c in chunks]
