"""Shadow routers over real provider clients: logged beside every answer, never called.

ChatMetaLLM over a ChatOpenAI and a ChatTogether member talking HTTP to the local fake
provider; the live router explores with SquareCB, two shadows (one that would always save, one
that would always spend) see every call. The provider is asked only for the live choices; the
store's log carries each shadow's choice; ``metallm evaluate --log`` reports both.
"""

from __future__ import annotations

import json
from collections import Counter

from metallm import LinUCB, Router, SQLiteStore, SquareCB
from metallm.cli import main
from metallm.serving._shadows import parse_shadows
from metallm.state import FeedbackEvent
from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, langchain_pool

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
