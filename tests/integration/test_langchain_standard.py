"""LangChain's standard integration tests for ChatMetaLLM over ChatOpenAI + ChatTogether arms."""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from typing import Any

import httpx
import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from metallm_langchain import ChatMetaLLM
from tests.integration.conftest import PRICES, SERVER, langchain_pool


def _png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _wav() -> bytes:
    """A valid WAV of 0.1 s of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return buffer.getvalue()


_PDF = base64.b64decode(  # a one-page PDF saying "Hello"
    "JVBERi0xLjEKMSAwIG9iajw8L1R5cGUvQ2F0YWxvZy9QYWdlcyAyIDAgUj4+ZW5kb2JqCjIgMCBvYmo8PC9UeXBlL1Bh"
    "Z2VzL0tpZHNbMyAwIFJdL0NvdW50IDE+PmVuZG9iagozIDAgb2JqPDwvVHlwZS9QYWdlL1BhcmVudCAyIDAgUi9NZWRp"
    "YUJveFswIDAgMjAwIDIwMF0+PmVuZG9iagp0cmFpbGVyPDwvUm9vdCAxIDAgUj4+CiUlRU9G"
)


@pytest.fixture(autouse=True)
def local_media(monkeypatch):
    """The multimodal standard tests download an image, a PDF and a WAV: served locally here.

    This machine reaches no web site; the content is of the same kinds (a PNG, a PDF, a WAV),
    and what the tests check is that each content block reaches the chosen member over HTTP.
    """
    media = {".png": _png(), ".pdf": _PDF, ".wav": _wav()}

    def get(url: str, **_: Any) -> httpx.Response:
        suffix = next((s for s in media if url.endswith(s)), None)
        if suffix is None:
            raise AssertionError(f"the standard tests fetched an unexpected URL: {url}")
        return httpx.Response(200, content=media[suffix], request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", get)
    monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "metallm-tests/0 (local media only)")


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

    # Multimodal inputs: ChatOpenAI sends each block as the Chat Completions API defines it;
    # the local server takes text, image_url, file and input_audio parts.
    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True


def test_image_pdf_and_audio_blocks_reach_the_chosen_members_request(server, embedder):
    """What the multimodal standard tests rely on: each block arrives as its API part."""
    from langchain_core.messages import HumanMessage

    from metallm import Router

    llm = ChatMetaLLM(
        models=langchain_pool(server),
        prices=PRICES,
        router=Router(list(PRICES), embedder=embedder, seed=0),
    )
    blocks = [
        {"type": "text", "text": "Describe these."},
        {"type": "image", "base64": base64.b64encode(_png()).decode(), "mime_type": "image/png"},
        {"type": "file", "base64": base64.b64encode(_PDF).decode(), "mime_type": "application/pdf"},
        {"type": "audio", "base64": base64.b64encode(_wav()).decode(), "mime_type": "audio/wav"},
    ]
    llm.invoke([HumanMessage(blocks)], model="mini")
    (user,) = [m for m in server.requests[-1]["messages"] if m["role"] == "user"]
    assert [part["type"] for part in user["content"]] == [
        "text", "image_url", "file", "input_audio"
    ]  # fmt: skip
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
