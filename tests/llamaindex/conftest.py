from __future__ import annotations

import pytest
from llama_index.core import Settings

from metallm import Router
from metallm_llamaindex import MetaLLM
from tests.llamaindex.fakes import ScriptedLLM

PRICES = {"small": (1.0, 2.0), "large": (10.0, 30.0)}


@pytest.fixture(autouse=True)
def clean_settings():
    """LlamaIndex's Settings are global: restore them after every test."""
    saved = (Settings._llm, Settings._embed_model, Settings._callback_manager)
    yield
    Settings._llm, Settings._embed_model, Settings._callback_manager = saved


@pytest.fixture
def pool() -> dict[str, ScriptedLLM]:
    return {
        "small": ScriptedLLM(reply="small says hi", context_window=8000, num_output=300),
        "large": ScriptedLLM(reply="large says hello there", context_window=4000, num_output=500),
    }


@pytest.fixture
def llm(pool, embedder) -> MetaLLM:
    return MetaLLM(llms=pool, prices=PRICES, router=Router(list(pool), embedder=embedder, seed=0))
