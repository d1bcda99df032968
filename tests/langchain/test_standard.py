"""LangChain's standard unit tests for ChatMetaLLM over a pool of ChatOpenAI members.

Unit tests make no call, so the members point nowhere; they are ChatOpenAI because those
serialize, which ``test_serdes`` needs.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.unit_tests import ChatModelUnitTests

from metallm_langchain import ChatMetaLLM


@pytest.fixture(autouse=True)
def openai_key_in_the_environment(monkeypatch):
    """Where a deployed ChatOpenAI reads its key; ``load`` takes it from there too."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-test")


class TestChatMetaLLMStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatMetaLLM]:
        return ChatMetaLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {
                "small": ChatOpenAI(model="gpt-4o-mini", api_key="sk-unit-test"),
                "large": ChatOpenAI(model="gpt-4o", api_key="sk-unit-test"),
            },
            "prices": {"small": (0.15, 0.6), "large": (2.5, 10.0)},
        }

    @pytest.mark.xfail(
        reason="langchain-core's load(allowed_objects='all') admits only the classes in its own "
        "mapping, so no third-party chat model can pass test_serdes as written; the snapshot "
        "half passes, and test_the_model_serializes_with_dumpd_and_loads_back_without_secrets "
        "loads with an explicit allowlist",
        raises=ValueError,
        strict=True,
    )
    def test_serdes(self, model: Any, snapshot: Any) -> None:
        super().test_serdes(model, snapshot)
