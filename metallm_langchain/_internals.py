"""The LangChain internals ``ChatMetaLLM`` relies on, in one place.

LangChain-core does not hand a chat model everything a router needs: ``stream()`` calls
``_stream`` without a run manager, ``invoke()`` does not pass its config to ``_generate``,
``RunnableBinding`` merges the enclosing chain's callbacks back into a nested call, a stream
with no chunk is a bare ``ValueError``, and handlers installed by context-variable hooks
(``get_usage_metadata_callback()``) would see the chosen model's run beside the router's.
What works around each is here; ``tests/langchain/test_internals.py`` fails when a
langchain-core upgrade changes what these rely on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackHandler,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers import BaseTracer
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler

from metallm import Decision
from metallm.exceptions import EmptyResponseError

__all__ = [
    "CALL_CONFIG",
    "STREAM_PARENT",
    "MemberRunEvents",
    "RunParent",
    "StreamParent",
    "aopened",
    "child_config",
    "member_context",
    "opened",
    "run_metadata",
    "sees_nested_runs",
    "take_stream_parent",
    "with_run_id",
]

RunParent = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun
"""The router's run, as ``invoke``/``ainvoke``/``batch`` hand it to ``_generate``."""


@dataclass(frozen=True)
class StreamParent:
    """The router's own run, known before ``stream`` opens it (see ``stream``)."""

    run_id: uuid.UUID
    config: RunnableConfig


# invoke()/ainvoke() do not hand their config to _generate; the session may be in it.
CALL_CONFIG: ContextVar[RunnableConfig | None] = ContextVar("metallm_call_config", default=None)

# LangChain's stream()/astream() and the implicit-stream branch of invoke call _stream
# without the run manager, so the router hands its run to _stream through this variable.
STREAM_PARENT: ContextVar[StreamParent | RunParent | None] = ContextVar(
    "metallm_stream_parent", default=None
)


def opened(config: RunnableConfig, chunks: Iterator[BaseMessage]) -> Iterator[BaseMessage]:
    """The chosen model's stream, its run opened (on the first step) in ``config``'s context."""
    with member_context(config):
        try:
            first = next(chunks, None)
        except ValueError as e:  # BaseChatModel.stream's own words for a stream with no chunk
            if "No generation chunks" not in str(e):
                raise
            raise EmptyResponseError(f"the member's stream had no chunk ({e})") from e
    if first is None:
        return
    yield first
    yield from chunks


async def aopened(
    config: RunnableConfig, chunks: AsyncIterator[BaseMessage]
) -> AsyncIterator[BaseMessage]:
    """`opened` for an async stream."""
    with member_context(config):
        try:
            first = await anext(chunks, None)
        except ValueError as e:  # BaseChatModel.astream's own words for a stream with no chunk
            if "No generation chunks" not in str(e):
                raise
            raise EmptyResponseError(f"the member's stream had no chunk ({e})") from e
    if first is None:
        return
    yield first
    async for chunk in chunks:
        yield chunk


def run_metadata(parent: StreamParent | RunParent | None) -> tuple[dict[str, Any], ...]:
    """Where a LangChain call carries its session: the run's metadata, then ``configurable``."""
    if parent is None:
        return ()
    if isinstance(parent, StreamParent):
        return dict(parent.config.get("metadata") or {}), dict(
            parent.config.get("configurable") or {}
        )
    # invoke/ainvoke/batch: the run manager has the metadata; ``configurable`` (where
    # RunnableWithMessageHistory and LangGraph put session_id / thread_id) only the config.
    config = CALL_CONFIG.get() or {}
    return dict(parent.metadata), dict(config.get("configurable") or {})


def with_run_id(config: RunnableConfig | None) -> tuple[RunnableConfig, StreamParent]:
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid.uuid4()
    config = {**config, "run_id": run_id}
    return config, StreamParent(run_id, config)


def take_stream_parent() -> StreamParent | RunParent | None:
    parent = STREAM_PARENT.get()
    STREAM_PARENT.set(None)
    return parent


def sees_nested_runs(handler: BaseCallbackHandler) -> bool:
    """Whether ``handler`` sees the chosen model's run nested under the router's.

    Tracers (LangSmith, run collectors, the console) do. Other handlers (usage counters, token
    streamers, astream_events) see one chat-model run per call, the router's, so nothing is
    counted or streamed twice.
    """
    return isinstance(handler, BaseTracer) and not isinstance(handler, _StreamingCallbackHandler)


class MemberRunEvents(AsyncCallbackHandler):
    """``astream_events``' view of the chosen model's run: its start and end, not its tokens.

    The member's run then shows as a child of the router's (its ``parent_ids`` end with the
    router's run id, its tags name it ``metallm:<model>``), while every token streams once, as
    the router's ``on_chat_model_stream``.

    Args:
        events: The ``astream_events`` handler of the router's run.
    """

    def __init__(self, events: _AstreamEventsCallbackHandler) -> None:
        self._events = events

    async def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        await self._events.on_chat_model_start(*args, **kwargs)

    async def on_llm_end(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        await self._events.on_llm_end(*args, **kwargs)


@contextmanager
def member_context(config: RunnableConfig) -> Iterator[None]:
    """The context in which the chosen model's run opens.

    The enclosing chain's config (``var_child_runnable_config``) is replaced by ``config``:
    otherwise ``RunnableBinding`` (tools bound) merges the chain's callbacks back in. And
    handlers from context-variable hooks (e.g. ``get_usage_metadata_callback()``) are kept
    off the run unless they are tracers.
    """
    tokens: list[tuple[Any, Any]] = [
        (var_child_runnable_config, var_child_runnable_config.set(config))
    ]
    try:
        from langchain_core.tracers.context import _configure_hooks
    except ImportError:  # pragma: no cover - older or newer langchain-core
        _configure_hooks = []
    for var, *_ in _configure_hooks:
        value = var.get()
        if isinstance(value, BaseCallbackHandler) and not sees_nested_runs(value):
            tokens.append((var, var.set(None)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def child_config(
    parent: StreamParent | RunParent | None,
    decision: Decision,
    callbacks: Any,
    verbose: bool,
    tags: list[str] | None,
    metadata: dict[str, Any] | None,
) -> RunnableConfig:
    """Config for the chosen model's call: its run nests under the router's run."""
    config: RunnableConfig = {
        "tags": [f"metallm:{decision.arm}"],
        "metadata": {"metallm_decision_id": decision.id, "metallm_model": decision.arm},
    }
    if parent is None:
        return config
    if isinstance(parent, StreamParent):
        configured = CallbackManager.configure(
            parent.config.get("callbacks"),
            callbacks,
            verbose,
            parent.config.get("tags"),
            tags,
            parent.config.get("metadata"),
            metadata,
        )
        handlers, tags, metadata = (
            configured.inheritable_handlers,
            configured.inheritable_tags,
            configured.inheritable_metadata,
        )
    else:
        handlers, tags, metadata = (
            parent.inheritable_handlers,
            parent.inheritable_tags,
            parent.inheritable_metadata,
        )
    manager = CallbackManager(handlers=[], parent_run_id=parent.run_id)
    for handler in handlers:
        if sees_nested_runs(handler):
            manager.add_handler(handler, inherit=True)
        elif isinstance(handler, _AstreamEventsCallbackHandler):
            manager.add_handler(MemberRunEvents(handler), inherit=False)
    manager.add_tags(tags)
    manager.add_metadata({k: v for k, v in metadata.items() if not k.startswith("ls_")})
    config["callbacks"] = manager
    return config
