"""A local OpenAI-compatible server for the whole session, and real provider clients on it."""

from __future__ import annotations

import httpx
import pytest
from langchain_openai import ChatOpenAI
from langchain_together import ChatTogether

from metallm.testing import OpenAICompatibleServer, ScriptedModel

# USD per 1M input / output tokens
PRICES = {"mini": (0.15, 0.60), "together-pro": (0.88, 1.20)}

SERVER = OpenAICompatibleServer(
    {
        "mini": ScriptedModel(reply="Hello from mini, the small model.", tool_args="schema"),
        "together-pro": ScriptedModel(
            reply="Hello from together pro, a larger model here.", tool_args="schema"
        ),
    }
)


@pytest.fixture(scope="session", autouse=True)
def server():
    SERVER.start()
    yield SERVER
    SERVER.stop()


def langchain_pool(server: OpenAICompatibleServer, **kwargs) -> dict:
    """A ChatOpenAI arm and a ChatTogether arm, both talking HTTP to the local server.

    Each pool gets async HTTP clients of its own (an ``httpx.Timeout`` is not cached by
    langchain-openai): a client cached by an earlier test belongs to that test's closed event
    loop, and a closed loop is the caller's error, not a provider failure to fall back from.
    """
    kwargs.setdefault("timeout", httpx.Timeout(60.0))
    return {
        "mini": ChatOpenAI(
            model="mini", base_url=server.base_url, api_key="test-key", stream_usage=True, **kwargs
        ),
        "together-pro": ChatTogether(
            model="together-pro",
            base_url=server.base_url,
            api_key="test-key",
            stream_usage=True,
            **kwargs,
        ),
    }
