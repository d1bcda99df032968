"""LangChain's standard unit tests for ChatMetaLLM over a pool of fake chat models."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from metallm_langchain import ChatMetaLLM
from tests.langchain.fakes import ScriptedChatModel


class TestChatMetaLLMStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatMetaLLM]:
        return ChatMetaLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {
                "small": ScriptedChatModel(reply="small"),
                "large": ScriptedChatModel(reply="large"),
            },
            "prices": {"small": (0.1, 0.2), "large": (1.0, 2.0)},
        }
