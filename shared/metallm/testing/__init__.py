"""Test helpers for users and for our own tests (standard library only).

`OpenAICompatibleServer` is a local OpenAI-compatible provider on 127.0.0.1 whose
models are scripted by `ScriptedModel` (replies, tool calls, latency, HTTP errors,
timeouts, malformed bodies); `prompts` holds the demo's labelled
questions.

>>> from metallm.testing import OpenAICompatibleServer, ScriptedModel
>>> with OpenAICompatibleServer({"echo": ScriptedModel(reply=lambda prompt: prompt)}) as server:
...     server.base_url.startswith("http://127.0.0.1:")
True
"""

from metallm.testing.server import (
    OpenAICompatibleServer,
    ScriptedModel,
    count_tokens,
    openai_server,
)

__all__ = ["OpenAICompatibleServer", "ScriptedModel", "count_tokens", "openai_server"]
