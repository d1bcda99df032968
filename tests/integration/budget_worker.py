"""A worker process for the live budget test: ChatMetaLLM over real ChatOpenAI members.

usage: python -m tests.integration.budget_worker BASE_URL SQLITE_PATH WORKER N OUT TARGET

Answers N questions through the local fake provider, records feedback that prefers the
expensive member at once, and writes "time cost_usd model p" for each answer to OUT.
"""

from __future__ import annotations

import sys
import time

from metallm import Budget, Router, SQLiteStore

PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}  # USD per 1M input / output tokens
QUALITY = {"mini": 0.6, "pro": 1.0}  # the feedback: the expensive member answers better
TOPICS = [
    "bread dough", "the phases of the Moon", "compound interest", "photosynthesis",
    "the French revolution", "binary search", "plate tectonics", "a sonnet's form",
    "vaccines", "the Krebs cycle", "TCP handshakes", "supply and demand",
]  # fmt: skip
REPLIES = {
    "mini": "A short answer.",
    "pro": "A long and careful answer that covers the question from several sides, with "
    "examples, caveats and a summary at the end so the reader can act on it.",
}


def question(worker: int, i: int) -> str:
    topic = TOPICS[(worker * 5 + i) % len(TOPICS)]
    return f"Question {i} from worker {worker}: explain {topic} to a curious student."


def main() -> None:
    from langchain_openai import ChatOpenAI

    from metallm_langchain import ChatMetaLLM

    base_url, path, worker, n, out, target = sys.argv[1:7]
    members = {
        name: ChatOpenAI(model=name, base_url=base_url, api_key="k", max_retries=0)
        for name in PRICES
    }
    router = Router(
        list(PRICES),
        store=SQLiteStore(path),
        budget=Budget(usd_per_query=float(target)),
        seed=int(worker),
    )
    llm = ChatMetaLLM(models=members, prices=PRICES, router=router)
    with open(out, "w", buffering=1) as lines:
        for i in range(int(n)):
            message = llm.invoke(question(int(worker), i))
            metadata = message.response_metadata["metallm"]
            llm.record_feedback(metadata["decision_id"], quality=QUALITY[metadata["model"]])
            lines.write(
                f"{time.time()} {metadata['cost_usd']} {metadata['model']} "
                f"{metadata['budget']['cost_weight']}\n"
            )


if __name__ == "__main__":
    main()
