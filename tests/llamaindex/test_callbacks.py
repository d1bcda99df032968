"""The feedback event handler, learning from it, and one router shared with LangChain."""

from __future__ import annotations

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index_instrumentation.dispatcher import instrument_tags

from metallm import ConfigurationError, LinUCB, Router
from metallm_langchain import ChatMetaLLM
from metallm_llamaindex import MetaLLM, MetaLLMFeedbackEventHandler
from tests.langchain.fakes import ScriptedChatModel
from tests.llamaindex.fakes import ScriptedLLM
from tests.topics import ASTRONOMY, COOKING


def _exact(text, tags) -> float:
    return float(text == tags["expected"])


@pytest.fixture
def attached():
    """Attach handlers to the root dispatcher for one test only."""
    root = get_dispatcher()
    added = []

    def attach(handler):
        root.add_event_handler(handler)
        added.append(handler)
        return handler

    yield attach
    for handler in added:
        root.event_handlers.remove(handler)


def test_the_handler_records_the_evaluators_quality_with_the_real_cost(llm, attached):
    handler = attached(MetaLLMFeedbackEventHandler(evaluator=_exact, router=llm.router))
    with instrument_tags({"expected": "small says hi"}):
        response = llm.complete("Is the sky blue?")
    meta = response.additional_kwargs["metallm"]
    assert handler.recorded == 1 and handler.errors == []
    assert llm.router.counts[meta["model"]] == 1
    assert llm.router.cost_scale == pytest.approx(meta["cost_usd"])


def test_the_handler_scores_a_stream_once(llm, attached):
    handler = attached(MetaLLMFeedbackEventHandler(evaluator=_exact, router=llm.router))
    with instrument_tags({"expected": "x"}):
        list(llm.stream_complete("Is the sky blue?"))
    assert handler.recorded == 1
    assert sum(llm.router.counts.values()) == 1


def test_evaluator_errors_are_kept_not_swallowed(llm, attached):
    handler = attached(
        MetaLLMFeedbackEventHandler(evaluator=lambda text, tags: 7.0, router=llm.router)
    )
    llm.complete("Is the sky blue?")
    assert handler.recorded == 0
    assert "quality must be a number in [0, 1]" in str(handler.errors[0])
    assert llm.router.pending_decisions == 1  # the decision waits for valid feedback


def test_the_router_learns_topics_from_feedback(embedder, attached):
    pool = {"A": ScriptedLLM(reply="answer-from-A"), "B": ScriptedLLM(reply="answer-from-B")}
    router = Router(
        list(pool), embedder=embedder, policy=LinUCB(alpha=0.5), cost_weight=0.0, seed=7
    )
    llm = MetaLLM(llms=pool, router=router)
    handler = attached(MetaLLMFeedbackEventHandler(evaluator=_exact, router=router))
    train = [(q, "answer-from-A") for q in COOKING[:18]] + [
        (q, "answer-from-B") for q in ASTRONOMY[:18]
    ]
    for _ in range(4):
        for question, expected in train:
            with instrument_tags({"expected": expected}):
                llm.complete(question)
    assert handler.recorded == 4 * len(train)
    assert [router.select(q).arm for q in COOKING[18:]] == ["A"] * 6
    assert [router.select(q).arm for q in ASTRONOMY[18:]] == ["B"] * 6


def test_one_router_serves_both_adapters(embedder):
    router = Router(
        ["A", "B"], embedder=embedder, policy=LinUCB(alpha=0.5), cost_weight=0.0, seed=3
    )
    lc = ChatMetaLLM(
        models={
            "A": ScriptedChatModel(reply="answer-from-A"),
            "B": ScriptedChatModel(reply="answer-from-B"),
        },
        router=router,
    )
    li = MetaLLM(
        llms={"A": ScriptedLLM(reply="answer-from-A"), "B": ScriptedLLM(reply="answer-from-B")},
        router=router,
    )
    # LangChain traffic teaches cooking -> A, LlamaIndex traffic teaches astronomy -> B
    for _ in range(4):
        for q in COOKING[:18]:
            msg = lc.invoke(q)
            lc.record_feedback(
                msg.response_metadata["metallm"]["decision_id"],
                quality=float(msg.content == "answer-from-A"),
            )
        for q in ASTRONOMY[:18]:
            resp = li.complete(q)
            li.record_feedback(
                resp.additional_kwargs["metallm"]["decision_id"],
                quality=float(resp.text == "answer-from-B"),
            )
    assert lc.router is li.router
    # each adapter now routes the topic it never saw the way the other adapter taught
    assert [li.complete(q).additional_kwargs["metallm"]["model"] for q in COOKING[18:]] == ["A"] * 6
    assert [lc.invoke(q).response_metadata["metallm"]["model"] for q in ASTRONOMY[18:]] == ["B"] * 6


def test_the_handler_is_given_its_router_explicitly():
    with pytest.raises(ConfigurationError, match="pass router=llm.router"):
        MetaLLMFeedbackEventHandler(evaluator=_exact, router=None)
