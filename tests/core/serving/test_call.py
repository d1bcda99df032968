"""RoutedCall: the one fallback loop both adapters drive (plain calls and streams, sync and async)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from metallm import AllModelsFailedError, EmbeddingFeatures, Fallbacks, LinUCB, Router, StoreError
from metallm.exceptions import InvalidInputError

DIM = 4
QUERY = np.array([1.0, 0.0, 0.0, 0.0])


class ProviderDown(ConnectionError):
    """What a provider client raises when the provider is unreachable."""


def _router(**kwargs) -> Router:
    """'a' is known to be best for QUERY, then 'b', then 'c' (greedy, so the order is fixed)."""
    router = Router(
        ["a", "b", "c"],
        embedder=None,
        features=EmbeddingFeatures(),
        policy=LinUCB(alpha=0.0),
        cost_weight=0.0,
        seed=0,
        **kwargs,
    )
    Q = np.tile([0.9, 0.6, 0.3], (20, 1))
    router.fit(np.tile(QUERY, (20, 1)), Q, np.zeros_like(Q), tune=False)
    return router


def _flaky(failing: set[str], answers: list[str]):
    def attempt(decision):
        answers.append(decision.arm)
        if decision.arm in failing:
            raise ProviderDown(f"{decision.arm} is down")
        return f"answer from {decision.arm}"

    return attempt


def test_a_provider_error_moves_on_to_the_next_best_model_and_is_learned():
    router = _router()
    before = router.counts
    call = router.route(QUERY)
    tried: list[str] = []
    assert call.run(_flaky({"a"}, tried)) == "answer from b"
    assert tried == ["a", "b"]
    assert [arm for arm, _ in call.errors] == ["a"]
    assert router.failure_counts["a"] == 1  # the failure was learned (quality 0), counted apart
    assert router.counts == before
    metadata = call.succeeded()
    assert metadata["model"] == "b" and metadata["cost_usd"] is None
    assert router.pending_decisions == 1  # b's decision waits for feedback; a's was settled


def test_one_failed_attempt_raises_the_providers_own_error():
    call = _router().route(QUERY, fallbacks=Fallbacks(max_attempts=1))
    with pytest.raises(ProviderDown, match="a is down"):
        call.run(_flaky({"a"}, []))


def test_every_model_failing_lists_each_error():
    call = _router().route(QUERY)
    with pytest.raises(AllModelsFailedError) as info:
        call.run(_flaky({"a", "b", "c"}, []))
    assert [arm for arm, _ in info.value.errors] == ["a", "b", "c"]
    assert isinstance(info.value.__cause__, ProviderDown)


def test_the_callers_own_errors_propagate_unchanged_and_teach_nothing():
    router = _router()
    before = router.bandit.stats.A.copy()
    for error in (TypeError("got an unexpected keyword argument 'foo'"), ValueError("bad tool schema"),
                  RuntimeError("Event loop is closed")):  # fmt: skip
        call = router.route(QUERY)
        tried: list[str] = []

        def attempt(decision, error=error, tried=tried):
            tried.append(decision.arm)
            raise error

        with pytest.raises(type(error)) as info:
            call.run(attempt)
        assert info.value is error and tried == ["a"]
    np.testing.assert_array_equal(router.bandit.stats.A, before)
    assert router.failure_counts == {"a": 0, "b": 0, "c": 0} and not router.cooldown.active


def test_provider_failures_are_recognised_by_status_type_and_option():
    from metallm.serving import is_provider_error

    class StatusError(Exception):
        def __init__(self, status_code):
            self.status_code = status_code

    class APITimeoutError(Exception):  # a client's own timeout type, matched by name
        pass

    class Flaky(Exception):
        pass

    assert [is_provider_error(StatusError(s)) for s in (429, 500, 503, 408, 400, 401, 404)] == [
        True, True, True, True, False, False, False,
    ]  # fmt: skip
    assert is_provider_error(APITimeoutError()) and is_provider_error(TimeoutError())
    malformed = json.JSONDecodeError("Expecting value", "<html>", 0)
    malformed.response = StatusError(200)  # a 200 whose body is not JSON: the provider's fault
    assert is_provider_error(malformed)
    assert not is_provider_error(Flaky()) and is_provider_error(Flaky(), (Flaky,))


def test_fallbacks_are_visible_in_the_metadata_and_the_log(caplog):
    call = _router().route(QUERY)
    with caplog.at_level(logging.WARNING, logger="metallm"):
        call.run(_flaky({"a"}, []))
    attempts = call.succeeded()["attempts"]
    assert [(a["model"], a["error"]) for a in attempts] == [("a", "ProviderDown"), ("b", None)]
    assert all(a["seconds"] >= 0 for a in attempts)
    assert "metallm: a failed after" in caplog.text and "falling back to b" in caplog.text


def test_unusable_usage_is_logged_and_the_cost_is_unknown(caplog):
    call = _router().route(QUERY, prices={"a": (1.0, 1.0)})
    call.run(_flaky(set(), []))
    with caplog.at_level(logging.WARNING, logger="metallm"):
        metadata = call.succeeded(input_tokens=-5, output_tokens=10)
    assert metadata["cost_usd"] is None and "reported unusable usage" in caplog.text


def test_metallms_own_errors_are_never_retried_on_another_model():
    call = _router().route(QUERY)
    tried: list[str] = []

    def attempt(decision):
        tried.append(decision.arm)
        raise InvalidInputError("the caller passed a bad argument")

    with pytest.raises(InvalidInputError):
        call.run(attempt)
    assert tried == ["a"] and call.errors == []


def test_a_forced_model_does_not_fall_back():
    call = _router().route(QUERY, force="b")
    with pytest.raises(ProviderDown):
        call.run(_flaky({"b"}, []))


def test_success_prices_the_answer_and_the_cost_serves_the_feedback():
    router = _router()
    call = router.route(QUERY, prices={"a": (1.0, 2.0)})
    call.run(_flaky(set(), []))
    metadata = call.succeeded(input_tokens=1000, output_tokens=500)
    assert metadata["cost_usd"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert metadata["decision_id"] == call.decision.id and metadata["router_id"] == router.id
    router.record(call.decision.id, quality=1.0)  # cost from the call


def test_success_keeps_the_session_on_the_model():
    router = _router()
    call = router.route(QUERY, session="conversation-1")
    call.run(_flaky({"a"}, []))
    call.succeeded()
    assert router.select(QUERY, session="conversation-1").arm == "b"


def test_bookkeeping_trouble_after_an_answer_keeps_the_answer(caplog):
    router = _router(max_pending=1)
    call = router.route(QUERY)
    answer = call.run(_flaky(set(), []))
    router.select(QUERY)  # evicts the call's decision
    with caplog.at_level(logging.WARNING, logger="metallm"):
        metadata = call.succeeded(input_tokens=10, output_tokens=10)
    assert answer == "answer from a" and metadata["model"] == "a"
    assert router.bookkeeping_errors == 1
    assert "could not attach the cost of decision" in caplog.text


def test_a_store_that_fails_while_recording_a_provider_error_does_not_stop_the_fallback(tmp_path):
    from metallm import SQLiteStore

    class BrokenStore(SQLiteStore):
        def append(self, event):
            raise StoreError("the store is down")

    router = _router(store=BrokenStore(tmp_path / "s.sqlite"))
    call = router.route(QUERY)
    assert call.run(_flaky({"a"}, [])) == "answer from b"
    health = router.health()
    assert health["spooled_events"] == 1 and health["store_available"] is False  # kept for later


def test_a_stream_falls_back_before_its_first_item_only():
    router = _router()
    call = router.route(QUERY)

    def start(decision):
        if decision.arm == "a":
            raise ProviderDown("a refused the stream")
        yield from ["x", "y"]

    assert list(call.open_stream(start)) == ["x", "y"]
    assert call.decision.arm == "b"


def test_a_stream_failing_midway_is_learned_and_re_raised():
    router = _router()
    call = router.route(QUERY)

    def start(decision):
        yield "part of an answer"
        raise ProviderDown("connection reset")

    items = call.open_stream(start)
    assert next(items) == "part of an answer"
    with pytest.raises(ProviderDown):
        next(items)
    assert router.failure_counts["a"] == 1 and call.decision.arm == "a"


def test_an_empty_stream_is_the_providers_failure_and_the_next_model_is_tried():
    from metallm.exceptions import AllModelsFailedError

    call = _router().route(QUERY)
    streams = {"a": (), "b": ("b says hi",)}
    first = call.decision.arm
    chunks = list(call.open_stream(lambda decision: iter(streams[decision.arm])))
    if first == "a":
        assert chunks == ["b says hi"] and call.errors[0][0] == "a"
    else:
        assert chunks == ["b says hi"] and call.errors == []
    with pytest.raises(AllModelsFailedError, match="first chunk"):
        list(_router().route(QUERY).open_stream(lambda decision: iter(())))


async def test_async_calls_and_streams_fall_back_the_same_way():
    router = _router()
    call = router.route(QUERY)

    async def attempt(decision):
        if decision.arm == "a":
            raise ProviderDown("a is down")
        return decision.arm

    assert await call.arun(attempt) == "b"

    async def stream(decision):
        if decision.arm == "a":
            raise ProviderDown("a is down")
        yield "x"
        yield "y"

    async def opened(decision):  # LlamaIndex style: a coroutine that returns the stream
        return stream(decision)

    call = router.route(QUERY)
    assert [item async for item in await call.aopen_stream(stream)] == ["x", "y"]
    call = router.route(QUERY)
    assert [item async for item in await call.aopen_stream(opened)] == ["x", "y"]


def test_a_calls_latency_starts_after_the_choice_not_before_the_embedding():
    """Loading or running the embedder is metallm's time, not the model's."""
    import time as _time

    class SlowEmbedder:
        model_name = "slow"
        dimension = 4

        def embed(self, texts):  # noqa: ANN001
            _time.sleep(0.3)
            return np.ones((len(texts), 4))

    router = Router(["a", "b"], embedder=SlowEmbedder(), prompt_length=False)
    call = router.route("a question")
    metadata = call.succeeded(input_tokens=1, output_tokens=1)
    assert metadata["latency_s"] < 0.1, metadata["latency_s"]
