"""LlamaIndex's evaluators as judges, over OpenAILike members and an OpenAILike judge on HTTP.

A RAG query engine answers through MetaLLM; the event handler hands each routed answer to a
grader without waiting; LlamaIndex's own ``CorrectnessEvaluator`` (against a reference) and
``FaithfulnessEvaluator`` (against the retrieved passages) grade it, and the grades become the
router's feedback.
"""

from __future__ import annotations

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator
from llama_index.core.instrumentation import get_dispatcher
from llama_index.llms.openai_like import OpenAILike
from llama_index_instrumentation.dispatcher import instrument_tags

from metallm import ConfigurationError, Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_llamaindex import MetaLLM, MetaLLMFeedbackEventHandler
from metallm_llamaindex.judges import EvaluatorJudge
from tests.integration.conftest import PRICES
from tests.integration.test_llamaindex_providers import llamaindex_pool

DOCS = [Document(text="The Eiffel Tower is in Paris and was finished in 1889.")]


def _verdict(prompt: str) -> str:
    """The scripted judge: a 1-5 score for correctness prompts, YES for faithfulness ones."""
    return "4.0\nCorrect and complete." if "reference answer" in prompt.lower() else "YES"


def _by_member(prompt: str) -> str:
    """A judge that finds mini's answers good (5 of 5) and together-pro's poor (2 of 5)."""
    return "5.0\nRight." if "Hello from mini" in prompt else "2.0\nWrong."


@pytest.fixture(scope="module")
def judge_server():
    scripts = {"judge": ScriptedModel(reply=_verdict), "strict": ScriptedModel(reply=_by_member)}
    with OpenAICompatibleServer(scripts) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_settings():
    saved = (Settings._llm, Settings._embed_model, Settings._callback_manager)
    yield
    Settings._llm, Settings._embed_model, Settings._callback_manager = saved


def _judge_llm(server, name: str = "judge") -> OpenAILike:
    return OpenAILike(
        model=name, api_base=server.base_url, api_key="k", is_chat_model=True, max_retries=0
    )


@pytest.fixture
def handler_for():
    added = []

    def attach(grader, router):  # noqa: ANN001, ANN202
        handler = MetaLLMFeedbackEventHandler(grader=grader, router=router)
        get_dispatcher().add_event_handler(handler)
        added.append(handler)
        return handler

    yield attach
    dispatcher = get_dispatcher()
    for handler in added:
        dispatcher.event_handlers.remove(handler)


def test_a_rag_answer_is_graded_against_its_reference_by_correctness(
    server, judge_server, embedder, handler_for
):
    llm = MetaLLM(llms=llamaindex_pool(server), prices=PRICES,
                  router=Router(list(PRICES), embedder=embedder, seed=0))  # fmt: skip
    judge = EvaluatorJudge(CorrectnessEvaluator(llm=_judge_llm(judge_server)))
    grader = llm.router.grade_with(judge, sample_rate=1.0)
    handler_for(grader, llm.router)
    Settings.embed_model = MockEmbedding(embed_dim=8)
    engine = VectorStoreIndex.from_documents(DOCS).as_query_engine(llm=llm)
    with instrument_tags({"reference": "Paris, finished in 1889."}):
        response = engine.query("Where is the Eiffel Tower?")
    assert str(response)
    assert grader.wait(60)
    stats = grader.stats()
    assert (stats["graded"], stats["failed"]) == (1, 0)
    assert llm.router.n_updates == 1
    sent = judge_server.requests[-1]["messages"]
    assert "Paris, finished in 1889." in str(sent) and "Where is the Eiffel Tower?" in str(sent)
    grader.close()


def test_a_persons_grade_replaces_the_judges_and_a_late_judge_never_replaces_the_persons(
    server, judge_server, embedder, handler_for
):
    llm = MetaLLM(llms=llamaindex_pool(server), prices=PRICES,
                  router=Router(list(PRICES), embedder=embedder, seed=0))  # fmt: skip
    judge = EvaluatorJudge(CorrectnessEvaluator(llm=_judge_llm(judge_server)))
    grader = llm.router.grade_with(judge, sample_rate=1.0)
    handler_for(grader, llm.router)
    with instrument_tags({"reference": "Paris."}):
        first = llm.complete("Where is the Eiffel Tower?")
    assert grader.wait(60)
    decision_id = first.additional_kwargs["metallm"]["decision_id"]
    assert llm.router.grade_in_force(decision_id) == ("judge", 0.75)  # 4 of 5, onto [0, 1]
    llm.record_feedback(decision_id, quality=0.0)  # the user's thumbs down
    assert llm.router.grade_in_force(decision_id) == ("human", 0.0)
    assert llm.router.health()["feedback"]["corrected"] == 1
    grader.close()


async def test_judge_grades_alone_teach_the_router_sync_and_async(
    server, judge_server, embedder, handler_for
):
    """No labels: the judge's grades of answers from both paths are all the router learns from,
    and it learns that the cheaper member answers as well (here: better)."""
    llm = MetaLLM(llms=llamaindex_pool(server), prices=PRICES,
                  router=Router(list(PRICES), embedder=embedder, seed=0))  # fmt: skip
    judge = EvaluatorJudge(CorrectnessEvaluator(llm=_judge_llm(judge_server, "strict")))
    grader = llm.router.grade_with(judge, sample_rate=1.0)
    handler_for(grader, llm.router)
    with instrument_tags({"reference": "A greeting."}):
        for i, model in enumerate(list(PRICES) * 3):
            if i % 2:
                await llm.acomplete(f"Say hello ({i}).", model=model)
            else:
                llm.complete(f"Say hello ({i}).", model=model)
    assert grader.wait(60)
    assert grader.stats()["graded"] == 6 and llm.router.n_updates == 6
    predicted = llm.router.predict(["Say hello."], widths=False).quality[0]
    by_model = dict(zip(llm.router.arms, predicted))
    assert by_model["mini"] > by_model["together-pro"]  # 1.0 against 0.25, from the judge alone
    assert llm.router.select("Say hello, please.").arm == "mini"  # and mini is the cheaper one
    grader.close()


def test_faithfulness_grades_the_answer_against_the_retrieved_passages(judge_server):
    judge = EvaluatorJudge(FaithfulnessEvaluator(llm=_judge_llm(judge_server)))
    grade = judge(
        "When was the Eiffel Tower finished?",
        "It was finished in 1889.",
        context=["The Eiffel Tower is in Paris and was finished in 1889."],
    )
    assert grade.quality == 1.0
    assert "finished in 1889" in str(judge_server.requests[-1]["messages"])


def test_a_correctness_score_is_mapped_from_one_to_five_onto_zero_to_one(judge_server):
    judge = EvaluatorJudge(CorrectnessEvaluator(llm=_judge_llm(judge_server)))
    grade = judge("Where is it?", "Paris.", reference="In Paris.")
    assert grade.quality == pytest.approx((4.0 - 1.0) / 4.0)
    assert grade.comment == "Correct and complete."


def test_what_is_not_an_evaluator_is_refused():
    with pytest.raises(ConfigurationError, match="LlamaIndex evaluator"):
        EvaluatorJudge(lambda **_: 1.0)  # type: ignore[arg-type]
