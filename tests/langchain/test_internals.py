"""What ``metallm_langchain._internals`` relies on in langchain-core, checked directly.

Each test names one behaviour of langchain-core that a workaround in ``_internals`` exists
for; when an upgrade changes it, the test fails here, before the adapter misbehaves.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from metallm.exceptions import EmptyResponseError
from metallm_langchain import _internals


class _Recorder(BaseChatModel):
    """Records what langchain-core hands ``_generate`` and ``_stream``."""

    seen: list[dict[str, Any]] = []
    chunks: int = 1

    @property
    def _llm_type(self) -> str:
        return "recorder"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # noqa: ANN001
        self.seen.append({"method": "_generate", "run_manager": run_manager, **kwargs})
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # noqa: ANN001
        self.seen.append({"method": "_stream", "run_manager": run_manager, **kwargs})
        for _ in range(self.chunks):
            yield ChatGenerationChunk(message=AIMessageChunk(content="ok"))


def test_stream_calls_stream_without_the_run_manager():
    """Why ``STREAM_PARENT`` carries the router's run to ``_stream``."""
    model = _Recorder(seen=[])
    list(model.stream("hi"))
    assert model.seen[-1]["method"] == "_stream" and model.seen[-1]["run_manager"] is None


def test_invoke_does_not_hand_its_config_to_generate():
    """Why ``CALL_CONFIG`` carries ``configurable`` (the session) to ``_generate``."""
    model = _Recorder(seen=[])
    model.invoke("hi", config={"configurable": {"session_id": "s1"}})
    call = model.seen[-1]
    assert call["method"] == "_generate" and call["run_manager"] is not None
    assert "config" not in call and "configurable" not in call
    assert "configurable" not in call["run_manager"].metadata


def test_a_stream_with_no_chunk_is_a_bare_value_error_with_these_words():
    """Why ``opened`` turns that ``ValueError`` into metallm's ``EmptyResponseError``."""
    model = _Recorder(seen=[], chunks=0)
    with pytest.raises(ValueError, match="No generation chunks"):
        list(model.stream("hi"))  # what the router opens a member's stream with
    with pytest.raises(EmptyResponseError, match="had no chunk"):
        list(_internals.opened({}, model.stream("hi")))


def test_the_hooks_and_the_child_config_are_context_variables():
    """``member_context`` replaces the chain's config and silences non-tracer hook handlers."""
    from langchain_core.runnables.config import var_child_runnable_config
    from langchain_core.tracers.context import _configure_hooks

    assert isinstance(var_child_runnable_config, ContextVar)
    assert _configure_hooks and all(isinstance(hook[0], ContextVar) for hook in _configure_hooks)


def test_member_context_keeps_usage_hooks_off_the_members_run_and_restores_them():
    from langchain_core.callbacks import get_usage_metadata_callback
    from langchain_core.runnables.config import var_child_runnable_config
    from langchain_core.tracers.context import _configure_hooks

    with get_usage_metadata_callback() as usage:
        hooked = [var for var, *_ in _configure_hooks if var.get() is usage]
        assert hooked, "the usage callback is installed through a configure hook"
        with _internals.member_context({"tags": ["member"]}):
            assert var_child_runnable_config.get() == {"tags": ["member"]}
            assert all(var.get() is None for var in hooked)
        assert all(var.get() is usage for var in hooked)


def test_only_tracers_that_do_not_stream_see_the_members_nested_run():
    from langchain_core.tracers import BaseTracer
    from langchain_core.tracers._streaming import _StreamingCallbackHandler
    from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler

    class Counter(BaseCallbackHandler):
        pass

    class Tracer(BaseTracer):
        def _persist_run(self, run: Any) -> None:
            pass

    assert _internals.sees_nested_runs(Tracer())
    assert not _internals.sees_nested_runs(Counter())
    assert issubclass(_AstreamEventsCallbackHandler, _StreamingCallbackHandler)
    assert not _internals.sees_nested_runs(_AstreamEventsCallbackHandler())
