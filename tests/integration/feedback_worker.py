"""Processes for the feedback tests: each role runs in its own Python process.

usage: python -m tests.integration.feedback_worker ROLE KIND TARGET [ARGS...]

answer BASE_URL OUT      ChatMetaLLM over two ChatOpenAI members on the local fake provider answers
                         three questions (each with a known LangChain run id), writes
                         "decision_id run_id model cost_usd" lines to OUT, and exits.
record IDS_FILE [run]    records quality 1.0 for each id (or run id) in the file, cost from the ledger.
restarted BASE_URL IDS   a restarted "answer" process: the same ChatMetaLLM, recording by run id.
stats                    prints the statistics a fresh router folds from the store, as JSON.
decide WORKER N OUT      a router (no embedder) makes N decisions on seeded embeddings, writes "id arm".
grade IDS_FILE SHARD     records a shard of the ids (every other one, shuffled), with a quality
                         and cost that depend on the id alone.
regrade IDS_FILE SOURCE Q  a feedback-only process grades every id again as SOURCE with quality Q,
                         writing "id outcome" lines (corrected, or the error's name) to stdout.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import uuid

import numpy as np

from metallm import LinUCB, Router
from tests.stores import open_store

MODELS = ["mini", "pro"]
DIM = 16
QUESTIONS = [
    "How long should I knead bread dough?",
    "Why does the Moon show phases?",
    "What is 17 times 23?",
]


def router(kind: str, target: str, *, embedder: object = None, arms: list[str] = MODELS) -> Router:
    return Router(
        arms, embedder=embedder, policy=LinUCB(alpha=1.0), store=open_store(kind, target), seed=0
    )


def chat(kind: str, target: str, base_url: str):
    from langchain_openai import ChatOpenAI

    from metallm import SentenceTransformerEmbedder
    from metallm_langchain import ChatMetaLLM

    members = {
        name: ChatOpenAI(model=name, base_url=base_url, api_key="k", max_retries=0)
        for name in MODELS
    }
    return ChatMetaLLM(
        models=members,
        prices={"mini": (0.15, 0.6), "pro": (2.5, 10.0)},
        router=router(kind, target, embedder=SentenceTransformerEmbedder()),
    )


def graded(decision_id: str) -> tuple[float, float]:
    """A quality and a cost that depend on the decision id alone."""
    digest = hashlib.sha256(decision_id.encode()).digest()
    return digest[0] / 255, digest[1] / 255 / 1000


def decide_embeddings(worker: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(500 + worker)
    x = rng.normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    role, kind, target, *args = sys.argv[1:]
    if role == "answer":
        base_url, out = args
        llm = chat(kind, target, base_url)
        with open(out, "w") as handle:
            for question in QUESTIONS:
                run_id = uuid.uuid4()
                meta = llm.invoke(question, config={"run_id": run_id}).response_metadata["metallm"]
                handle.write(
                    f"{meta['decision_id']} {run_id} {meta['model']} {meta['cost_usd']!r}\n"
                )
    elif role == "record":
        ids_file, *by = args
        r = router(kind, target)
        for line in open(ids_file).read().splitlines():
            decision_id, run_id, *_ = line.split()
            if by == ["run"]:
                r.record_run(run_id, quality=1.0)
            else:
                r.record(decision_id, quality=1.0)
    elif role == "restarted":
        base_url, ids_file = args
        llm = chat(kind, target, base_url)
        for line in open(ids_file).read().splitlines():
            _, run_id, *_ = line.split()
            llm.record_feedback(run_id=run_id, quality=1.0)
    elif role == "stats":
        r = router(kind, target)
        stats = r.bandit.stats
        print(
            json.dumps(
                {
                    "counts": r.counts,
                    "n_updates": r.n_updates,
                    "A": None if stats is None else stats.A.tolist(),
                    "B": None if stats is None else stats.B.tolist(),
                }
            )
        )
    elif role == "decide":
        worker, n, out = int(args[0]), int(args[1]), args[2]
        r = Router(
            MODELS, embedder=None, store=open_store(kind, target), sync_interval=None, seed=worker
        )
        with open(out, "w") as handle:
            for x in decide_embeddings(worker, n):
                d = r.select(x)
                handle.write(f"{d.id} {d.arm}\n")
    elif role == "grade":
        ids_file, shard = args[0], int(args[1])
        ids = [line.split()[0] for line in open(ids_file).read().splitlines()]
        mine = ids[
            shard::2
        ]  # the two graders split the ids, then each goes in its own random order
        random.Random(shard).shuffle(mine)
        r = Router(MODELS, embedder=None, store=open_store(kind, target), sync_interval=None)
        for decision_id in mine:
            quality, cost = graded(decision_id)
            r.record(decision_id, quality=quality, cost=cost)
    elif role == "regrade":
        ids_file, source, quality = args[0], args[1], float(args[2])
        r = Router(MODELS, embedder=None, store=open_store(kind, target), sync_interval=None)
        for decision_id in [line.split()[0] for line in open(ids_file).read().splitlines()]:
            try:
                r.record(decision_id, quality=quality, source=source)
                print(decision_id, "corrected")
            except Exception as e:  # noqa: BLE001 - the parent test reads what became of each
                print(decision_id, type(e).__name__)
        r.close()
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
