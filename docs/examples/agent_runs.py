"""One model per agent run, or one per step? Measured on a tool-calling agent over the fake provider.

A ``create_agent`` agent (LangGraph) answers "What is the weather in '<city>'?" in two model
steps: a tool call, then the answer from the tool's result. Two members: ``pro`` calls the tool
with the city asked about; ``mini`` is cheaper and writes answers as well, but calls the tool
with the wrong city. The user grades the run's final answer (right city or not), as users do,
and that grade is recorded for the decision that wrote it.

* ``stick_to_run=True`` (the default): the first step's model does every step, so the grade is
  that model's, and the router learns that runs go well on ``pro``.
* ``stick_to_run=False``: each step is routed on its own. The grade goes to whichever model wrote
  the last step, though the tool call that decided it may have been the other's, so the router
  cannot learn which model to trust with tool calls.

It prints, per setting, the share of runs served by more than one model, the success rate and
the cost per run over the second half of the runs.

Run it: .venv/bin/python docs/examples/agent_runs.py   (no keys: the models are scripted)
"""

from __future__ import annotations

import argparse
import os
import re

PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}  # USD per 1M input / output tokens
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Hanoi", "Quito", "Perth", "Accra"]
_QUOTED = re.compile(r"'([^']+)'")


def run(sticky: bool, runs: int, seed: int, policy: str = "ucb") -> dict[str, float]:
    """``runs`` agent runs with feedback; the figures over their second half."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from metallm import LinUCB, Router, SquareCB
    from metallm.testing import OpenAICompatibleServer, ScriptedModel
    from metallm_langchain import ChatMetaLLM

    looked_up: list[str] = []

    @tool
    def weather(city: str) -> str:
        """Today's weather in a city."""
        looked_up.append(city)
        return f"It is sunny in {city}."

    def asked_city(prompt: str) -> dict[str, str]:
        match = _QUOTED.search(prompt)
        return {"city": match.group(1) if match else "nowhere"}

    scripts = {
        "pro": ScriptedModel(reply="Here is today's weather.", tool_args=asked_city),
        "mini": ScriptedModel(reply="Here is today's weather.", tool_args={"city": "Atlantis"}),
    }
    with OpenAICompatibleServer(scripts) as server:
        members = {m: ChatOpenAI(model=m, base_url=server.base_url, api_key="k") for m in PRICES}
        llm = ChatMetaLLM(
            models=members,
            prices=PRICES,
            router=Router(
                list(PRICES), seed=seed, policy=SquareCB() if policy == "squarecb" else LinUCB()
            ),
            stick_to_run=sticky,
        )
        agent = create_agent(llm, tools=[weather])
        outcomes = []
        for i in range(runs):
            city = CITIES[i % len(CITIES)]
            looked_up.clear()
            result = agent.invoke(
                {
                    "messages": [
                        {"role": "user", "content": f"What is the weather in '{city}'? ({i})"}
                    ]
                }
            )
            steps = [m.response_metadata["metallm"] for m in result["messages"] if m.type == "ai"]
            success = float(looked_up == [city])
            llm.record_feedback(steps[-1]["decision_id"], quality=success)  # the user's grade
            outcomes.append(
                (len({s["model"] for s in steps}) > 1, success, sum(s["cost_usd"] for s in steps))
            )
    late = outcomes[runs // 2 :]
    return {
        "switched": sum(o[0] for o in late) / len(late),
        "success": sum(o[1] for o in late) / len(late),
        "cost": sum(o[2] for o in late) / len(late),
    }


def main() -> None:
    """Both settings over a few seeds; a table of the means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=80, help="agent runs per setting and seed")
    parser.add_argument("--seeds", type=int, default=5, help="seeds (the docs' table: 5)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{args.runs} agent runs per setting and seed, {args.seeds} seeds; second half of each:")
    print(
        f"{'policy':<9} {'setting':<19} {'runs switching model':>21} {'success':>8} {'$/run':>10}"
    )
    for policy in ("ucb", "squarecb"):
        for sticky in (True, False):
            rows = [run(sticky, args.runs, seed, policy) for seed in range(args.seeds)]
            mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
            name = "stick_to_run=True" if sticky else "stick_to_run=False"
            print(
                f"{policy:<9} {name:<19} {mean['switched']:>21.0%} {mean['success']:>8.0%} "
                f"{mean['cost']:>10.6f}"
            )


if __name__ == "__main__":
    main()
