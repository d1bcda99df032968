"""Judges over real clients: a ChatOpenAI judge on the local server grades routed answers.

The members and the judge talk HTTP to local OpenAI-compatible servers. The judge answers
in openevals' schema; the user's calls never wait for it (held back, it grades nothing until
every call has returned), never fail because
of it, and its grades become the router's feedback, with its spend counted apart.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from metallm import Router, SQLiteStore
from metallm.exceptions import DuplicateFeedbackError
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_langchain import ChatMetaLLM, MetaLLMFeedbackHandler
from metallm_langchain.judges import ChatModelJudge
from tests.integration.conftest import PRICES, langchain_pool

JUDGE_PRICE = (1.0, 4.0)  # USD per 1M input / output tokens
ROOT = Path(__file__).resolve().parents[2]
JUDGE_WAIT = 0.2
RUN = uuid.uuid4()


def _score(prompt: str) -> dict:
    """The scripted judge: the mini member's answer is good, the other's poor."""
    good = "Hello from mini" in prompt
    return {"reasoning": "graded by the script", "score": 0.9 if good else 0.3}


@pytest.fixture(scope="module")
def judge_server():
    scripts = {
        "judge": ScriptedModel(tool_args=_score, latency=JUDGE_WAIT),
        "broken-judge": ScriptedModel(fail_status=500),
    }
    with OpenAICompatibleServer(scripts) as server:
        yield server


def _judge(server, name: str = "judge") -> ChatModelJudge:
    model = ChatOpenAI(model=name, base_url=server.base_url, api_key="k", max_retries=0)
    return ChatModelJudge(model, price=JUDGE_PRICE)


def _llm(server, embedder) -> ChatMetaLLM:
    return ChatMetaLLM(
        models=langchain_pool(server),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0),
    )


def test_every_call_path_is_graded_in_the_background_without_waiting(
    server, judge_server, embedder
):
    llm = _llm(server, embedder)
    judge, release = _judge(judge_server), threading.Event()

    def held_back(prompt, answer, **kwargs):  # noqa: ANN001, ANN003, ANN202
        release.wait(60)  # the judge cannot answer before every call has returned
        return judge(prompt, answer, **kwargs)

    grader = llm.router.grade_with(held_back, sample_rate=1.0)
    handler = MetaLLMFeedbackHandler(grader=grader, router=llm.router)
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm
    config = {"callbacks": [handler]}
    answers = [chain.invoke({"q": "Say hello, please."}, config=config)]
    answers.append(_joined(list(chain.stream({"q": "Say hello again."}, config=config))))
    answers += chain.batch([{"q": "Hello?"}, {"q": "Hi there?"}], config=config)
    answers.append(asyncio.run(chain.ainvoke({"q": "An async hello."}, config=config)))
    assert all(a.content for a in answers)  # every call answered with the judge held back
    assert grader.stats()["graded"] == 0 and llm.router.n_updates == 0
    release.set()
    assert grader.wait(60)
    stats = grader.stats()
    assert (stats["submitted"], stats["graded"], stats["failed"]) == (5, 5, 0)
    assert llm.router.n_updates == 5
    assert stats["spent_usd"] > 0  # the judge's spend, priced from its reported usage ...
    routing = sum(a.response_metadata["metallm"]["cost_usd"] for a in answers)
    assert stats["spent_usd"] != pytest.approx(routing)  # ... and apart from routing's
    assert llm.router.health()["grading"] == [stats]
    grader.close()


def test_the_judges_grades_teach_the_router_which_member_answers_well(
    server, judge_server, embedder
):
    llm = _llm(server, embedder)
    grader = llm.router.grade_with(_judge(judge_server), sample_rate=1.0)
    handler = MetaLLMFeedbackHandler(grader=grader, router=llm.router)
    for model in PRICES:
        for i in range(3):
            llm.invoke(f"Say hello ({i}).", model=model, config={"callbacks": [handler]})
    assert grader.wait(60)
    predicted = llm.router.predict(["Say hello."], widths=False).quality[0]
    by_model = dict(zip(llm.router.arms, predicted))
    assert by_model["mini"] > by_model["together-pro"]  # 0.9 against 0.3, from the judge alone
    grader.close()


def test_a_users_thumbs_replace_the_judges_grade_of_the_same_answer(server, judge_server, embedder):
    llm = _llm(server, embedder)
    grader = llm.router.grade_with(_judge(judge_server), sample_rate=1.0)
    handler = MetaLLMFeedbackHandler(grader=grader, router=llm.router)
    answer = llm.invoke("Say hello.", model="mini", config={"callbacks": [handler], "run_id": RUN})
    assert grader.wait(60)
    decision_id = answer.response_metadata["metallm"]["decision_id"]
    assert llm.router.grade_in_force(decision_id) == ("judge", 0.9)
    llm.record_feedback(run_id=RUN, quality=0.0)  # the user's thumbs down, by the run id
    assert llm.router.grade_in_force(decision_id) == ("human", 0.0)
    with pytest.raises(DuplicateFeedbackError, match="graded by 'human'"):
        llm.record_feedback(decision_id, quality=1.0, source="judge")
    grader.close()


async def test_answers_handed_off_are_graded_by_a_separate_grading_process(
    server, judge_server, embedder, tmp_path
):
    """Workers hand each answer (sync, streamed, batched and async calls) to the store; a
    separate ``metallm grade`` process reads them, asks the judge over HTTP and records the
    judge's grades; the worker learns them from the store."""
    path = tmp_path / "state.sqlite"
    llm = ChatMetaLLM(
        models=langchain_pool(server),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0,
                      store=SQLiteStore(path, store_prompts=True)),
    )  # fmt: skip
    handoff = llm.router.hand_off_grading(sample_rate=1.0)
    handler = MetaLLMFeedbackHandler(grader=handoff, router=llm.router)
    config = {"callbacks": [handler]}
    answers = [llm.invoke("Say hello, please.", config=config)]
    answers.append(_joined(list(llm.stream("Say hello again.", config=config))))
    answers += llm.batch(["Hello?", "Hi there?"], config=config)
    answers.append(await llm.ainvoke("An async hello.", config=config))
    assert handoff.wait(30) and handoff.stats()["handed_off"] == 5
    assert llm.router.n_updates == 0  # nothing graded in the worker
    result = subprocess.run(
        [sys.executable, "-m", "metallm", "grade", "--store", str(path), "--models",
         ",".join(PRICES), "--judge", "tests.integration.grading_judge:judge", "--once"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT), "JUDGE_URL": judge_server.base_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "graded 5, failed 0" in result.stdout
    llm.router.sync()
    assert llm.router.n_updates == 5
    for answer in answers:
        decision_id = answer.response_metadata["metallm"]["decision_id"]
        expected = 0.9 if "Hello from mini" in answer.content else 0.3
        assert llm.router.grade_in_force(decision_id) == ("judge", expected)
    handoff.close()
    llm.router.close()


def test_a_failing_judge_never_reaches_the_users_call(server, judge_server, embedder):
    llm = _llm(server, embedder)
    grader = llm.router.grade_with(_judge(judge_server, "broken-judge"), sample_rate=1.0)
    handler = MetaLLMFeedbackHandler(grader=grader, router=llm.router, raise_errors=True)
    answer = llm.invoke("Say hello.", config={"callbacks": [handler]})
    assert answer.content
    assert grader.wait(60)
    stats = grader.stats()
    assert (stats["retried"], stats["failed"], stats["graded"]) == (1, 1, 0)
    assert llm.router.n_updates == 0
    grader.close()


def test_a_reference_in_the_run_metadata_reaches_the_correctness_rubric(
    server, judge_server, embedder
):
    llm = _llm(server, embedder)
    judge = ChatModelJudge(
        ChatOpenAI(model="judge", base_url=judge_server.base_url, api_key="k"), rubric="correctness"
    )
    grader = llm.router.grade_with(judge, sample_rate=1.0)
    handler = MetaLLMFeedbackHandler(grader=grader, router=llm.router)
    llm.invoke("Greet me.", config={"callbacks": [handler], "metadata": {"reference": "Hi!"}})
    assert grader.wait(60)
    sent = judge_server.requests[-1]["messages"][-1]["content"]
    assert "<reference_outputs>\nHi!\n</reference_outputs>" in sent and "Greet me." in sent
    grader.close()


def _joined(chunks):  # noqa: ANN001, ANN202
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    return full


def test_pairwise_a_reference_model_answers_and_the_judge_grades_against_it(judge_server):
    """No reference answer given: the reference model answers over HTTP, the judge compares the
    routed answer with it (openevals' correctness rubric), and both calls are the judge's spend."""
    from metallm.testing import count_tokens

    scripts = {"strong": ScriptedModel(reply="Paris, on the Seine.")}
    with OpenAICompatibleServer(scripts) as reference_server:
        strong = ChatOpenAI(model="strong", base_url=reference_server.base_url, api_key="k")
        judge = ChatModelJudge(
            ChatOpenAI(model="judge", base_url=judge_server.base_url, api_key="k"),
            price=JUDGE_PRICE,
            reference_model=strong,
            reference_price=(2.0, 8.0),
        )
        grade = judge("What is the capital of France?", "Hello from mini: Paris.")
        assert reference_server.models["strong"].requests == 1
    sent = judge_server.requests[-1]["messages"][-1]["content"]
    assert "<reference_outputs>\nParis, on the Seine.\n</reference_outputs>" in sent
    assert grade.quality == 0.9  # the scripted judge's score for mini's answer
    prompt_tokens = count_tokens("What is the capital of France?")
    reference = (prompt_tokens * 2.0 + count_tokens("Paris, on the Seine.") * 8.0) / 1e6
    assert grade.cost_usd is not None and grade.cost_usd > reference  # both calls counted
