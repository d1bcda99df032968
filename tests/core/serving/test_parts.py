"""The router's small parts: the pending-decision ledger, sticky sessions, reading a request."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metallm import ConfigurationError, Router
from metallm.exceptions import DuplicateFeedbackError, EmptyQueryError
from metallm.serving import pop_session, routing_text
from metallm.serving._ledger import PendingDecisions, PendingEntry
from metallm.serving._sessions import StickySessions


def _entry(arm: int = 0, run_id: str | None = None) -> PendingEntry:
    return PendingEntry(arm, [np.ones(3)], 0, time.time(), run_id)


def test_the_ledger_evicts_the_oldest_and_counts_them():
    ledger = PendingDecisions(max_pending=2)
    ledger.add("d1", _entry(run_id="run-1"))
    ledger.add_many([("d2", _entry()), ("d3", _entry())])
    assert len(ledger) == 2 and ledger.evicted == 1
    assert ledger.get("d1") is None and ledger.by_run("run-1") is None
    assert ledger.get("d3").arm == 0


def test_the_ledger_keeps_costs_and_refuses_a_second_feedback():
    ledger = PendingDecisions(max_pending=10)
    ledger.add("d1", _entry(run_id="run-1"))
    assert ledger.by_run("run-1") == "d1"
    assert ledger.observe_cost("d1", 0.25) and not ledger.observe_cost("elsewhere", 0.1)
    assert ledger.cost_of("d1") == 0.25
    ledger.settle("d1")
    assert ledger.cost_of("d1") is None and ledger.by_run("run-1") is None
    with pytest.raises(DuplicateFeedbackError):
        ledger.get("d1")
    with pytest.raises(ConfigurationError):
        PendingDecisions(0)


def test_a_pending_decision_costs_under_2_kib_of_memory():
    """Without a store, the default 128-d router keeps about 1.3 KiB per pending decision."""
    import tracemalloc

    router = Router(["a", "b", "c", "d"], embedder=None, seed=0, max_pending=50_000)
    queries = np.random.default_rng(0).normal(size=(2000, 384))
    router.select(queries[0])
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [
        router.select(q).id for q in queries
    ]  # the ids only: the decisions themselves are dropped
    per_decision = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    tracemalloc.stop()
    assert router.pending_decisions == 2001
    assert per_decision < 2048, f"{per_decision:.0f} bytes per pending decision"


def test_sessions_forget_the_least_recent():
    sessions = StickySessions(max_sessions=2)
    sessions.stick("s1", "a")
    sessions.stick("s2", "b")
    assert sessions.get("s1") == "a"  # s1 is now the most recent
    sessions.stick("s3", "a")
    assert sessions.get("s2") is None and sessions.get("s1") == "a" and len(sessions) == 2


def test_routing_text_is_the_last_user_turn_else_everything():
    assert (
        routing_text([(True, "first"), (False, "reply"), (True, "second"), (False, "")]) == "second"
    )
    assert (
        routing_text([(False, "system says"), (False, "assistant says")])
        == "system says\nassistant says"
    )
    with pytest.raises(EmptyQueryError):
        routing_text([(True, "  "), (False, "")])


def test_a_session_comes_from_the_call_option_then_the_metadata():
    options = {"session_id": "s-1", "temperature": 0}
    assert pop_session("session_id", options, {"session_id": "from-metadata"}) == "s-1"
    assert options == {"temperature": 0}  # the model never sees it
    assert pop_session("thread_id", {}, {}, {"thread_id": 42}) == "42"
    assert pop_session(None, {"temperature": 0}, {"session_id": "x"}) is None


def test_the_old_llamaindex_spelling_still_works_with_a_warning():
    options = {"session_id": "old"}
    with pytest.warns(DeprecationWarning, match="session_key"):
        assert pop_session(None, options, legacy_key="session_id") == "old"
    assert options == {}


def test_concurrent_first_calls_of_a_session_all_go_where_the_first_went():
    """A batch of one session: whichever call chooses first claims the session for all."""
    from concurrent.futures import ThreadPoolExecutor

    from metallm import LinUCB

    for trial in range(5):
        router = Router(["a", "b", "c"], embedder=None, policy=LinUCB(alpha=50.0), seed=trial)
        queries = np.random.default_rng(trial).normal(size=(16, 8))
        with ThreadPoolExecutor(8) as pool:
            arms = set(
                pool.map(lambda q, router=router: router.select(q, session="s").arm, queries)
            )
        assert len(arms) == 1
        assert (
            router.pending_decisions == 16
        )  # losers' first picks were discarded, not left pending


def test_a_spooled_event_keeps_its_propensity_through_the_replay(tmp_path):
    from metallm import SQLiteStore
    from metallm.serving._spool import Spool
    from metallm.state import FeedbackEvent

    spool = Spool(tmp_path / "spool", "test")
    spool.add(FeedbackEvent("d1", "a", np.ones(3), 1.0, 0.001, 5.0, propensity=0.3))
    spool.add(FeedbackEvent("d2", "a", np.ones(3), 0.0, 0.001, 6.0))
    store = SQLiteStore(tmp_path / "state.sqlite")
    assert spool.replay(store) == 2
    events = [e for _, e in store.events_after(None)]
    assert [e.propensity for e in events] == [0.3, None]
