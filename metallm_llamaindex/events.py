"""The instrumentation event emitted for every routing decision."""

from __future__ import annotations

from typing import Any

from llama_index.core.instrumentation.events import BaseEvent

__all__ = ["MetaLLMDecisionEvent"]


class MetaLLMDecisionEvent(BaseEvent):
    """A routing decision: which model answers, with the scores that chose it.

    ``decision`` holds ``decision_id``, ``model``, ``scores``, ``bonus``, ``cost_weight``,
    ``forced`` and ``router_id`` (``cost_usd`` is known only once the answer is in: it rides
    on the response's ``additional_kwargs["metallm"]``).
    """

    decision: dict[str, Any]

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this event under."""
        return "MetaLLMDecisionEvent"
