"""What a framework adapter needs from the core, in one documented module.

Both adapters (``metallm_langchain``, ``metallm_llamaindex``) import only from ``metallm``,
``metallm.exceptions`` and here: the routed call with fallbacks, reading the routing text and
the session off a request, what each member can serve and what a request needs, pricing
reported usage, and the pool of members (check, add, quiz and onboard, retire). An adapter for
another framework is a translation of its calls into these.

>>> from metallm.integrations import routing_text
>>> routing_text([(False, "Be brief."), (True, "What is 2 + 2?")])
'What is 2 + 2?'
"""

from __future__ import annotations

from metallm.exceptions import EmptyResponseError
from metallm.serving import (
    CONVERSATION,
    DEFAULT_SESSION_KEY,
    Capabilities,
    Decision,
    Needs,
    PoolMembers,
    RoutedCall,
    admit_member,
    check_capabilities,
    check_pool,
    check_prompt,
    conversation_id,
    estimate_tokens,
    exclusions,
    pop_session,
    quiz_member,
    retire_member,
    routing_text,
    usage_cost,
)

__all__ = [
    "CONVERSATION",
    "DEFAULT_SESSION_KEY",
    "Capabilities",
    "Decision",
    "EmptyResponseError",
    "Needs",
    "PoolMembers",
    "RoutedCall",
    "admit_member",
    "check_capabilities",
    "check_pool",
    "check_prompt",
    "conversation_id",
    "estimate_tokens",
    "exclusions",
    "pop_session",
    "quiz_member",
    "retire_member",
    "routing_text",
    "usage_cost",
]
