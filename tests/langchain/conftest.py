from __future__ import annotations

import pytest

from metallm import LinUCB, Router
from metallm_langchain import ChatMetaLLM
from tests.langchain.fakes import ScriptedChatModel

PRICES = {"small": (1.0, 2.0), "large": (10.0, 30.0)}


@pytest.fixture
def pool() -> dict[str, ScriptedChatModel]:
    return {
        "small": ScriptedChatModel(
            reply="small says hi", model_id="small-v1", tool_args={"a": 1, "b": 2}
        ),
        "large": ScriptedChatModel(
            reply="large says hello there", model_id="large-v1", tool_args={"a": 1, "b": 2}
        ),
    }


@pytest.fixture
def llm(pool, embedder) -> ChatMetaLLM:
    router = Router(list(pool), embedder=embedder, policy=LinUCB(alpha=1.0), seed=0)
    return ChatMetaLLM(models=pool, prices=PRICES, router=router)
