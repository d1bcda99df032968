"""MetaLLMFeedbackHandler scores routed answers and the router learns from it."""

from __future__ import annotations

import pytest
from langchain_core.prompts import ChatPromptTemplate

from metallm import ConfigurationError, LinUCB, Router
from metallm.exceptions import InvalidFeedbackError
from metallm_langchain import ChatMetaLLM, MetaLLMFeedbackHandler
from tests.langchain.fakes import ScriptedChatModel
from tests.topics import ASTRONOMY, COOKING


def _exact(text: str, metadata) -> float:
    return float(text == metadata["expected"])


def test_handler_records_the_evaluators_quality_with_the_real_cost(llm):
    handler = MetaLLMFeedbackHandler(evaluator=_exact, router=llm.router)
    msg = llm.invoke(
        "Is the sky blue?",
        config={"callbacks": [handler], "metadata": {"expected": "small says hi"}},
    )
    meta = msg.response_metadata["metallm"]
    assert handler.recorded == 1
    assert llm.router.counts[meta["model"]] == 1
    assert llm.router.pending_decisions == 0
    # The recorded cost is the one measured from usage: it sets the cost scale.
    assert llm.router.cost_scale == pytest.approx(meta["cost_usd"])


def test_handler_scores_only_the_routers_run_in_a_streamed_chain(llm):
    handler = MetaLLMFeedbackHandler(evaluator=_exact, router=llm.router)
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    list(
        chain.stream(
            {"q": "Is the sky blue?"},
            config={"callbacks": [handler], "metadata": {"expected": "x"}},
        )
    )
    assert handler.recorded == 1
    assert sum(llm.router.counts.values()) == 1


async def test_handler_works_with_ainvoke(llm):
    handler = MetaLLMFeedbackHandler(evaluator=_exact, router=llm.router)
    await llm.ainvoke(
        "Is the sky blue?", config={"callbacks": [handler], "metadata": {"expected": "x"}}
    )
    assert handler.recorded == 1


def test_a_bad_evaluator_value_is_a_typed_error_kept_on_the_handler(llm, caplog):
    handler = MetaLLMFeedbackHandler(evaluator=lambda text, meta: float("nan"), router=llm.router)
    answer = llm.invoke("Is the sky blue?", config={"callbacks": [handler]})
    assert answer.content  # the answer the provider delivered is the caller's
    assert handler.failed == 1 and isinstance(handler.errors[0], InvalidFeedbackError)
    assert "quality must be a number in [0, 1]" in str(handler.errors[0])
    assert "the answer was returned" in caplog.text
    # nothing was learned from the bad value, and the decision can still get real feedback
    assert sum(llm.router.counts.values()) == 0
    assert llm.router.pending_decisions == 1


def test_raise_errors_lets_the_evaluators_error_through_for_tests(llm):
    handler = MetaLLMFeedbackHandler(
        evaluator=lambda text, meta: float("nan"), router=llm.router, raise_errors=True
    )
    with pytest.raises(InvalidFeedbackError, match="quality must be a number in \\[0, 1\\]"):
        llm.invoke("Is the sky blue?", config={"callbacks": [handler]})


def test_an_evaluator_that_raises_never_takes_the_answer_on_any_path(llm):
    def broken(text, meta):
        raise KeyError("label")  # e.g. the run's metadata lacks the reference

    handler = MetaLLMFeedbackHandler(evaluator=broken, router=llm.router)
    config = {"callbacks": [handler]}
    assert llm.invoke("Is the sky blue?", config=config).content
    assert "".join(c.content for c in llm.stream("Is grass green?", config=config))
    assert all(m.content for m in llm.batch(["One?", "Two?"], config=config))
    assert handler.failed == 4 and all(isinstance(e, KeyError) for e in handler.errors)


def test_provider_error_reaches_the_caller_through_the_handler(embedder):
    pool = {
        "bad": ScriptedChatModel(fail_with=TimeoutError("provider timed out")),
        "good": ScriptedChatModel(),
    }
    llm = ChatMetaLLM(models=pool, router=Router(list(pool), embedder=embedder))
    handler = MetaLLMFeedbackHandler(evaluator=_exact, router=llm.router)
    with pytest.raises(TimeoutError):
        llm.invoke("hello there", model="bad", config={"callbacks": [handler]})
    assert llm.router.failure_counts == {"bad": 1, "good": 0} and llm.router.counts == {
        "bad": 0,
        "good": 0,
    }
    assert handler.recorded == 0


def test_the_router_learns_topics_from_feedback(embedder):
    """Model A is right on cooking, model B on astronomy; after feedback, new queries follow."""
    pool = {
        "A": ScriptedChatModel(reply="answer-from-A"),
        "B": ScriptedChatModel(reply="answer-from-B"),
    }
    router = Router(
        list(pool), embedder=embedder, policy=LinUCB(alpha=0.5), cost_weight=0.0, seed=7
    )
    llm = ChatMetaLLM(models=pool, router=router)
    handler = MetaLLMFeedbackHandler(evaluator=_exact, router=llm.router)
    train = [(q, "answer-from-A") for q in COOKING[:18]] + [
        (q, "answer-from-B") for q in ASTRONOMY[:18]
    ]
    for _ in range(4):
        for question, expected in train:
            llm.invoke(
                question, config={"callbacks": [handler], "metadata": {"expected": expected}}
            )
    assert handler.recorded == 4 * len(train)

    picks_cooking = [router.select(q).arm for q in COOKING[18:]]
    picks_astronomy = [router.select(q).arm for q in ASTRONOMY[18:]]
    assert picks_cooking == ["A"] * len(COOKING[18:])
    assert picks_astronomy == ["B"] * len(ASTRONOMY[18:])


def test_the_handler_is_given_its_router_explicitly():
    with pytest.raises(ConfigurationError, match="pass router=llm.router"):
        MetaLLMFeedbackHandler(evaluator=_exact, router=None)
