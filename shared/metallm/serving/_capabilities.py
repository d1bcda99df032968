"""What each pool member can serve, what a request needs, and who is left out and why.

A request with an image must not go to a text-only model, a tool call to a model without tool
calling, a 50k-token prompt to an 8k-context model: such a call fails, and the router would
learn the failure as bad quality. The adapters read each member's `Capabilities` from
what its framework publishes (LangChain's ``model.profile``, LlamaIndex's ``metadata``;
overridable per member) and each request's `Needs` from the request; members that
cannot serve it are excluded before the bandit chooses, and are not learned from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from metallm.exceptions import ConfigurationError, NoCapableModelError

__all__ = ["Capabilities", "Needs", "check_capabilities", "exclusions", "shortfall"]


@dataclass(frozen=True)
class Capabilities:
    """What a member can serve. None means unknown, and unknown is assumed able.

    The names are those of langchain-core's ``ModelProfile``.

    Args:
        max_input_tokens: The largest prompt it takes, in tokens.
        tool_calling: Whether it calls tools.
        structured_output: Whether it answers in a given schema.
        image_inputs: Whether it reads images.
        pdf_inputs: Whether it reads PDFs.
        audio_inputs: Whether it reads audio.
        structured_output_methods: The ways it can be asked for a schema (LangChain's
            ``method``: ``function_calling``, ``json_schema``, ``json_mode``); None: any.

    >>> Capabilities.from_mapping({"max_input_tokens": 8192, "image_inputs": False, "name": "x"})
    Capabilities(max_input_tokens=8192, tool_calling=None, structured_output=None, image_inputs=False, pdf_inputs=None, audio_inputs=None, structured_output_methods=None)
    """

    max_input_tokens: int | None = None
    tool_calling: bool | None = None
    structured_output: bool | None = None
    image_inputs: bool | None = None
    pdf_inputs: bool | None = None
    audio_inputs: bool | None = None
    structured_output_methods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            if spec.name == "structured_output_methods":
                if not (
                    isinstance(value, (tuple, list)) and all(isinstance(m, str) for m in value)
                ):
                    raise ConfigurationError(
                        f"structured_output_methods must be a list of method names or None, "
                        f"got {value!r}"
                    )
                object.__setattr__(self, spec.name, tuple(value))
            elif spec.name == "max_input_tokens":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigurationError(
                        f"max_input_tokens must be a positive int or None, got {value!r}"
                    )
            elif not isinstance(value, bool):
                raise ConfigurationError(f"{spec.name} must be True, False or None, got {value!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> Capabilities:
        """The capabilities named in ``mapping`` (e.g. a ``ModelProfile``); other keys ignored."""
        if not mapping:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in mapping.items() if k in known})

    def merged(self, overrides: Mapping[str, Any] | Capabilities | None) -> Capabilities:
        """These capabilities with ``overrides`` (a mapping or another instance) on top.

        Args:
            overrides: What to put on top (None: nothing).
        """
        if overrides is None:
            return self
        given = (
            {f.name: getattr(overrides, f.name) for f in fields(overrides)}
            if isinstance(overrides, Capabilities)
            else dict(overrides)
        )
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigurationError(
                f"unknown capabilities {sorted(unknown)}: use {[f.name for f in fields(self)]}"
            )
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update({k: v for k, v in given.items() if v is not None})
        return Capabilities(**current)


@dataclass(frozen=True)
class Needs:
    """What one request needs from the model that serves it.

    ``input_tokens`` is an estimate (the adapters count about four characters a token).

    Args:
        input_tokens: About how many tokens the prompt holds.
        tools: Whether it binds tools.
        structured_output: Whether it asks for a schema.
        images: Whether it holds images.
        pdfs: Whether it holds PDFs.
        audio: Whether it holds audio.
        structured_output_method: How the schema is asked for (None: any way).
    """

    input_tokens: int = 0
    tools: bool = False
    structured_output: bool = False
    images: bool = False
    pdfs: bool = False
    audio: bool = False
    structured_output_method: str | None = None

    def describe(self) -> str:
        """The needs in words, e.g. ``"about 52,000 input tokens, image inputs"``."""
        parts = [f"about {self.input_tokens:,} input tokens"] if self.input_tokens else []
        for flag, words in (
            (self.tools, "tool calling"),
            (
                self.structured_output,
                "structured output"
                + (f" by {self.structured_output_method}" if self.structured_output_method else ""),
            ),
            (self.images, "image inputs"),
            (self.pdfs, "PDF inputs"),
            (self.audio, "audio inputs"),
        ):
            if flag:
                parts.append(words)
        return ", ".join(parts) or "nothing special"


def estimate_tokens(characters: int) -> int:
    """Tokens in ``characters`` of text, roughly (four characters a token, rounded up).

    Args:
        characters: The text's length.

    Returns:
        The estimated tokens.
    """
    return math.ceil(characters / 4)


def shortfall(needs: Needs, capabilities: Capabilities) -> str | None:
    """Why a member with ``capabilities`` cannot serve ``needs``, or None when it can.

    >>> shortfall(Needs(images=True), Capabilities(image_inputs=False))
    'no image inputs'
    >>> shortfall(Needs(input_tokens=50_000), Capabilities(max_input_tokens=8_192))
    'context of 8,192 input tokens, the request needs about 50,000'
    """
    reasons = []
    limit = capabilities.max_input_tokens
    if limit is not None and needs.input_tokens > limit:
        reasons.append(
            f"context of {limit:,} input tokens, the request needs about {needs.input_tokens:,}"
        )
    for needed, able, words in (
        (needs.tools, capabilities.tool_calling, "no tool calling"),
        (needs.structured_output, capabilities.structured_output, "no structured output"),
        (needs.images, capabilities.image_inputs, "no image inputs"),
        (needs.pdfs, capabilities.pdf_inputs, "no PDF inputs"),
        (needs.audio, capabilities.audio_inputs, "no audio inputs"),
    ):
        if needed and able is False:
            reasons.append(words)
    method, methods = needs.structured_output_method, capabilities.structured_output_methods
    if needs.structured_output and method and methods is not None and method not in methods:
        reasons.append(f"no structured output by {method} (only {', '.join(methods)})")
    return "; ".join(reasons) or None


def exclusions(
    needs: Needs | None, capabilities: Mapping[str, Capabilities], arms: Sequence[str]
) -> dict[str, str]:
    """``{member: reason}`` for every member that cannot serve ``needs``.

    Args:
        needs: What the request needs (None: nothing in particular).
        capabilities: What each member can serve.
        arms: The members to consider.

    Returns:
        The members left out, each with why.

    Raises:
        NoCapableModelError: No member can serve the request.
    """
    if needs is None or not capabilities:
        return {}
    excluded = {}
    for arm in arms:
        reason = shortfall(needs, capabilities.get(arm, Capabilities()))
        if reason is not None:
            excluded[arm] = reason
    if excluded and len(excluded) == len(arms):
        raise NoCapableModelError(needs.describe(), excluded)
    return excluded


def check_capabilities(
    names: Sequence[str], capabilities: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """The per-member capability overrides a user gave, checked.

    Args:
        names: The pool's members.
        capabilities: Overrides by member (e.g. ``{"mini": {"image_inputs": False}}``).

    Returns:
        The overrides, each a dict of known capability names.

    Raises:
        ConfigurationError: A member is not in the pool, or a capability is unknown or of the
            wrong type.
    """
    if not capabilities:
        return {}
    unknown = set(capabilities) - set(names)
    if unknown:
        raise ConfigurationError(
            f"capabilities name members not in the pool: {sorted(unknown)} (the pool: {list(names)})"
        )
    checked = {}
    for name, given in capabilities.items():
        if not isinstance(given, Mapping):
            raise ConfigurationError(
                f"capabilities[{name!r}] must be a mapping such as {{'image_inputs': False}}, got {given!r}"
            )
        Capabilities().merged(given)  # raises on unknown names and wrong types
        checked[name] = dict(given)
    return checked
