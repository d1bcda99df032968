"""ChatMetaLLM routes a request only to members that can serve it: profiles, overrides, reasons."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from metallm import ConfigurationError, NoCapableModelError, Router
from metallm.serving import explain
from metallm_langchain import ChatMetaLLM
from metallm_langchain.capabilities import request_needs
from tests.langchain.fakes import ScriptedChatModel

IMAGE = HumanMessage(
    content=[
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image", "url": "https://example.com/cat.png"},
    ]
)


def _pool() -> dict[str, ScriptedChatModel]:
    text_only = ScriptedChatModel(reply="text only", model_id="text-only")
    text_only.profile = {"max_input_tokens": 1_000, "image_inputs": False, "tool_calling": True}
    vision = ScriptedChatModel(reply="I see a cat", model_id="vision")
    vision.profile = {"max_input_tokens": 128_000, "image_inputs": True, "tool_calling": True}
    return {"text-only": text_only, "vision": vision}


@pytest.fixture
def llm(embedder) -> ChatMetaLLM:
    pool = _pool()
    return ChatMetaLLM(models=pool, router=Router(list(pool), embedder=embedder, seed=0))


def test_an_image_goes_only_to_members_whose_profile_takes_images(llm):
    for _ in range(5):
        message = llm.invoke([IMAGE])
        meta = message.response_metadata["metallm"]
        assert meta["model"] == "vision" and message.content == "I see a cat"
        assert meta["excluded"] == {"text-only": "no image inputs"}
        assert "text-only: excluded, no image inputs" in explain(meta)
    assert llm.invoke("plain text").response_metadata["metallm"]["excluded"] == {}


def test_an_over_long_prompt_goes_only_to_members_whose_context_fits(llm):
    long = "word " * 2_000  # about 2,500 tokens: past text-only's 1,000
    meta = llm.invoke(long).response_metadata["metallm"]
    assert meta["model"] == "vision"
    assert meta["excluded"] == {
        "text-only": "context of 1,000 input tokens, the request needs about 2,500"
    }
    chunks = list(llm.stream(long))  # streaming reads the same needs
    assert chunks[-1].response_metadata["metallm"]["model"] == "vision"


def test_overrides_win_and_none_able_is_a_typed_error_naming_who_lacks_what(embedder):
    pool = _pool()
    llm = ChatMetaLLM(
        models=pool,
        router=Router(list(pool), embedder=embedder, seed=0),
        capabilities={"vision": {"image_inputs": False}},
    )
    with pytest.raises(NoCapableModelError, match="image inputs") as info:
        llm.invoke([IMAGE])
    assert info.value.reasons == {"text-only": "no image inputs", "vision": "no image inputs"}
    with pytest.raises(ConfigurationError, match="not in the pool"):
        ChatMetaLLM(models=_pool(), capabilities={"ghost": {"image_inputs": True}})
    with pytest.raises(ConfigurationError, match="unknown capabilities"):
        ChatMetaLLM(models=_pool(), capabilities={"vision": {"sees": True}})


async def test_async_and_batch_calls_read_the_needs_too(llm):
    message = await llm.ainvoke([IMAGE])
    assert message.response_metadata["metallm"]["model"] == "vision"
    batch = llm.batch([[IMAGE], [IMAGE]])
    assert [m.response_metadata["metallm"]["model"] for m in batch] == ["vision", "vision"]


def test_needs_are_read_from_content_blocks_tools_and_length():
    pdf = HumanMessage(
        content=[
            {"type": "file", "mime_type": "application/pdf", "base64": "JVBERi0="},
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
            {"type": "text", "text": "x" * 400},
        ]
    )
    needs = request_needs([pdf], tools=True, structured_output=False)
    assert needs.pdfs and needs.audio and needs.images and needs.tools
    assert not needs.structured_output and needs.input_tokens == 100


def test_the_pools_profile_is_the_union_of_what_its_members_can_do(embedder):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from metallm import Router
    from metallm_langchain import ChatMetaLLM

    members = {
        "small": FakeListChatModel(
            responses=["a"],
            profile={"tool_calling": True, "image_inputs": False, "max_input_tokens": 8000},
        ),
        "large": FakeListChatModel(
            responses=["b"],
            profile={"tool_calling": False, "image_inputs": True, "max_input_tokens": 128_000},
        ),
    }
    llm = ChatMetaLLM(models=members, router=Router(list(members), embedder=embedder))
    assert llm.profile == {"tool_calling": True, "image_inputs": True, "max_input_tokens": 128_000}
    bare = {"a": FakeListChatModel(responses=["a"]), "b": FakeListChatModel(responses=["b"])}
    assert ChatMetaLLM(models=bare, router=Router(list(bare), embedder=embedder)).profile is None
