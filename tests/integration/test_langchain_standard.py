"""LangChain's standard integration tests for ChatMetaLLM over ChatOpenAI + ChatTogether arms."""

from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests

from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, SERVER, langchain_pool


class TestChatMetaLLMIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatMetaLLM]:
        return ChatMetaLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"models": langchain_pool(SERVER), "prices": PRICES}

    @property
    def model_override_value(self) -> str:
        return "mini"  # model="mini" forces that pool member

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True  # with_structured_output(method="json_mode") reaches the chosen member
