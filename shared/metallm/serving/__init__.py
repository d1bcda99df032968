"""Serving: routing live traffic.

The :class:`Router` (which composes the learning, a ledger of pending decisions, sticky
sessions and the store sync), one routed call with fallbacks that both framework adapters
drive, cooldowns and pricing.
"""

from metallm.serving.failover import Attempts, Cooldown, Fallbacks, is_provider_error
from metallm.serving.router import Decision, Prediction, Router, find_router

__all__ = ["Attempts", "Cooldown", "Decision", "Fallbacks", "Prediction", "Router", "find_router", "is_provider_error"]
