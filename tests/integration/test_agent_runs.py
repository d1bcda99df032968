"""Whole agent runs on one model: a create_agent (LangGraph) run and a LlamaIndex FunctionAgent run.

Real ChatOpenAI / OpenAILike members talk HTTP to the local fake provider, which makes a tool
call when given tools and answers once the tool's result is in: every run is two model steps.
The router is cold, so each choice is a coin toss between tied models: routed step by step, some
runs switch model halfway; by default none does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike

from metallm import Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_langchain import ChatMetaLLM
from metallm_llamaindex import MetaLLM

ROOT = Path(__file__).resolve().parents[2]
PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}


@pytest.fixture(scope="module")
def provider():
    scripts = {m: ScriptedModel(reply=f"{m}: it is sunny.", tool_args="schema") for m in PRICES}
    with OpenAICompatibleServer(scripts) as server:
        yield server


def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"It is sunny in {city}."


def _langchain_runs(provider, embedder, n: int, **options) -> list[list[dict]]:
    members = {m: ChatOpenAI(model=m, base_url=provider.base_url, api_key="k", max_retries=0)
               for m in PRICES}  # fmt: skip
    llm = ChatMetaLLM(models=members, prices=PRICES,
                      router=Router(list(PRICES), embedder=embedder, seed=0), **options)  # fmt: skip
    agent = create_agent(llm, tools=[tool(weather)])
    runs = []
    for i in range(n):
        out = agent.invoke({"messages": [{"role": "user", "content": f"Weather in 'Oslo'? ({i})"}]})
        runs.append([m.response_metadata["metallm"] for m in out["messages"] if m.type == "ai"])
    return runs


def test_a_create_agent_run_keeps_one_model_across_its_steps_by_default(provider, embedder):
    runs = _langchain_runs(provider, embedder, 16)
    assert all(len(steps) == 2 for steps in runs)  # a tool call, then the answer
    assert all(len({s["model"] for s in steps}) == 1 for steps in runs)
    assert all(steps[1]["sticky"] and steps[1]["propensity"] == 1.0 for steps in runs)
    assert len({steps[0]["model"] for steps in runs}) == 2  # each run still chose afresh


def test_routed_step_by_step_some_agent_runs_switch_model(provider, embedder):
    runs = _langchain_runs(provider, embedder, 16, stick_to_run=False)
    assert any(len({s["model"] for s in steps}) > 1 for steps in runs)
    assert not any(s["sticky"] for steps in runs for s in steps)


def test_a_plain_call_is_not_part_of_a_run(provider, embedder):
    members = {m: ChatOpenAI(model=m, base_url=provider.base_url, api_key="k") for m in PRICES}
    llm = ChatMetaLLM(models=members, prices=PRICES,
                      router=Router(list(PRICES), embedder=embedder, seed=0))  # fmt: skip
    metas = [llm.invoke("Weather in 'Rome'?").response_metadata["metallm"] for _ in range(6)]
    assert not any(m["sticky"] for m in metas)


async def _llamaindex_runs(provider, embedder, n: int, **options) -> list[list[str]]:
    common = dict(api_base=provider.base_url, api_key="k", is_chat_model=True,
                  is_function_calling_model=True, max_retries=0, context_window=16000)  # fmt: skip
    llm = MetaLLM(llms={m: OpenAILike(model=m, **common) for m in PRICES}, prices=PRICES,
                  router=Router(list(PRICES), embedder=embedder, seed=0), **options)  # fmt: skip
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(weather)], llm=llm)
    runs = []
    for i in range(n):
        start = len(provider.requests)
        await agent.run(user_msg=f"Weather in 'Oslo'? ({i})")
        runs.append([body["model"] for body in provider.requests[start:]])
    return runs


async def test_a_function_agent_run_keeps_one_model_across_its_steps_by_default(provider, embedder):
    runs = await _llamaindex_runs(provider, embedder, 12)
    assert all(len(models) == 2 for models in runs)
    assert all(len(set(models)) == 1 for models in runs)
    assert len({models[0] for models in runs}) == 2
    switched = await _llamaindex_runs(provider, embedder, 12, stick_to_run=False)
    assert any(len(set(models)) > 1 for models in switched)


def test_the_agent_scenario_measures_both_settings():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "agent_runs.py"), "--runs", "60",
         "--seeds", "2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        (m.group(1), m.group(2)): (int(m.group(3)), int(m.group(4)))
        for m in re.finditer(r"^(\w+)\s+stick_to_run=(\w+)\s+(\d+)%\s+(\d+)%", result.stdout, re.M)
    }
    assert len(rows) == 4, result.stdout
    assert rows[("ucb", "True")][0] == 0 and rows[("squarecb", "True")][0] == 0
    assert rows[("squarecb", "False")][0] > 0  # exploring step by step splits runs
