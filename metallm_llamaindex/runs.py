"""Which agent run a call belongs to: the root of its LlamaIndex instrumentation span tree.

Every instrumented LlamaIndex call (an agent workflow's run, its steps, an LLM call) opens a
span whose parent is the span active where it was called. `SpanRoots`, a span handler
on the root dispatcher, remembers each span's root, so every LLM call of one ``FunctionAgent``
run (or one query engine call) finds the same root and ``MetaLLM`` keeps the run on the model
its first step chose. It keeps the most recent 100,000 spans and stores no span objects.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from typing import Any

from llama_index_instrumentation import get_dispatcher
from llama_index_instrumentation.span import active_span_id
from llama_index_instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

__all__ = ["SpanRoots", "agent_run_session", "span_roots"]


class SpanRoots(BaseSpanHandler[Any]):
    """Remembers the root span of every span it sees (and keeps no spans open)."""

    _roots: OrderedDict[str, str] = PrivateAttr(default_factory=OrderedDict)
    _guard: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    max_spans: int = 100_000

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex knows this handler by."""
        return "MetaLLMSpanRoots"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the new span's root (its parent's, or itself); open no span object."""
        with self._guard:
            root = (
                id_ if parent_span_id is None else self._roots.get(parent_span_id, parent_span_id)
            )
            self._roots[id_] = root
            if len(self._roots) > self.max_spans:
                self._roots.popitem(last=False)

    def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments,
                             instance: Any | None = None, result: Any | None = None,
                             **kwargs: Any) -> None:  # fmt: skip
        """Nothing to close."""

    def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments,
                             instance: Any | None = None, err: BaseException | None = None,
                             **kwargs: Any) -> None:  # fmt: skip
        """Nothing to close."""

    def root_of(self, span_id: str) -> str | None:
        """The root span of ``span_id`` (None when this handler never saw it)."""
        return self._roots.get(span_id)


_LOCK = threading.Lock()
_ROOTS: SpanRoots | None = None


def span_roots() -> SpanRoots:
    """The process's one tracker, added to LlamaIndex's root dispatcher on first use."""
    global _ROOTS
    with _LOCK:
        if _ROOTS is None:
            _ROOTS = SpanRoots()
            get_dispatcher().add_span_handler(_ROOTS)
        return _ROOTS


def agent_run_session() -> str | None:
    """The session naming the run the current call is part of (None outside a larger run)."""
    current = active_span_id.get()
    if current is None:
        return None
    root = span_roots().root_of(current)
    if root is None or root == current:
        return None
    return f"run:{root}"
