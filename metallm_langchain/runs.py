"""Which agent run a call belongs to: the root of its LangChain run tree.

LangChain hands a chat model its own run and its parent, not the run the user started (an
agent's ``invoke``, a LangGraph graph). `RunRoots` is a callback handler that LangChain
adds to every callback manager it configures (through ``register_configure_hook``) and that
remembers, for each chain, tool and chat-model run, the root of its tree; so every step of one
agent run finds the same root, and ``ChatMetaLLM`` keeps the run on the model its first step
chose. It keeps the most recent 100,000 runs and does nothing else.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

__all__ = ["RUN_ROOTS", "RunRoots", "agent_run_session"]


class RunRoots(BaseCallbackHandler):
    """Remembers the root run of every chain, tool and chat-model run it sees."""

    run_inline = True  # a dict write: no executor hop in async code
    ignore_llm = True
    ignore_retriever = True
    ignore_agent = True
    ignore_custom_event = True

    def __init__(self, max_runs: int = 100_000) -> None:
        self.max_runs = max_runs
        self._roots: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()
        self._parents: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, run_id: uuid.UUID, parent_run_id: uuid.UUID | None) -> None:
        """Remember ``run_id``'s root (its parent's root, or itself when it has no parent)."""
        with self._lock:
            root = (
                run_id if parent_run_id is None else self._roots.get(parent_run_id, parent_run_id)
            )
            self._roots[run_id] = root
            if parent_run_id is not None:
                self._parents[run_id] = parent_run_id
            if len(self._roots) > self.max_runs:
                self._roots.popitem(last=False)
            if len(self._parents) > self.max_runs:
                self._parents.popitem(last=False)

    def ancestors(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        """The runs above ``run_id``, its parent first and the root last (those seen).

        Args:
            run_id: A chain, tool or chat-model run.
        """
        found: list[uuid.UUID] = []
        with self._lock:
            parent = self._parents.get(run_id)
            while parent is not None and parent not in found and len(found) < 1000:
                found.append(parent)
                parent = self._parents.get(parent)
        return found

    def root_of(self, run_id: uuid.UUID) -> uuid.UUID | None:
        """The root run of ``run_id`` (None when this handler never saw it)."""
        return self._roots.get(run_id)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: uuid.UUID,
                       parent_run_id: uuid.UUID | None = None, **kwargs: Any) -> None:  # fmt: skip
        """A chain (an agent, a graph, a node) started."""
        self.note(run_id, parent_run_id)

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: uuid.UUID,
                      parent_run_id: uuid.UUID | None = None, **kwargs: Any) -> None:  # fmt: skip
        """A tool started (an agent used as a tool runs under it)."""
        self.note(run_id, parent_run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: uuid.UUID,
                            parent_run_id: uuid.UUID | None = None, **kwargs: Any) -> None:  # fmt: skip
        """A chain (an agent, a graph, a node) started."""
        self.note(run_id, parent_run_id)


RUN_ROOTS = RunRoots()
"""The process's one tracker, added to every callback manager LangChain configures."""

_HOOK: ContextVar[RunRoots | None] = ContextVar("metallm_run_roots", default=RUN_ROOTS)
register_configure_hook(_HOOK, True)


def agent_run_session(run_id: uuid.UUID | None) -> str | None:
    """The session naming the agent run that chat-model run ``run_id`` is a step of.

    None when the call is not inside a larger run (a plain ``invoke``): there is nothing to
    keep it consistent with.
    """
    if run_id is None:
        return None
    root = RUN_ROOTS.root_of(run_id)
    if root is None or root == run_id:
        return None
    return f"run:{root}"
