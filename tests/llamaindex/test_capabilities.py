"""MetaLLM routes a request only to members that can serve it: metadata, overrides, reasons."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

from metallm import ConfigurationError, NoCapableModelError, Router
from metallm_llamaindex import MetaLLM
from metallm_llamaindex.capabilities import member_capabilities, request_needs
from tests.llamaindex.fakes import ScriptedLLM

IMAGE = ChatMessage(
    role="user",
    blocks=[
        TextBlock(text="What is in this picture?"),
        ImageBlock(url="https://example.com/a.png"),
    ],
)


@pytest.fixture
def pool() -> dict[str, ScriptedLLM]:
    return {
        "small": ScriptedLLM(reply="small says hi", context_window=1000, num_output=200),
        "large": ScriptedLLM(reply="large says hello", context_window=128_000, num_output=1000),
    }


def test_metadata_gives_the_input_window_and_no_tools_for_a_custom_llm(pool):
    capabilities = member_capabilities(pool["small"], None)
    assert capabilities.max_input_tokens == 800 and capabilities.tool_calling is False
    assert member_capabilities(pool["small"], {"image_inputs": False}).image_inputs is False


def test_a_long_prompt_goes_only_to_members_whose_window_fits(pool, embedder):
    llm = MetaLLM(llms=pool, router=Router(list(pool), embedder=embedder, seed=0))
    prompt = "word " * 1_000  # about 1,250 tokens: past small's 800
    for response in (llm.complete(prompt), llm.chat([ChatMessage(role="user", content=prompt)])):
        meta = response.additional_kwargs["metallm"]
        assert meta["model"] == "large"
        assert meta["excluded"] == {
            "small": "context of 800 input tokens, the request needs about 1,250"
        }
    streamed = list(llm.stream_complete(prompt))
    assert streamed[-1].additional_kwargs["metallm"]["model"] == "large"


async def test_an_image_goes_only_to_image_members_and_none_able_is_a_typed_error(pool, embedder):
    llm = MetaLLM(
        llms=pool,
        router=Router(list(pool), embedder=embedder, seed=0),
        capabilities={"small": {"image_inputs": False}},
    )
    for _ in range(3):
        response = await llm.achat([IMAGE])
        meta = (
            response.message.additional_kwargs.get("metallm")
            or response.additional_kwargs["metallm"]
        )
        assert meta["model"] == "large" and meta["excluded"] == {"small": "no image inputs"}
    blind = MetaLLM(
        llms=pool,
        router=Router(list(pool), embedder=embedder, seed=0),
        capabilities={name: {"image_inputs": False} for name in pool},
    )
    with pytest.raises(NoCapableModelError) as info:
        blind.chat([IMAGE])
    assert set(info.value.reasons) == {"small", "large"}
    with pytest.raises(ConfigurationError, match="not in the pool"):
        MetaLLM(llms=pool, capabilities={"ghost": {}})


def test_needs_are_read_from_message_blocks():
    needs = request_needs([IMAGE, ChatMessage(role="user", content="x" * 400)], tools=True)
    assert needs.images and needs.tools and not needs.audio and needs.input_tokens >= 100


@pytest.mark.parametrize(("tools", "expected"), [({}, False), ({"large": True}, True)])
def test_the_pool_calls_functions_when_any_member_can(pool, embedder, tools, expected):
    overrides = {name: {"tool_calling": able} for name, able in tools.items()}
    llm = MetaLLM(llms=pool, router=Router(list(pool), embedder=embedder), capabilities=overrides)
    assert llm.metadata.is_function_calling_model is expected  # docs/llamaindex.md says so
