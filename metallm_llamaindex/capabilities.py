"""LlamaIndex's side of capability routing: a member's capabilities, a request's needs.

A member's `Capabilities` come from its ``metadata``
(``context_window`` less ``num_output`` for the input, ``is_function_calling_model``; an LLM
that is not a ``FunctionCallingLLM`` cannot call tools), and ``MetaLLM(capabilities={name:
{...}})`` overrides them (e.g. ``image_inputs``, which LlamaIndex metadata does not state). A
request's `Needs` come from its message blocks (images,
documents, audio), its tools and its length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
)
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM

from metallm.integrations import (
    Capabilities,
    Needs,
    estimate_tokens,
)

__all__ = ["member_capabilities", "prompt_needs", "request_needs"]


def member_capabilities(llm: LLM, overrides: Mapping[str, Any] | None) -> Capabilities:
    """What ``llm`` can serve: its metadata, whether it can call tools, then ``overrides``."""
    known: dict[str, Any] = {}
    try:
        metadata = llm.metadata
    except (ValueError, AttributeError):  # e.g. OpenAI(model=<unknown name>) raises
        metadata = None
    if metadata is not None:
        window, output = int(metadata.context_window), int(metadata.num_output or 0)
        if window > 0:
            known["max_input_tokens"] = window - output if 0 < output < window else window
        known["tool_calling"] = bool(
            isinstance(llm, FunctionCallingLLM) and metadata.is_function_calling_model
        )
    elif not isinstance(llm, FunctionCallingLLM):
        known["tool_calling"] = False
    return Capabilities.from_mapping(known).merged(overrides)


def request_needs(messages: Iterable[ChatMessage], *, tools: bool = False) -> Needs:
    """What a request of ``messages`` needs from the member that serves it."""
    characters, images, pdfs, audio = 0, False, False, False
    for message in messages:
        for block in message.blocks:
            if isinstance(block, TextBlock):
                characters += len(block.text)
            elif isinstance(block, ImageBlock):
                images = True
            elif isinstance(block, DocumentBlock):
                pdfs = pdfs or "pdf" in str(block.document_mimetype or "application/pdf")
            elif isinstance(block, AudioBlock):
                audio = True
    return Needs(
        input_tokens=estimate_tokens(characters), tools=tools, images=images, pdfs=pdfs, audio=audio
    )


def prompt_needs(prompt: str) -> Needs:
    """What a completion of ``prompt`` needs: room for its tokens."""
    return Needs(input_tokens=estimate_tokens(len(prompt)))
