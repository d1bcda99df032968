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
