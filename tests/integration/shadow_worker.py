"""A routing worker with shadows, in its own process, for the live shadow tests.

usage: python -m tests.integration.shadow_worker BASE_URL STORE N [LIVE_COST_WEIGHT]

ChatMetaLLM over the ChatOpenAI and ChatTogether members on the local fake provider, the
default live router (its 3% exploration floor; cost weight LIVE_COST_WEIGHT, default 0.1)
logging to the SQLite file STORE, two shadows ("thrifty": nearly always mini; "lavish": nearly
always together-pro); answers N questions, grading each by a known rule (mini's answers 0.2,
together-pro's 1.0), and exits.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from metallm import LinUCB, Router, SentenceTransformerEmbedder, SQLiteStore
from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, langchain_pool

QUALITY = {"mini": 0.2, "together-pro": 1.0}
TOPICS = ["bread", "the Moon", "compound interest", "photosynthesis", "sonnets", "volcanoes"]


def main() -> None:
    base_url, store, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    live_p = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
    arms = list(PRICES)
    server = SimpleNamespace(base_url=base_url)  # the parent's running server: its address
    llm = ChatMetaLLM(
        models=langchain_pool(server),
        prices=PRICES,
        router=Router(arms, embedder=SentenceTransformerEmbedder(), store=SQLiteStore(store),
                      seed=0, cost_weight=live_p),  # the default policy: its 3% floor
        shadows={
            "thrifty": Router(arms, cost_weight=100.0, policy=LinUCB(alpha=0.0)),
            "lavish": Router(arms, cost_weight=0.0, policy=LinUCB(alpha=0.0)),
        },
    )  # fmt: skip
    for i in range(n):
        meta = llm.invoke(f"Tell me one fact about {TOPICS[i % len(TOPICS)]} (#{i}).")
        decided = meta.response_metadata["metallm"]
        llm.record_feedback(decided["decision_id"], quality=QUALITY[decided["model"]])
    llm.router.close()


if __name__ == "__main__":
    main()
