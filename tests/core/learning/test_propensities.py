"""Propensities: every decision carries the exact probability its policy chose its arm."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import EpsilonGreedy, LinUCB, RedisStore, Router, SQLiteStore, SquareCB
from metallm.learning import RandomPolicy
from metallm.learning._policies import mixture_probability, policy_from_dict


def _router(policy, **kwargs) -> Router:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    quality = np.stack([X[:, 0] > 0, np.full(300, 0.6), np.full(300, 0.2)], axis=1).astype(float)
    return Router(["a", "b", "c"], embedder=None, policy=policy, seed=0, **kwargs).fit(
        X, quality, np.full((300, 3), 0.001), tune=False
    )


@pytest.mark.parametrize(
    "policy",
    [
        LinUCB(alpha=0.0, explore=0.3),
        EpsilonGreedy(epsilon=0.2),
        RandomPolicy(),
        SquareCB(gamma_scale=1.0),
        SquareCB(floor=0.1),
    ],
)
def test_logged_propensities_match_how_often_each_arm_is_chosen(policy):
    router = _router(policy)
    query = np.array([2.0, 0.0, 0.0, 0.0])
    decisions = router.select_batch(np.repeat(query[None], 20_000, axis=0))
    frequency = {arm: np.mean([d.arm == arm for d in decisions]) for arm in router.arms}
    for d in decisions[:200]:
        assert d.propensity == pytest.approx(frequency[d.arm], abs=0.02)
    one = router.select(query)  # the single-query path logs the same probability
    assert one.propensity == pytest.approx(frequency[one.arm], abs=0.02)
    scores = list(one.scores.values())
    assert sum(policy.probability_one(scores, j) for j in range(3)) == pytest.approx(1.0)


def test_plain_ucb_is_certain_forced_and_sticky_choices_are_certain_and_excluded_arms_impossible():
    router = _router(LinUCB(alpha=0.0))
    query = np.array([2.0, 0.0, 0.0, 0.0])
    assert router.select(query).propensity == 1.0
    explorer = _router(LinUCB(alpha=0.0, explore=0.3))
    assert explorer.select(query, force="c").propensity == 1.0
    allowed_two = explorer.select_batch(np.repeat(query[None], 2_000, axis=0), exclude=["c"])
    assert {d.arm for d in allowed_two} <= {"a", "b"}
    assert min(d.propensity for d in allowed_two) == pytest.approx(0.15)  # 0.3 / 2 allowed
    assert mixture_probability([0.9, 0.1, -np.inf], 2, explore=0.3) == 0.0
    assert policy_from_dict(LinUCB(explore=0.25).to_dict()) == LinUCB(explore=0.25)
    assert policy_from_dict(SquareCB(floor=0.1).to_dict()) == SquareCB(floor=0.1)
    with pytest.raises(Exception, match="explore must be in"):
        LinUCB(explore=1.5)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_propensity_is_in_the_metadata_and_the_stores_ledger(kind, tmp_path, request):
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "state.sqlite")
    else:
        store = RedisStore(request.getfixturevalue("redis_url"), prefix=f"prop-{tmp_path.name}")
    router = _router(LinUCB(alpha=0.0, explore=0.3), store=store, sync_interval=None)
    decision = router.select(np.array([2.0, 0.0, 0.0, 0.0]))
    assert decision.to_metadata()["propensity"] == decision.propensity
    record = store.get_decision(decision.id)
    assert record is not None and record.propensity == pytest.approx(decision.propensity)
