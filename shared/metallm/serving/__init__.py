"""Serving: routing live traffic.

The :class:`Router` composes the learning (:class:`~metallm.learning.bandit.LinearBandit`),
a ledger of pending decisions, sticky sessions, cooldowns and the store sync;
:class:`RoutedCall` is the one routed call with fallbacks that both framework adapters
drive; :mod:`~metallm.serving.pricing` turns reported usage into dollars and
:mod:`~metallm.serving.requests` reads the routing text and the session off a call;
:mod:`~metallm.serving.capabilities` leaves out the members that cannot serve a request;
:mod:`~metallm.serving.budget` holds a :class:`Budget` by moving the cost weight live.
"""

from metallm.serving.budget import Budget
from metallm.serving.call import RoutedCall
from metallm.serving.capabilities import Capabilities, Needs
from metallm.serving.decisions import Decision, Prediction, explain
from metallm.serving.failover import Cooldown, Fallbacks, is_provider_error
from metallm.serving.feedback import Feedback, FeedbackSummary
from metallm.serving.requests import (
    CONVERSATION,
    DEFAULT_SESSION_KEY,
    check_prompt,
    conversation_id,
    pop_session,
    routing_text,
)
from metallm.serving.router import DEFAULT_FEEDBACK_TTL, Router

__all__ = [
    "CONVERSATION",
    "DEFAULT_FEEDBACK_TTL",
    "DEFAULT_SESSION_KEY",
    "Budget",
    "Capabilities",
    "Cooldown",
    "Decision",
    "Fallbacks",
    "Feedback",
    "FeedbackSummary",
    "Needs",
    "Prediction",
    "RoutedCall",
    "Router",
    "check_prompt",
    "conversation_id",
    "explain",
    "is_provider_error",
    "pop_session",
    "routing_text",
]
