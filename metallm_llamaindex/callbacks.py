"""MetaLLMFeedbackEventHandler: turn routed LlamaIndex answers into router feedback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent

from metallm import ConfigurationError, Router
from metallm.serving import AnswerSink

__all__ = ["Evaluator", "MetaLLMFeedbackEventHandler"]

logger = logging.getLogger(__name__)

Evaluator = Callable[[str, Mapping[str, Any]], float]
"""``evaluator(output_text, tags) -> quality in [0, 1]``; tags come from ``instrument_tags``."""


class MetaLLMFeedbackEventHandler(BaseEventHandler):
    """Scores each routed answer with ``evaluator`` and records the reward with its real cost.

    Attach it to the root dispatcher; pass what the evaluator needs (e.g. a reference answer)
    as instrumentation tags::

        from llama_index.core.instrumentation import get_dispatcher
        from llama_index_instrumentation.dispatcher import instrument_tags

        handler = MetaLLMFeedbackEventHandler(
            evaluator=lambda text, tags: float(tags["label"].lower() in text.lower()),
            router=llm.router,
        )
        get_dispatcher().add_event_handler(handler)
        with instrument_tags({"label": "Paris"}):
            query_engine.query("What is the capital of France?")

    Where nobody labels answers, give a ``grader`` (``router.grade_with(judge, ...)``, e.g. an
    `metallm_llamaindex.judges.EvaluatorJudge`) instead of ``evaluator``: each routed answer is
    handed to it without waiting, with the question and the tags' ``reference`` and
    ``context`` (a passage or a list of them) when present.

    Only MetaLLM's own end events carry a decision, so the chosen model's nested events
    are not scored twice. LlamaIndex's dispatcher drops exceptions raised by handlers, so
    evaluator and feedback errors are logged and kept in `errors` instead.
    """

    _evaluator: Evaluator | None = PrivateAttr()
    _grader: AnswerSink | None = PrivateAttr()
    _router: Router = PrivateAttr()
    _lock: Any = PrivateAttr()
    _recorded: int = PrivateAttr(default=0)
    _errors: list[Exception] = PrivateAttr()

    def __init__(
        self,
        evaluator: Evaluator | None = None,
        *,
        router: Router,
        grader: AnswerSink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (evaluator is None) == (grader is None):
            raise ConfigurationError(
                "MetaLLMFeedbackEventHandler grades by evaluator= (a function of the answer) or "
                "by grader= (router.grade_with(judge)): give exactly one"
            )
        if not isinstance(router, Router):
            raise ConfigurationError(
                "MetaLLMFeedbackEventHandler needs the router to record on: pass router=llm.router "
                "(in a process that only records feedback: Router(models, embedder=None, store=...))"
            )
        self._evaluator = evaluator
        self._grader = grader
        self._router = router
        self._lock = threading.Lock()
        self._errors = []

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this handler under."""
        return "MetaLLMFeedbackEventHandler"

    @property
    def recorded(self) -> int:
        """Feedback events this handler has recorded."""
        return self._recorded

    @property
    def errors(self) -> list[Exception]:
        """Errors raised by the evaluator or the feedback (the dispatcher would drop them)."""
        return list(self._errors)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        """Score a routed answer's end event and record it (errors are kept in `errors`)."""
        if (
            not isinstance(event, (LLMChatEndEvent, LLMCompletionEndEvent))
            or event.response is None
        ):
            return
        response = event.response
        meta = response.additional_kwargs.get("metallm")
        if not meta:
            return
        text = response.message.content if isinstance(response, ChatResponse) else response.text
        try:
            if self._grader is not None:  # graded later, off the request path
                context = event.tags.get("context")
                self._grader.submit(
                    meta["decision_id"],
                    _question(event),
                    str(text or ""),
                    reference=event.tags.get("reference"),
                    context=[context] if isinstance(context, str) else context,
                )
                return
            assert self._evaluator is not None
            quality = self._evaluator(str(text or ""), dict(event.tags))
            self._router.record(
                meta["decision_id"], quality=quality, cost=meta.get("cost_usd") or 0.0
            )
        except Exception as e:  # the dispatcher would swallow it: keep it visible
            logger.error("metallm feedback for decision %s failed: %s", meta.get("decision_id"), e)
            with self._lock:
                self._errors.append(e)
            return
        with self._lock:
            self._recorded += 1


def _question(event: LLMChatEndEvent | LLMCompletionEndEvent) -> str:
    """What was asked: the completion's prompt, or the chat's last user message."""
    if isinstance(event, LLMCompletionEndEvent):
        return str(event.prompt)
    asked = [m.content for m in event.messages if str(m.role.value) == "user"]
    return str(asked[-1] or "") if asked else ""
