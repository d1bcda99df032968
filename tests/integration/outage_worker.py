"""A web worker that keeps answering through ChatMetaLLM and recording feedback while Redis dies.

usage: python -m tests.integration.outage_worker REDIS_URL BASE_URL N OUT_FILE SPOOL_DIR
Writes "answered <decision_id> <model>" per answer (flushed), then "health <json>" at the end.
"""

from __future__ import annotations

import json
import sys
import time

from langchain_openai import ChatOpenAI

from metallm import RedisStore, Router, SentenceTransformerEmbedder
from metallm_langchain import ChatMetaLLM

QUESTIONS = [
    "How long do I boil an egg?",
    "Why is Mars red?",
    "What is 7 times 8?",
    "Who wrote Hamlet?",
]


def main() -> None:
    redis_url, base_url, n, out, spool_dir = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4],
        sys.argv[5],
    )
    store = RedisStore(redis_url, prefix="outage", timeout=0.5, spool_dir=spool_dir)
    router = Router(
        ["mini", "pro"], embedder=SentenceTransformerEmbedder(), store=store, sync_interval=0.2
    )
    pool = {
        m: ChatOpenAI(model=m, base_url=base_url, api_key="k", max_retries=0, timeout=5)
        for m in ("mini", "pro")
    }
    llm = ChatMetaLLM(models=pool, prices={"mini": (0.15, 0.6), "pro": (2.5, 10.0)}, router=router)
    with open(out, "w", buffering=1) as handle:
        for i in range(n):
            answer = llm.invoke(QUESTIONS[i % len(QUESTIONS)])
            meta = answer.response_metadata["metallm"]
            llm.record_feedback(meta["decision_id"], quality=1.0)
            handle.write(f"answered {meta['decision_id']} {meta['model']}\n")
            time.sleep(0.05)
        deadline = time.time() + 60
        while router.health()["spooled_events"] and time.time() < deadline:
            time.sleep(0.3)
            router.sync()
        handle.write("health " + json.dumps(router.health()) + "\n")


if __name__ == "__main__":
    main()
