"""Log, evaluate, shadow, promote: changing a router with evidence, over the local fake provider.

A live ChatMetaLLM (real ChatOpenAI clients, HTTP to a local OpenAI-compatible server, a SQLite
store) explores with ``SquareCB(floor=0.05)``, so every answer logs an exact propensity. Two
shadow routers see every call and log what they would have chosen, never calling a model:
``balanced`` (p = 0.3: cost weighs more than live's 0.1) and ``quality-first`` (p = 0). The feedback: the
expensive member answers the hard questions (about maths) well and the cheap one does not; on the
easy ones both are fine. Then ``metallm evaluate --log`` estimates the live router, each shadow,
each single model and random from the log, and writes a plot.

Run it: .venv/bin/python docs/examples/shadow_live.py   (no keys: the models are scripted)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}  # USD per 1M input / output tokens
REPLIES = {"mini": "A short answer.", "pro": "A longer, careful answer with the working shown."}
EASY = [
    "What is the capital of {}?",
    "Name a famous dish from {}.",
    "What language is spoken in {}?",
]
HARD = [
    "Prove that the sum of two odd numbers from {} is even.",
    "Integrate x squared times the year {} was founded.",
]
PLACES = ["France", "Japan", "Peru", "Kenya", "Norway", "Chile", "Vietnam", "Egypt"]


def quality(model: str, hard: bool) -> float:
    """The feedback: both are fine on easy questions; only pro is good at the hard ones."""
    if not hard:
        return 0.9 if model == "mini" else 0.95
    return 0.95 if model == "pro" else 0.2


def main() -> None:
    """Serve, shadow, then evaluate the log."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--plot", help="write the plot (PNG) here (default: no plot)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from langchain_openai import ChatOpenAI

    from metallm import LinUCB, Router, SQLiteStore, SquareCB
    from metallm.cli import main as metallm
    from metallm.testing import OpenAICompatibleServer, ScriptedModel
    from metallm_langchain import ChatMetaLLM

    scripts = {m: ScriptedModel(reply=r) for m, r in REPLIES.items()}
    with tempfile.TemporaryDirectory() as tmp, OpenAICompatibleServer(scripts) as server:
        log = str(Path(tmp) / "live.sqlite")
        members = {m: ChatOpenAI(model=m, base_url=server.base_url, api_key="k") for m in PRICES}
        shadows = {
            "balanced": Router(list(PRICES), cost_weight=0.3, policy=LinUCB(alpha=0.0)),
            "quality-first": Router(list(PRICES), cost_weight=0.0, policy=LinUCB(alpha=0.0)),
        }
        live = Router(list(PRICES), store=SQLiteStore(log), policy=SquareCB(floor=0.05), seed=0)
        llm = ChatMetaLLM(models=members, prices=PRICES, router=live, shadows=shadows)
        calls = []  # (hard, {shadow: the model it would have chosen}) per call
        costs: dict[str, list[float]] = {m: [] for m in PRICES}
        for i in range(args.calls):
            hard = i % 3 == 0
            template = (HARD if hard else EASY)[i % 2 if hard else i % 3]
            message = llm.invoke(template.format(PLACES[i % len(PLACES)]))
            meta = message.response_metadata["metallm"]
            llm.record_feedback(meta["decision_id"], quality=quality(meta["model"], hard))
            calls.append((hard, {name: s["model"] for name, s in meta["shadows"].items()}))
            costs[meta["model"]].append(meta["cost_usd"])
        asked = {m: server.models[m].requests for m in PRICES}
        print(f"{args.calls} calls; the provider was asked {asked} (the live choices only)")
        # The truth, known here because the feedback is a rule: what each shadow's choices were worth
        mean_cost = {m: sum(c) / len(c) for m, c in costs.items() if c}
        for name in shadows:
            q = sum(quality(chosen[name], hard) for hard, chosen in calls) / len(calls)
            c = sum(mean_cost.get(chosen[name], 0.0) for _, chosen in calls) / len(calls)
            print(f"true value of shadow {name!r} on these calls: quality {q:.4f}, $/query {c:.6f}")
        print()
        plot = [] if args.plot is None else ["--plot", args.plot]
        metallm(["evaluate", "--log", log, "--models", ",".join(PRICES), *plot])


if __name__ == "__main__":
    main()
