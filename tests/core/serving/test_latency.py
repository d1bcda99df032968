"""Latency: measured on every routed call, learned per model, weighed in the reward when asked."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metallm import ConfigurationError, LinUCB, Router, SQLiteStore
from metallm.exceptions import InvalidFeedbackError

ARMS = ["fast", "slow"]
SECONDS = {"fast": 0.2, "slow": 2.0}


def _queries(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 6))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _share_fast(latency_weight: float, n: int = 400) -> float:
    """Two models of equal quality and cost; one ten times slower. The fast one's share, late on."""
    router = Router(ARMS, embedder=None, latency_weight=latency_weight, seed=0)
    picks = []
    for x in _queries(n):
        decision = router.select(x)
        router.record(decision.id, quality=0.8, cost=0.001, latency=SECONDS[decision.arm])
        picks.append(decision.arm)
    return float(np.mean([p == "fast" for p in picks[n // 2 :]]))


def test_with_a_latency_weight_the_router_learns_to_prefer_the_fast_model():
    assert _share_fast(0.5) > 0.9
    assert 0.2 < _share_fast(0.0) < 0.8  # without it, latency does not matter


def test_latency_is_predicted_per_model_and_explained():
    router = Router(ARMS, embedder=None, latency_weight=0.5, policy=LinUCB(alpha=0.0), seed=0)
    for x in _queries(40):
        for arm in ARMS:
            d = router.select(x, force=arm)
            router.record(d.id, quality=0.8, cost=0.001, latency=SECONDS[arm])
    assert router.latency_scale == pytest.approx(2.0, rel=0.01)  # the slowest model's mean
    decision = router.select(_queries(1, seed=9)[0])
    predicted = decision.predicted_latency
    assert predicted["fast"] == pytest.approx(0.2, abs=0.05)
    assert predicted["slow"] == pytest.approx(2.0, abs=0.1)
    meta = decision.to_metadata()
    assert meta["predicted_latency_s"] == dict(predicted)
    table = router.route(_queries(1, seed=9)[0]).explain()
    assert "latency_s" in table and "latency weight 0.5" in table


def test_a_routed_call_measures_latency_and_the_feedback_learns_it():
    router = Router(ARMS, embedder=None, seed=0)
    call = router.route(_queries(1)[0], force="slow")

    def answer(decision):
        time.sleep(0.05)
        return "ok"

    call.run(answer)
    meta = call.succeeded(input_tokens=10, output_tokens=5)
    assert meta["latency_s"] >= 0.05 and meta["time_to_first_token_s"] is None
    router.record(meta["decision_id"], quality=1.0)  # the latency attached when it answered
    assert router.bandit.latency_stats is not None
    assert router.latency_scale == pytest.approx(meta["latency_s"])


def test_a_stream_reports_its_time_to_first_item():
    router = Router(ARMS, embedder=None, seed=0)
    call = router.route(_queries(1)[0])

    def start(decision):
        time.sleep(0.03)
        yield "first"
        time.sleep(0.03)
        yield "second"

    assert list(call.open_stream(start)) == ["first", "second"]
    meta = call.succeeded()
    assert 0.03 <= meta["time_to_first_token_s"] < meta["latency_s"]


def test_wrong_latency_arguments_are_typed_errors():
    with pytest.raises(ConfigurationError, match="latency_weight"):
        Router(ARMS, embedder=None, latency_weight=-1.0)
    with pytest.raises(ConfigurationError, match="latency_scale"):
        Router(ARMS, embedder=None, latency_scale=0.0)
    router = Router(ARMS, embedder=None)
    d = router.select(_queries(1)[0])
    with pytest.raises(InvalidFeedbackError, match="latency must be"):
        router.record(d.id, quality=1.0, cost=0.0, latency=float("nan"))
    with pytest.raises(InvalidFeedbackError, match="latency must be"):
        router.record(d.id, quality=1.0, cost=0.0, latency="fast")  # type: ignore[arg-type]


def test_latency_survives_the_store_and_a_restart(tmp_path):
    path = tmp_path / "state.sqlite"
    deciding = Router(ARMS, embedder=None, store=SQLiteStore(path), sync_interval=None)
    made = [deciding.select(x) for x in _queries(6)]
    for d in made:
        deciding.observe_cost(d.id, 0.001, latency=SECONDS[d.arm])
    grading = Router(ARMS, embedder=None, store=SQLiteStore(path), sync_interval=None)
    for d in made:  # another router records: the latency comes from the store's ledger
        grading.record(d.id, quality=1.0)
    events = [e for _, e in SQLiteStore(path).events_after(None)]
    assert [e.latency for e in events] == [SECONDS[d.arm] for d in made]
    fresh = Router(ARMS, embedder=None, store=SQLiteStore(path), sync_interval=None)
    assert fresh.bandit.latency_stats is not None
    np.testing.assert_allclose(fresh.bandit.latency_stats.B, grading.bandit.latency_stats.B)


def test_save_and_load_keep_the_latency_models(tmp_path):
    router = Router(ARMS, embedder=None, seed=0)
    X = _queries(50)
    router.fit(X, np.full((50, 2), 0.8), np.full((50, 2), 0.001), tune=False,
               latency=np.tile([0.2, 2.0], (50, 1)))  # fmt: skip
    loaded = Router.load(router.save(tmp_path / "state.npz"), embedder=None)
    np.testing.assert_allclose(
        loaded.bandit.predict_latency(X), router.bandit.predict_latency(X), rtol=1e-9
    )
    assert loaded.latency_scale == pytest.approx(2.0, rel=1e-6)
