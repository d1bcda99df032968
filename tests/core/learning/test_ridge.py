"""Ridge statistics: copies keep learning like the original."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from metallm.learning._ridge import RidgeStatistics


def _learned(stats: RidgeStatistics, rng: np.random.Generator, n: int = 30) -> None:
    for _ in range(n):
        stats.update(int(rng.integers(stats.n_arms)), rng.normal(size=stats.dim), rng.random(2))


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda s: pickle.loads(pickle.dumps(s))])
def test_a_copy_predicts_what_it_learns_after_the_copy(duplicate):
    rng = np.random.default_rng(0)
    original = RidgeStatistics(3, 5, 1.0)
    _learned(original, rng)
    twin = duplicate(original)
    _learned(twin, np.random.default_rng(1))
    _learned(original, np.random.default_rng(1))
    x = rng.normal(size=(4, 5))
    assert np.allclose(twin.means(x), original.means(x))
    assert np.allclose(twin.means_one(x[0]), original.means_one(x[0]))
    assert not np.allclose(twin.means(x), 0.0)
