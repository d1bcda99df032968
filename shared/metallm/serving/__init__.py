"""Serving: routing live traffic.

The `Router` composes the learning (`LinearBandit`),
a ledger of pending decisions, sticky sessions, cooldowns and the store sync;
`RoutedCall` is the one routed call with fallbacks that both framework adapters
drive; `_pricing` turns reported usage into dollars and
`_requests` reads the routing text and the session off a call;
`_capabilities` leaves out the members that cannot serve a request;
`_budget` holds a `Budget` by moving the cost weight live; `_grades` says which of
several grades of one answer is in force, and `_grading` grades answers with a judge.
"""

from metallm.serving._budget import Budget
from metallm.serving._call import RoutedCall
from metallm.serving._capabilities import (
    Capabilities,
    Needs,
    check_capabilities,
    estimate_tokens,
    exclusions,
)
from metallm.serving._decisions import Decision, Prediction, explain
from metallm.serving._failover import Cooldown, Fallbacks, is_provider_error
from metallm.serving._feedback import Feedback, FeedbackSummary
from metallm.serving._grades import DEFAULT_SOURCE, GRADE_SOURCES, base_id, source_rank
from metallm.serving._grading import AnswerSink, Grade, Grader, GradingStats, Judge
from metallm.serving._health import RouterHealth
from metallm.serving._ledger_grading import GradingHandoff, LedgerGrader
from metallm.serving._pool import PoolMembers, admit_member, check_pool, quiz_member, retire_member
from metallm.serving._pricing import usage_cost
from metallm.serving._requests import (
    CONVERSATION,
    DEFAULT_SESSION_KEY,
    check_prompt,
    conversation_id,
    pop_session,
    routing_text,
)
from metallm.serving._router import DEFAULT_FEEDBACK_TTL, Router
from metallm.serving._shadows import parse_shadows
from metallm.serving._telemetry import METRICS, OpenTelemetry, Telemetry, serve_prometheus

__all__ = [
    "CONVERSATION",
    "DEFAULT_FEEDBACK_TTL",
    "DEFAULT_SESSION_KEY",
    "DEFAULT_SOURCE",
    "GRADE_SOURCES",
    "AnswerSink",
    "Budget",
    "Capabilities",
    "Cooldown",
    "Decision",
    "Fallbacks",
    "Feedback",
    "FeedbackSummary",
    "METRICS",
    "OpenTelemetry",
    "Telemetry",
    "Grade",
    "Grader",
    "GradingHandoff",
    "GradingStats",
    "Judge",
    "LedgerGrader",
    "Needs",
    "PoolMembers",
    "Prediction",
    "RoutedCall",
    "Router",
    "RouterHealth",
    "admit_member",
    "base_id",
    "check_capabilities",
    "check_pool",
    "check_prompt",
    "conversation_id",
    "estimate_tokens",
    "exclusions",
    "explain",
    "is_provider_error",
    "parse_shadows",
    "pop_session",
    "quiz_member",
    "retire_member",
    "routing_text",
    "serve_prometheus",
    "source_rank",
    "usage_cost",
]
