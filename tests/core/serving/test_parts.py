"""The router's small parts: the pending-decision ledger, sticky sessions, reading a request."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import (
    ConfigurationError,
    DuplicateFeedbackError,
    EmptyQueryError,
    Router,
    UnknownDecisionError,
)
from metallm.serving import pop_session, routing_text
from metallm.serving.ledger import PendingDecisions
from metallm.serving.sessions import StickySessions


def _decisions(n: int):
    router = Router(["a", "b"], embedder=None, seed=0)
    return router.select_batch(np.ones((n, 3)))


def test_the_ledger_evicts_the_oldest_and_counts_them():
    ledger = PendingDecisions(max_pending=2)
    first, second, third = _decisions(3)
    ledger.add(first)
    ledger.add_many([second, third])
    assert len(ledger) == 2 and ledger.evicted == 1
    with pytest.raises(UnknownDecisionError, match="raise max_pending"):
        ledger.get(first.id)
    assert ledger.get(third.id) is third


def test_the_ledger_keeps_costs_and_refuses_a_second_feedback():
    ledger = PendingDecisions(max_pending=10)
    (decision,) = _decisions(1)
    ledger.add(decision)
    ledger.observe_cost(decision.id, 0.25)
    assert ledger.cost_of(decision.id) == 0.25
    ledger.settle(decision.id)
    assert ledger.cost_of(decision.id) is None
    with pytest.raises(DuplicateFeedbackError):
        ledger.get(decision.id)
    with pytest.raises(ConfigurationError):
        PendingDecisions(0)


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
