"""Capabilities and needs: who can serve a request, who is left out and why."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import AllModelsFailedError, ConfigurationError, NoCapableModelError, Router
from metallm.serving._capabilities import (
    Capabilities,
    Needs,
    check_capabilities,
    exclusions,
    shortfall,
)

CAPS = {
    "small": Capabilities(max_input_tokens=8_192, tool_calling=True, image_inputs=False),
    "vision": Capabilities(max_input_tokens=128_000, image_inputs=True, tool_calling=False),
    "unknown": Capabilities(),
}


def test_each_need_is_checked_against_what_the_member_says_and_unknown_is_able():
    assert shortfall(Needs(images=True), CAPS["small"]) == "no image inputs"
    assert shortfall(Needs(images=True), CAPS["unknown"]) is None
    assert shortfall(Needs(tools=True, images=True), CAPS["vision"]) == "no tool calling"
    long = Needs(input_tokens=50_000, images=True)
    assert shortfall(long, CAPS["small"]) == (
        "context of 8,192 input tokens, the request needs about 50,000; no image inputs"
    )
    assert (
        shortfall(
            Needs(pdfs=True, audio=True, structured_output=True),
            Capabilities(pdf_inputs=False, audio_inputs=False, structured_output=False),
        )
        == "no structured output; no PDF inputs; no audio inputs"
    )


def test_exclusions_name_the_members_left_out_and_none_left_is_a_typed_error():
    arms = list(CAPS)
    assert exclusions(Needs(images=True), CAPS, arms) == {"small": "no image inputs"}
    assert exclusions(None, CAPS, arms) == {} and exclusions(Needs(), {}, arms) == {}
    only_two = {k: CAPS[k] for k in ("small", "vision")}
    with pytest.raises(NoCapableModelError) as info:
        exclusions(Needs(tools=True, images=True), only_two, ["small", "vision"])
    assert info.value.reasons == {"small": "no image inputs", "vision": "no tool calling"}
    assert "tool calling, image inputs" in str(info.value) and "capabilities=" in str(info.value)


def test_capabilities_are_checked_and_merged():
    with pytest.raises(ConfigurationError, match="max_input_tokens must be a positive int"):
        Capabilities(max_input_tokens=0)
    with pytest.raises(ConfigurationError, match="image_inputs must be True, False or None"):
        Capabilities(image_inputs="yes")
    merged = CAPS["small"].merged({"image_inputs": True, "tool_calling": None})
    assert merged.image_inputs is True and merged.tool_calling is True  # None keeps what was known
    with pytest.raises(ConfigurationError, match="unknown capabilities \\['vision'\\]"):
        CAPS["small"].merged({"vision": True})
    with pytest.raises(ConfigurationError, match="not in the pool: \\['ghost'\\]"):
        check_capabilities(["a"], {"ghost": {}})
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        check_capabilities(["a"], {"a": True})
    assert (
        Capabilities.from_mapping({"tool_calling": False, "name": "ignored"}).tool_calling is False
    )


def test_a_routed_call_never_tries_an_excluded_member_even_when_falling_back():
    router = Router(list(CAPS), embedder=None, seed=0)
    needs = Needs(images=True)
    for _ in range(20):
        call = router.route(np.array([1.0, 0.0]), needs=needs, capabilities=CAPS)
        assert call.decision.arm in ("vision", "unknown")
        assert call.excluded == {"small": "no image inputs"}
        call.succeeded(10, 10)
        assert call.metadata()["excluded"] == {"small": "no image inputs"}
    call = router.route(np.array([1.0, 0.0]), needs=needs, capabilities=CAPS)
    first = call.decision.arm
    second = call.failed(TimeoutError("provider down"))
    assert {first, second.arm} == {"vision", "unknown"}
    with pytest.raises(AllModelsFailedError):  # "small" is never the last resort
        call.failed(TimeoutError("provider down"))
    forced = router.route(np.array([1.0, 0.0]), needs=needs, capabilities=CAPS, force="small")
    assert forced.decision.arm == "small" and forced.excluded == {}  # the caller decides
