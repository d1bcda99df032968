"""Behaviour of MetaLLM: all nine entry points route and carry their decision."""

from __future__ import annotations

import pytest
from llama_index.core import Settings
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.llms import ChatMessage

from metallm import Budget, ConfigurationError, Router
from metallm.exceptions import EmptyQueryError, UnknownArmError
from metallm_llamaindex import MetaLLM, MetaLLMDecisionEvent
from tests.embedders import CountingEmbedder, wait_for
from tests.llamaindex.conftest import PRICES
from tests.llamaindex.fakes import ScriptedLLM

PROMPT = "What is the boiling point of water at sea level?"
MESSAGES = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content=PROMPT),
]


def _cost(model: str, words_in: int, reply: str) -> float:
    return (words_in * PRICES[model][0] + len(reply.split()) * PRICES[model][1]) / 1e6


def test_complete_carries_the_decision_and_its_cost(llm, pool):
    response = llm.complete(PROMPT)
    meta = response.additional_kwargs["metallm"]
    assert response.text == pool[meta["model"]].reply
    assert set(meta["scores"]) == {"small", "large"}
    assert meta["cost_usd"] == pytest.approx(
        _cost(meta["model"], len(PROMPT.split()), response.text)
    )
    assert response.raw["metallm"] == meta
    assert llm.router.pending_decisions == 1


async def test_acomplete_awaits_the_members_async_path(llm, pool):
    response = await llm.acomplete(PROMPT)
    member = pool[response.additional_kwargs["metallm"]["model"]]
    assert member.calls[-1] == ("async", PROMPT)


def test_chat_routes_on_the_last_user_message(llm, pool):
    response = llm.chat(MESSAGES)
    meta = response.additional_kwargs["metallm"]
    assert response.message.content == pool[meta["model"]].reply
    assert meta["cost_usd"] is not None


async def test_achat_is_routed(llm, pool):
    response = await llm.achat(MESSAGES)
    assert response.message.content == pool[response.additional_kwargs["metallm"]["model"]].reply


def test_stream_complete_yields_the_chosen_words_and_the_cost_at_the_end(llm, pool):
    pieces = list(llm.stream_complete(PROMPT))
    meta = pieces[-1].additional_kwargs["metallm"]
    assert "".join(p.delta for p in pieces) == pool[meta["model"]].reply
    assert all(p.additional_kwargs["metallm"]["decision_id"] == meta["decision_id"] for p in pieces)
    assert meta["cost_usd"] == pytest.approx(
        _cost(meta["model"], len(PROMPT.split()), pieces[-1].text)
    )


def test_stream_chat_is_routed(llm, pool):
    pieces = list(llm.stream_chat(MESSAGES))
    meta = pieces[-1].additional_kwargs["metallm"]
    assert pieces[-1].message.content == pool[meta["model"]].reply


async def test_astream_complete_and_astream_chat_are_routed(llm, pool):
    pieces = [p async for p in await llm.astream_complete(PROMPT)]
    meta = pieces[-1].additional_kwargs["metallm"]
    assert pieces[-1].text == pool[meta["model"]].reply
    assert pool[meta["model"]].calls[-1][0] == "async"
    chat_pieces = [p async for p in await llm.astream_chat(MESSAGES)]
    assert chat_pieces[-1].additional_kwargs["metallm"]["model"] in pool


def test_model_kwarg_forces_a_member(llm):
    assert llm.complete(PROMPT, model="large").additional_kwargs["metallm"]["model"] == "large"
    with pytest.raises(UnknownArmError):
        llm.complete(PROMPT, model="gpt-9")


def test_metadata_is_what_every_member_can_do(llm):
    meta = llm.metadata
    assert (meta.context_window, meta.num_output) == (4000, 300)
    assert meta.is_chat_model is True
    assert meta.is_function_calling_model is False  # CustomLLMs cannot call tools
    mixed = MetaLLM(llms={"a": ScriptedLLM(), "b": ScriptedLLM(chat_model=False)})
    assert mixed.metadata.is_chat_model is False
    assert MetaLLM.class_name() == "MetaLLM"


def test_feedback_updates_the_chosen_member(llm):
    meta = llm.complete(PROMPT).additional_kwargs["metallm"]
    llm.record_feedback(meta["decision_id"], quality=1.0)
    assert llm.router.counts[meta["model"]] == 1
    assert llm.router.cost_scale == pytest.approx(meta["cost_usd"])


def test_provider_errors_are_recorded_as_failures_and_re_raised(embedder):
    pool = {
        "bad": ScriptedLLM(fail_with=ConnectionError("connection refused")),
        "good": ScriptedLLM(),
    }
    llm = MetaLLM(llms=pool, router=Router(list(pool), embedder=embedder))
    with pytest.raises(ConnectionError):
        llm.complete(PROMPT, model="bad")
    with pytest.raises(ConnectionError):
        list(llm.stream_chat(MESSAGES, model="bad"))
    assert llm.router.failure_counts == {"bad": 2, "good": 0} and llm.router.counts == {
        "bad": 0,
        "good": 0,
    }


def test_bad_input_and_configuration_are_typed_errors(llm, embedder):
    with pytest.raises(EmptyQueryError):
        llm.complete("  ")
    with pytest.raises(EmptyQueryError):
        llm.chat([ChatMessage(role="user", content="")])
    with pytest.raises(ConfigurationError, match="empty"):
        MetaLLM(llms={})
    with pytest.raises(ConfigurationError, match="differ"):
        MetaLLM(llms={"a": ScriptedLLM()}, router=Router(["a", "b"], embedder=embedder))
    with pytest.raises(ConfigurationError, match="not in the pool"):
        MetaLLM(llms={"a": ScriptedLLM()}, prices={"b": (1.0, 1.0)})


class _Events(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "_Events"

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


def test_each_decision_is_an_instrumentation_event(llm):
    recorder = _Events(events=[])
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        response = llm.complete(PROMPT)
    finally:
        root.event_handlers.remove(recorder)
    decisions = [e for e in recorder.events if isinstance(e, MetaLLMDecisionEvent)]
    assert len(decisions) == 1
    assert (
        decisions[0].decision["decision_id"] == response.additional_kwargs["metallm"]["decision_id"]
    )


class _LLMEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.starts = 0

    def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):
        if event_type == CBEventType.LLM:
            self.starts += 1
        return event_id

    def on_event_end(self, event_type, payload=None, event_id="", **kwargs):
        return None

    def start_trace(self, trace_id=None):
        return None

    def end_trace(self, trace_id=None, trace_map=None):
        return None


def test_settings_callbacks_see_each_call_once(embedder):
    counter = _LLMEvents()
    Settings.callback_manager = CallbackManager([counter])
    # Members built after Settings.callback_manager is set inherit its handlers...
    pool = {"a": ScriptedLLM(reply="alpha"), "b": ScriptedLLM(reply="beta")}
    assert counter in pool["a"].callback_manager.handlers
    llm = MetaLLM(llms=pool, router=Router(list(pool), embedder=embedder))
    Settings.llm = llm
    # ...but the router calls isolated copies, so one complete is one LLM event.
    llm.complete(PROMPT)
    assert counter.starts == 1


PROMPTS = [
    "How do I bake bread?",
    "Why is Mars red?",
    "What is 12 times 7?",
    "Who wrote Hamlet?",
    "How do tides work?",
    "Best pasta shape for pesto?",
]


def _exploring(embedder, **kwargs) -> MetaLLM:
    from metallm import LinUCB

    pool = {name: ScriptedLLM(reply=name) for name in ("a", "b", "c")}
    router = Router(list(pool), embedder=embedder, policy=LinUCB(alpha=5.0), seed=0)
    return MetaLLM(llms=pool, router=router, **kwargs)


def test_session_key_keeps_a_conversation_on_one_member(embedder):
    llm = _exploring(embedder, session_key="session_id")
    sticky = {llm.complete(p, session_id="s1").text for p in PROMPTS}
    spread = {llm.complete(p).text for p in PROMPTS}
    assert len(sticky) == 1
    assert len(spread) > 1


def test_the_session_can_come_from_instrumentation_tags(embedder):
    from llama_index_instrumentation.dispatcher import instrument_tags

    llm = _exploring(embedder, session_key="chat_id")
    with instrument_tags({"chat_id": "c-9"}):
        sticky = {llm.chat([ChatMessage(role="user", content=p)]).message.content for p in PROMPTS}
    assert len(sticky) == 1


def test_session_id_without_session_key_still_works_but_warns(embedder):
    llm = _exploring(embedder)
    with pytest.warns(DeprecationWarning, match="session_key"):
        sticky = {llm.complete(p, session_id="s1").text for p in PROMPTS}
    assert len(sticky) == 1


def test_construction_warms_the_embedder_up_in_the_background_unless_told_not_to(pool, monkeypatch):
    warmed, opted_out, by_environment = CountingEmbedder(), CountingEmbedder(), CountingEmbedder()
    MetaLLM(llms=pool, router=Router(list(pool), embedder=warmed))
    assert wait_for(lambda: warmed.texts == ["metallm warm-up"])
    MetaLLM(llms=pool, router=Router(list(pool), embedder=opted_out), warmup=False)
    monkeypatch.setenv("METALLM_WARMUP", "0")
    MetaLLM(llms=pool, router=Router(list(pool), embedder=by_environment))
    assert not wait_for(lambda: opted_out.texts or by_environment.texts, seconds=0.5)


def test_a_routers_budget_is_held_and_shown_through_metallm(pool, embedder):
    router = Router(list(pool), embedder=embedder, seed=0, budget=Budget(usd_per_query=1e-5))
    llm = MetaLLM(llms=pool, prices=PRICES, router=router)
    first = llm.complete(PROMPT).additional_kwargs["metallm"]
    second = llm.complete(PROMPT).additional_kwargs["metallm"]
    assert second["budget"]["queries"] == 2
    assert second["budget"]["spent_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    assert second["budget"]["cost_weight"] > first["cost_weight"]  # both calls cost above $0.00001


def test_shadows_see_every_call_and_are_never_called(pool, embedder):
    shadow = Router(list(pool), embedder=embedder, cost_weight=0.0, seed=1)
    llm = MetaLLM(llms=pool, prices=PRICES, router=Router(list(pool), embedder=embedder, seed=0),
                  shadows={"quality-first": shadow})  # fmt: skip
    chosen = []
    for _ in range(6):
        meta = llm.complete(PROMPT).additional_kwargs["metallm"]
        assert set(meta["shadows"]) == {"quality-first"}
        llm.record_feedback(meta["decision_id"], quality=1.0)
        chosen.append(meta["model"])
    assert sum(len(member.calls) for member in pool.values()) == len(chosen)  # live calls only
    assert shadow.n_updates == llm.router.n_updates == 6  # it learned the same feedback


def test_members_are_added_and_removed_at_runtime(pool, embedder):
    from metallm import ConfigurationError
    from metallm.exceptions import UnknownArmError

    llm = MetaLLM(llms=dict(pool), prices=PRICES, router=Router(list(pool), embedder=embedder))
    llm.add_model("new", ScriptedLLM(reply="new says hi"), price=(0.5, 1.0))
    response = llm.complete(PROMPT, model="new")
    assert response.text == "new says hi" and response.additional_kwargs["metallm"]["cost_usd"] > 0
    with pytest.raises(ConfigurationError, match="already a member"):
        llm.add_model("new", ScriptedLLM())
    llm.remove_model("small")
    models = {llm.complete(PROMPT).additional_kwargs["metallm"]["model"] for _ in range(8)}
    assert models <= {"large", "new"} and "small" not in llm.llms
    with pytest.raises(UnknownArmError):
        llm.remove_model("small")


def test_a_process_started_with_a_pool_another_process_shrank_starts(
    pool, embedder, tmp_path, caplog
):
    from metallm import SQLiteStore

    path = tmp_path / "shared.sqlite"
    first = MetaLLM(
        llms=dict(pool),
        prices=PRICES,
        router=Router(list(pool), embedder=embedder, store=SQLiteStore(path)),
    )
    first.remove_model("small")  # retired in the store, for every process sharing it
    later = MetaLLM(  # started from the old configuration, as a deploy in progress would
        llms=dict(pool),
        prices=PRICES,
        router=Router(list(pool), embedder=embedder, store=SQLiteStore(path)),
    )
    assert "this process starts without routing to them" in caplog.text
    models = {later.complete(PROMPT).additional_kwargs["metallm"]["model"] for _ in range(6)}
    assert models == {"large"}


def test_a_langchain_model_among_the_llms_is_a_clear_error():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from metallm import ConfigurationError

    with pytest.raises(
        ConfigurationError, match=r"llms\['lc'\] must be a LlamaIndex LLM.*ChatMetaLLM"
    ):
        MetaLLM(llms={"lc": FakeListChatModel(responses=["x"])})
