"""Shadow routers over real provider clients: logged beside every answer, never called.

ChatMetaLLM over a ChatOpenAI and a ChatTogether member talking HTTP to the local fake
provider; the live router explores with SquareCB, two shadows (one that would always save, one
that would always spend) see every call. The provider is asked only for the live choices; the
store's log carries each shadow's choice; ``metallm evaluate --log`` reports both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from metallm import LinUCB, Router, SQLiteStore, SquareCB
from metallm.cli import main
from metallm.serving._shadows import parse_shadows
from metallm.state import FeedbackEvent
from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, langchain_pool

ROOT = Path(__file__).resolve().parents[2]
QUALITY = {"mini": 0.6, "together-pro": 1.0}
QUESTIONS = [
    "How long should bread dough rise?", "Why does the Moon have phases?",
    "What is compound interest?", "How do plants make sugar?", "What is a sonnet?",
]  # fmt: skip


def test_shadows_are_logged_for_every_call_and_never_called(server, tmp_path, capsys):
    path = tmp_path / "live.sqlite"
    arms = list(PRICES)
    shadows = {
        "thrifty": Router(arms, cost_weight=100.0, policy=LinUCB(alpha=0.0)),
        "lavish": Router(arms, cost_weight=0.0, policy=LinUCB(alpha=0.0)),
    }
    live = Router(arms, store=SQLiteStore(path), policy=SquareCB(floor=0.1), seed=0)
    llm = ChatMetaLLM(models=langchain_pool(server), prices=PRICES, router=live, shadows=shadows)
    before = {name: server.models[name].requests for name in arms}
    answered, logged = Counter(), []
    for i in range(60):
        message = llm.invoke(f"{QUESTIONS[i % len(QUESTIONS)]} (asked {i} times)")
        meta = message.response_metadata["metallm"]
        answered[meta["model"]] += 1
        logged.append(meta["shadows"])
        llm.record_feedback(meta["decision_id"], quality=QUALITY[meta["model"]])
    served = {name: server.models[name].requests - before[name] for name in arms}
    assert served == dict(answered)  # the provider saw the live choices only
    assert all(set(entry) == {"thrifty", "lavish"} for entry in logged)
    late = logged[30:]  # once the shadows have learned from the live feedback
    assert {e["thrifty"]["model"] for e in late} == {"mini"}
    assert {e["lavish"]["model"] for e in late} == {"together-pro"}
    events = [e for _, e in SQLiteStore(path).events_after(None) if isinstance(e, FeedbackEvent)]
    assert len(events) == 60 and all(set(parse_shadows(e.shadows)) == set(shadows) for e in events)

    out = tmp_path / "evaluate.json"
    args = ["evaluate", "--log", str(path), "--models", ",".join(arms), "--json", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())["shadows"]
    assert report["thrifty"]["rows"] == report["lavish"]["rows"] == 60
    assert report["thrifty"]["savings"] > 0.5 > report["lavish"]["savings"]
    assert 0.0 < report["thrifty"]["agreement"] < 1.0
    printed = capsys.readouterr().out
    assert "thrifty" in printed


def test_a_team_reading_the_report_while_a_worker_serves_gets_the_right_verdicts(server, tmp_path):
    """Two processes: a worker serves over HTTP and grades each answer, its live router set to
    save at almost any price (cost weight 5: mini, whose answers grade 0.2); the team runs
    ``metallm report`` (reward at p = 0.1) against the same SQLite file every second meanwhile.
    The lavish shadow (together-pro, answers graded 1.0) is truly better: it is declared
    "better" before the worker ends; the thrifty one is the live router's own choice; no
    reading, of either, ever names the wrong side."""
    path = tmp_path / "live.sqlite"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.shadow_worker", server.base_url, str(path),
         "800", "5.0"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    readings: list[dict] = []
    out = tmp_path / "report.json"
    while True:
        done = worker.poll() is not None
        if path.exists() and main(["report", "--store", str(path), "--json", str(out)]) == 0:
            readings.append(json.loads(out.read_text())["verdicts"])
        if done:
            break
        time.sleep(1.0)
    assert worker.returncode == 0, worker.stderr.read()[-3000:] if worker.stderr else ""
    assert len(readings) >= 3  # read while the worker served, and once after
    final = readings[-1]
    assert final["shadow lavish"]["rows"] == 800
    assert final["shadow lavish"]["verdict"] == "better" and final["shadow lavish"]["low"] > 0
    for reading in readings:
        assert reading.get("shadow lavish", {}).get("verdict") != "worse"
        thrifty = reading.get("shadow thrifty", {})
        assert thrifty.get("verdict") != "better" or thrifty["low"] > 0
    events = [e for _, e in SQLiteStore(path).events_after(None) if isinstance(e, FeedbackEvent)]
    chosen = Counter(e.arm for e in events)
    assert chosen["mini"] > chosen["together-pro"] > 0  # the live router saved; it explored
