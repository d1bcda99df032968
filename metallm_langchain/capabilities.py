"""LangChain's side of capability routing: a member's capabilities, a request's needs.

A member's `Capabilities` come from its ``profile``
(langchain-core's ``ModelProfile``), a member whose class cannot bind tools cannot call them,
and ``ChatMetaLLM(capabilities={name: {...}})`` overrides either. A request's
`Needs` come from its messages' content blocks (images,
PDFs, audio), its bound tools, structured output, and its length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from metallm.integrations import (
    Capabilities,
    Needs,
    estimate_tokens,
)

__all__ = ["member_capabilities", "request_needs", "structured_output_options"]

_IMAGE_BLOCKS = {"image", "image_url", "input_image"}
_AUDIO_BLOCKS = {"audio", "input_audio"}


def member_capabilities(model: BaseChatModel, overrides: Mapping[str, Any] | None) -> Capabilities:
    """What ``model`` can serve: its profile, its class's tool support, then ``overrides``."""
    profile = getattr(model, "profile", None)
    capabilities = Capabilities.from_mapping(profile if isinstance(profile, Mapping) else None)
    if type(model).bind_tools is BaseChatModel.bind_tools:  # the base class raises
        capabilities = capabilities.merged({"tool_calling": False})
    if not structured_output_options(model):  # the base class forces a tool call, no method
        capabilities = capabilities.merged({"structured_output_methods": ("function_calling",)})
    return capabilities.merged(overrides)


def structured_output_options(model: BaseChatModel) -> frozenset[str]:
    """The options ``model.with_structured_output`` takes beyond the schema and ``include_raw``.

    ChatOpenAI and its kin take ``method`` and ``strict``; langchain-core's base implementation
    takes none (it forces a tool call and refuses any other argument).

    Args:
        model: A chat model.
    """
    import inspect

    try:
        parameters = inspect.signature(type(model).with_structured_output).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C-level or odd callable
        return frozenset()
    return frozenset(parameters) & {"method", "strict"}


def _is_pdf(block: Mapping[str, Any]) -> bool:
    if block.get("type") == "pdf":
        return True
    if block.get("type") != "file":
        return False
    mime = str(block.get("mime_type") or block.get("mimeType") or "")
    inner = block.get("file")
    name = str(inner.get("filename", "")) if isinstance(inner, Mapping) else ""
    return "pdf" in mime.lower() or name.lower().endswith(".pdf")


def request_needs(
    messages: Iterable[BaseMessage],
    *,
    tools: bool,
    structured_output: bool,
    structured_output_method: str | None = None,
) -> Needs:
    """What a request of ``messages`` needs from the member that serves it.

    Args:
        messages: The request's messages.
        tools: Whether it binds tools.
        structured_output: Whether it asks for a schema.
        structured_output_method: How (LangChain's ``method``), when known.
    """
    characters, images, pdfs, audio = 0, False, False, False
    for message in messages:
        content = message.content
        if isinstance(content, str):
            characters += len(content)
            continue
        for block in content:
            if isinstance(block, str):
                characters += len(block)
                continue
            kind = block.get("type")
            if kind == "text":
                characters += len(str(block.get("text", "")))
            elif kind in _IMAGE_BLOCKS:
                images = True
            elif kind in _AUDIO_BLOCKS:
                audio = True
            elif _is_pdf(block):
                pdfs = True
    return Needs(
        input_tokens=estimate_tokens(characters),
        tools=tools,
        structured_output=structured_output,
        structured_output_method=structured_output_method,
        images=images,
        pdfs=pdfs,
        audio=audio,
    )
