"""A fault-matrix worker: answers through ChatMetaLLM over the local provider, or grades answers.

Run in a process of its own (forked from a warm fork server, so a cell starts in milliseconds).
Writes one flushed line per fact to ``out``:
``answered <decision_id> <seconds the routing decision took>``, ``acked <decision_id>`` once
``record`` returned, ``error <type> <typed> <message>`` and, at the end, ``done <health json>``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI

from metallm import Budget, MetaLLMError, Router, StoreError
from metallm.embedding._embedders import StaticEmbedder
from metallm.exceptions import InvalidFeedbackError, UnknownDecisionError
from metallm_langchain import ChatMetaLLM
from tests.stores import open_store

ARMS = ["mini", "pro"]
PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}
QUESTIONS = [
    "How long do I boil an egg?",
    "Why is Mars red?",
    "What is 7 times 8?",
    "Who wrote Hamlet?",
]
ROUTING_TIMEOUT = 0.25


def open_spec(spec: dict[str, Any]):
    """The store a fault cell's worker opens (short timeouts: the matrix bounds routing)."""
    if spec["kind"] == "sqlite":
        return open_store("sqlite", spec["target"], routing_timeout=ROUTING_TIMEOUT, timeout=1.0)
    url, prefix = spec["target"]
    return open_store(
        "redis", f"{url}#{prefix}", spool_dir=spec["spool"], timeout=0.5,
        routing_timeout=ROUTING_TIMEOUT,
    )  # fmt: skip


class TimedRouter(Router):
    """A Router that keeps how long each routing decision took (what the matrix bounds)."""

    def select(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return super().select(*args, **kwargs)
        finally:
            self.seconds = time.perf_counter() - started


class Lines:
    def __init__(self, path: str) -> None:
        self._handle = open(path, "a", buffering=1)
        self._lock = threading.Lock()

    def write(self, *parts: object) -> None:
        with self._lock:
            self._handle.write(" ".join(str(p) for p in parts) + "\n")
            self._handle.flush()


def _error(lines: Lines, e: BaseException) -> None:
    lines.write(
        "error", type(e).__name__, int(isinstance(e, MetaLLMError)), str(e)[:160].replace("\n", " ")
    )


def route(spec: dict[str, Any]) -> None:
    """Answer ``calls`` questions over ``threads`` threads; record feedback unless ``grade`` is off."""
    lines = Lines(spec["out"])
    budget = None if spec.get("cap") is None else Budget(usd_per_period=spec["cap"], period=86_400)
    router = TimedRouter(
        ARMS, embedder=StaticEmbedder(spec["static"]), store=open_spec(spec), sync_interval=0.2,
        seed=os.getpid(), budget=budget,
    )  # fmt: skip
    local = threading.local()
    pool = {
        m: ChatOpenAI(model=m, base_url=spec["base_url"], api_key="k", max_retries=0, timeout=10)
        for m in ARMS
    }
    llm = ChatMetaLLM(models=pool, prices=PRICES, router=router, warmup=False)
    counter = iter(range(spec["calls"]))
    counter_lock = threading.Lock()

    def work() -> None:
        while True:
            with counter_lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                answer = llm.invoke(QUESTIONS[i % len(QUESTIONS)] + f" ({i})")
            except Exception as e:
                _error(lines, e)
                continue
            meta = answer.response_metadata["metallm"]
            local.seconds = router.seconds
            lines.write(
                "answered",
                meta["decision_id"],
                f"{router.seconds:.4f}",
                meta["cost_usd"],
                meta["model"],
            )
            if spec["grade"]:
                try:
                    router.record(
                        meta["decision_id"], quality=1.0 if meta["model"] == "pro" else 0.5
                    )
                except Exception as e:
                    _error(lines, e)
                else:
                    lines.write("acked", meta["decision_id"])
            time.sleep(spec.get("pause", 0.01))

    threads = [threading.Thread(target=work) for _ in range(spec["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    router.close()  # a graceful shutdown hands waiting decisions and feedback to the store
    lines.write("done", json.dumps(router.health(), default=str))


def grade(spec: dict[str, Any]) -> None:
    """The feedback-only process of the docs: no embedder, records what the routing worker answered."""
    lines = Lines(spec["out"])
    router = Router(ARMS, embedder=None, store=open_spec(spec), sync_interval=None)
    source = Path(spec["answers"])
    done: set[str] = set()
    # not yet known to the store: tried again, as a queue would
    retry: dict[str, BaseException] = {}
    finished_at = None
    while True:
        text = source.read_text() if source.exists() else ""
        if finished_at is None and any(line.startswith("done") for line in text.splitlines()):
            finished_at = time.time()
        todo = [line.split()[1] for line in text.splitlines() if line.startswith("answered ")]
        for decision_id in [d for d in todo if d not in done] + list(retry):
            done.add(decision_id)
            try:
                router.record(decision_id, quality=0.75)
            except (UnknownDecisionError, StoreError, InvalidFeedbackError) as e:
                retry[decision_id] = e  # not in the store's ledger yet, or its cost not yet
            except Exception as e:
                retry.pop(decision_id, None)
                _error(lines, e)
            else:
                retry.pop(decision_id, None)
                lines.write("acked", decision_id)
        if finished_at is not None and (not retry or time.time() > finished_at + 15):
            break
        time.sleep(0.1)
    for e in retry.values():
        _error(lines, e)
    lines.write("done", json.dumps(router.health(), default=str))


def fresh(spec: dict[str, Any]) -> None:
    """A new process after recovery: opens the store (replaying dead workers' spools), syncs,
    and writes its statistics and health to ``out`` (an .npz) for the test to compare."""
    import numpy as np

    router = Router(ARMS, embedder=None, store=open_spec(spec), sync_interval=None)
    router.sync()
    stats = router.bandit.stats
    np.savez(
        spec["out"],
        A=np.zeros(0) if stats is None else stats.A,
        n_updates=router.n_updates,
        health=json.dumps(router.health(), default=str),
    )


def main(spec: dict[str, Any]) -> None:
    """Entry point of a worker process."""
    {"grade": grade, "route": route, "fresh": fresh}[spec["mode"]](spec)
