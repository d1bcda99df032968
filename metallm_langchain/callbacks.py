"""MetaLLMFeedbackHandler: turn a chain run's outcome into router feedback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from metallm import ConfigurationError, Router
from metallm.serving import AnswerSink

__all__ = ["Evaluator", "MetaLLMFeedbackHandler"]

logger = logging.getLogger(__name__)

Evaluator = Callable[[str, Mapping[str, Any]], float]
"""``evaluator(output_text, run_metadata) -> quality in [0, 1]``."""


class MetaLLMFeedbackHandler(BaseCallbackHandler):
    """Scores each routed answer with ``evaluator`` and records the reward with its real cost.

    Attach it to a run; the run's metadata reaches the evaluator (e.g. a reference label)::

        handler = MetaLLMFeedbackHandler(
            evaluator=lambda text, meta: float(meta["label"].lower() in text.lower()),
            router=llm.router,
        )
        chain.invoke(question, config={"callbacks": [handler], "metadata": {"label": "Paris"}})

    Where nobody labels answers, give a ``grader`` instead (``router.grade_with(judge,
    sample_rate=...)``): each routed answer is handed to it without waiting, with the question,
    and the run metadata's ``reference`` and ``context`` when present; the judge grades a
    sample in the background::

        from metallm_langchain.judges import ChatModelJudge

        grader = llm.router.grade_with(ChatModelJudge(judge_model), sample_rate=0.1)
        chain.invoke(question, config={"callbacks": [MetaLLMFeedbackHandler(grader=grader,
                                                                            router=llm.router)]})

    Only the router's own run is scored (the chosen model's nested run is not). Nothing the
    handler does after the answer arrived can take it from the caller: an evaluator that raises,
    or feedback the router refuses, is logged (a WARNING, the first time) and kept in
    `errors`, and ``invoke``, ``stream`` and ``batch`` return the answer as usual.

    Args:
        evaluator: ``evaluator(output_text, run_metadata) -> quality in [0, 1]``.
        router: The router to record on (``llm.router``).
        grader: Grade in the background with a judge instead of ``evaluator``
            (``router.grade_with(judge)``), or hand the answers to a grading process
            elsewhere (``router.hand_off_grading()``).
        raise_errors: Let those errors propagate into the caller's call instead (for tests).

    Raises:
        ConfigurationError: ``router`` is not a `Router`, or not exactly one of ``evaluator``
            and ``grader`` is given.
    """

    MAX_ERRORS = 100
    """The latest errors kept in `errors` (the count in `failed` goes on)."""

    def __init__(
        self,
        evaluator: Evaluator | None = None,
        *,
        router: Router,
        grader: AnswerSink | None = None,
        raise_errors: bool = False,
    ) -> None:
        super().__init__()
        if (evaluator is None) == (grader is None):
            raise ConfigurationError(
                "MetaLLMFeedbackHandler grades by evaluator= (a function of the answer) or by "
                "grader= (router.grade_with(judge)): give exactly one"
            )
        self.raise_error = raise_errors  # LangChain's switch: a handler's error propagates
        self.errors: list[Exception] = []
        """The latest evaluator and feedback errors (the answers were returned)."""
        self.failed = 0
        """Answers whose scoring or feedback failed."""
        if not isinstance(router, Router):
            raise ConfigurationError(
                "MetaLLMFeedbackHandler needs the router to record on: pass router=llm.router "
                "(in a process that only records feedback: Router(models, embedder=None, store=...))"
            )
        self.evaluator = evaluator
        self.grader = grader
        self.router = router
        self.recorded = 0
        """Feedback events this handler has recorded."""
        self._metadata: dict[UUID, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # on_llm_end carries no metadata: keep it by run id until the run ends.
        """Keep the run's metadata until it ends (``on_llm_end`` carries none)."""
        kept = dict(metadata or {})
        if self.grader is not None:  # the question, for the judge
            asked = [m.text for m in (messages[0] if messages else []) if m.type == "human"]
            kept["__metallm_prompt"] = asked[-1] if asked else ""
        with self._lock:
            self._metadata[run_id] = kept

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Score the routed answer with the evaluator and record it on the router."""
        with self._lock:
            metadata = self._metadata.pop(run_id, {})
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                info = None if message is None else message.response_metadata.get("metallm")
                if not info:
                    continue  # not a routed run (e.g. the chosen model's own nested run)
                try:
                    if self.grader is not None:  # graded later, off the request path
                        context = metadata.get("context")
                        self.grader.submit(
                            info["decision_id"],
                            metadata.get("__metallm_prompt", ""),
                            generation.text,
                            reference=metadata.get("reference"),
                            context=[context] if isinstance(context, str) else context,
                        )
                        continue
                    assert self.evaluator is not None
                    quality = self.evaluator(generation.text, metadata)
                    self.router.record(
                        info["decision_id"], quality=quality, cost=info.get("cost_usd") or 0.0
                    )
                except Exception as e:
                    self._failed(e, info["decision_id"])
                    continue
                with self._lock:
                    self.recorded += 1

    def _failed(self, error: Exception, decision_id: str) -> None:
        """Keep an evaluator or feedback error (raise it only when asked to)."""
        with self._lock:
            first = self.failed == 0
            self.failed += 1
            self.errors.append(error)
            del self.errors[: -self.MAX_ERRORS]
        if self.raise_error:
            raise error
        if first:
            logger.warning(
                "metallm could not score or record decision %s (%s: %s); the answer was "
                "returned. Later errors are kept in handler.errors without a log line",
                decision_id,
                type(error).__name__,
                error,
            )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # The router already recorded the failure for the model that raised.
        """Forget the run: the router already learned the failure of the model that raised."""
        with self._lock:
            self._metadata.pop(run_id, None)
