"""Policies choose among the allowed arms, single and batched alike, and break exact ties at random."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from metallm import ConfigurationError, EpsilonGreedy, LinUCB, Router, SquareCB
from metallm.learning import RandomPolicy
from metallm.learning._policies import argmax_one

ARMS = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "policy", [LinUCB(alpha=1.0), EpsilonGreedy(epsilon=1.0), RandomPolicy(), SquareCB()]
)
def test_excluded_arms_are_never_chosen(policy):
    router = Router(ARMS, embedder=None, policy=policy, seed=3)
    x = np.array([0.3, -0.2, 0.9])
    single = Counter(router.select(x, exclude=["a", "c"]).arm for _ in range(200))
    batch = Counter(d.arm for d in router.select_batch(np.tile(x, (200, 1)), exclude=["a", "c"]))
    assert set(single) == set(batch) == {"b", "d"}  # both allowed arms are drawn, nothing else


def test_argmax_one_returns_the_best_and_breaks_ties_uniformly():
    rng = np.random.default_rng(0)
    assert argmax_one([0.1, 0.7, 0.3], rng) == 1
    assert argmax_one([0.5], rng) == 0
    assert argmax_one([-math.inf, 0.2, -math.inf], rng) == 1
    picks = Counter(argmax_one([0.4, 0.9, 0.9, 0.9 - 1e-13], rng) for _ in range(3000))
    assert set(picks) == {1, 2, 3}  # within the 1e-12 tolerance: a tie
    assert min(picks.values()) > 800  # about 1,000 each


def test_epsilon_greedy_single_choice_explores_only_allowed_arms():
    policy, rng = EpsilonGreedy(epsilon=0.5), np.random.default_rng(1)
    picks = Counter(policy.choose_one([0.9, -math.inf, 0.1, 0.2], rng) for _ in range(2000))
    assert 1 not in picks
    assert (
        picks[0] > 1000 and picks[2] > 100 and picks[3] > 100
    )  # greedy half + a third of the rest


def test_squarecb_explores_by_the_gaps_and_more_rarely_as_it_learns():
    scores = [0.9, 0.5, -math.inf, 0.8]
    early, late = SquareCB().at(0), SquareCB().at(9_999)
    assert early.gamma == 10.0 and late.gamma == pytest.approx(1000.0)
    p = early.distribution(np.array([scores]))[0]
    assert p[1] == pytest.approx(1 / (3 + 10 * 0.4)) and p[3] == pytest.approx(1 / (3 + 10 * 0.1))
    assert p[2] == 0.0 and p.sum() == pytest.approx(1.0) and p.argmax() == 0
    assert late.probability_one(scores, 1) < early.probability_one(scores, 1)  # it explores less
    assert early.probability_one(scores, 1) == pytest.approx(p[1])  # one path, the same maths


def test_squarecb_keeps_every_allowed_arm_above_its_floor():
    policy = SquareCB(floor=0.05).at(1_000_000)
    p = policy.distribution(np.array([[1.0, 0.0, -math.inf, -0.5]]))[0]
    assert min(p[0], p[1], p[3]) >= 0.05 and p[2] == 0.0 and p.sum() == pytest.approx(1.0)
    assert SquareCB(floor=0.9).distribution(np.array([[1.0, 0.0]]))[0] == pytest.approx([0.5, 0.5])
    with pytest.raises(ConfigurationError, match="floor"):
        SquareCB(floor=1.5)
    with pytest.raises(ConfigurationError, match="gamma_scale"):
        SquareCB(gamma_scale=0.0)


def test_a_discounting_router_tries_again_a_model_it_has_not_chosen_for_a_while() -> None:
    """A model tried early and wrong every time improves later (a silent model update).
    Forgetting only the chosen model's statistics kept it predicted wrong with no uncertainty
    left, never tried again; every model forgetting lets its uncertainty grow back."""
    rng = np.random.default_rng(0)
    router = Router(["steady", "late"], embedder=None, policy=LinUCB(alpha=1.0, discount=0.99))

    def x() -> np.ndarray:
        return np.array([1.0, 0.0, 0.0]) + 0.01 * rng.normal(size=3)

    for _ in range(20):  # early on, "late" is wrong, and known to be
        decision = router.select(x(), force="late")
        router.record(decision.id, quality=0.0, cost=0.0)
    chosen = []
    for step in range(1800):
        decision = router.select(x())
        better = step >= 300  # after 300 calls "late" improves past "steady"
        quality = {"steady": 0.5 if better else 0.9, "late": 1.0 if better else 0.0}
        router.record(decision.id, quality=quality[decision.arm], cost=0.0)
        chosen.append(decision.arm)
    assert chosen[-500:].count("late") > 400


def test_every_arm_forgets_at_the_discount_and_a_saved_router_keeps_what_is_pending(tmp_path):
    from metallm import LinUCB, Router

    router = Router(["a", "b", "c", "d"], embedder=None, policy=LinUCB(discount=0.9), seed=0)
    for arm in ("a", "a", "b"):
        decision = router.select(np.ones(3), force=arm)
        router.record(decision.id, quality=1.0, cost=0.0)
    stats = router.bandit.stats
    assert stats is not None and list(stats.pending) == [1, 0, 3, 3]  # c, d never chosen yet
    loaded = Router.load(router.save(tmp_path / "r.npz"), embedder=None)
    assert list(loaded.bandit.stats.pending) == [1, 0, 3, 3]
    probe = np.random.default_rng(1).normal(size=(4, 3))
    np.testing.assert_allclose(loaded.predict(probe).quality, router.predict(probe).quality)
    decision = router.select(np.ones(3), force="a")  # the fourth update: every arm catches up
    router.record(decision.id, quality=1.0, cost=0.0)
    assert list(router.bandit.stats.pending) == [0, 0, 0, 0]
