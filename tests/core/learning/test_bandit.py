"""LinearBandit: the learning alone, arms by index, no ids, locks, clocks or stores."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import ClusterFeatures, ConfigurationError, EmbeddingFeatures, LinUCB
from metallm.exceptions import DimensionMismatchError
from metallm.learning import LinearBandit

DIM, ARMS = 6, 3


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DIM)), rng.random((n, ARMS)), rng.random((n, ARMS)) / 100


def _bandit(alpha: float = 1.0, seed: int = 0) -> LinearBandit:
    return LinearBandit(ARMS, policy=LinUCB(alpha=alpha), features=EmbeddingFeatures(), seed=seed)


def test_one_query_and_a_batch_score_alike():
    E, Q, C = _data(200)
    bandit = _bandit()
    bandit.fit(E, Q, C, tune=False)
    chosen, scores, bonus, *_ = bandit.score_many(E[:20], cost_weight=0.3, scale=0.01)
    for row in range(20):
        one, one_scores, one_bonus, *_ = bandit.score_one(E[row], cost_weight=0.3, scale=0.01)
        assert one == chosen[row]
        np.testing.assert_allclose(one_scores, scores[row], rtol=1e-5)  # the width is float32
        np.testing.assert_allclose(one_bonus, bonus[row], rtol=1e-5)


def test_online_updates_equal_a_fit_on_the_same_outcomes():
    E, Q, C = _data(50)
    online = _bandit()
    for row in range(50):
        for arm in range(ARMS):
            online.learn(arm, E[row], quality=Q[row, arm], cost=C[row, arm])
    batch = _bandit()
    batch.fit(E, Q, C, tune=False)
    np.testing.assert_allclose(online.stats.theta, batch.stats.theta, atol=1e-9)
    assert online.n_updates == batch.n_updates == 150
    np.testing.assert_array_equal(online.counts(), [50, 50, 50])


def test_partial_fit_learns_only_the_logged_arm():
    E, Q, C = _data(30)
    bandit = _bandit()
    bandit.partial_fit(E, np.zeros(30, dtype=int), Q[:, 0], C[:, 0])
    np.testing.assert_array_equal(bandit.counts(), [30, 0, 0])


def test_excluded_and_forced_arms():
    E, Q, C = _data(100)
    bandit = _bandit(alpha=0.0)
    bandit.fit(E, Q, C, tune=False)
    chosen, *_ = bandit.score_many(E, cost_weight=0.0, scale=1.0, excluded={0, 1})
    assert set(chosen.tolist()) == {2}
    assert bandit.score_one(E[0], cost_weight=0.0, scale=1.0, forced=1)[0] == 1
    assert bandit.score_one(E[0], cost_weight=0.0, scale=1.0, excluded={0, 2})[0] == 1


def test_state_round_trip_is_exact():
    E, Q, C = _data(80)
    bandit = _bandit()
    bandit.fit(E, Q, C, tune=False)
    header, arrays = bandit.to_state()
    again = _bandit()
    again.adopt(header, arrays)
    np.testing.assert_array_equal(again.stats.A, bandit.stats.A)
    np.testing.assert_array_equal(again.stats.B, bandit.stats.B)
    assert again.dimension == DIM and again.n_updates == bandit.n_updates


def test_bad_state_is_a_value_error_that_says_what():
    E, Q, C = _data(20)
    bandit = _bandit()
    bandit.fit(E, Q, C, tune=False)
    header, arrays = bandit.to_state()
    arrays["A"] = arrays["A"][:, :-1]
    with pytest.raises(ValueError, match="array shapes"):
        _bandit().adopt(header, arrays)
    with pytest.raises(ValueError, match="incomplete or invalid"):
        _bandit().adopt({"dimension": DIM}, arrays)


def test_a_wrong_embedding_size_is_a_typed_error():
    bandit = _bandit()
    bandit.learn(0, np.ones(DIM), quality=1.0, cost=0.0)
    with pytest.raises(DimensionMismatchError, match=f"router was built on {DIM}"):
        bandit.score_one(np.ones(DIM + 1), cost_weight=0.0, scale=1.0)


def test_a_map_that_needs_fitting_says_so():
    bandit = LinearBandit(2, policy=LinUCB(), features=ClusterFeatures(), seed=0)
    with pytest.raises(ConfigurationError, match="must be fitted first"):
        bandit.ensure(DIM)
