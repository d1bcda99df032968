"""The ridge models a router saves and restores (`_statistics_state`)."""

from __future__ import annotations

import numpy as np
import pytest

from metallm.learning import ProjectedFeatures, PromptLengthFeatures
from metallm.learning._ridge import RidgeStatistics
from metallm.learning._statistics_state import restore_statistics, statistics_arrays


def _models(features, dim: int, arms: int = 3) -> tuple[RidgeStatistics, RidgeStatistics | None]:
    rng = np.random.default_rng(0)
    penalties = features.penalties(dim)
    full = features.dimension(dim)
    d = full - 1 if isinstance(features, PromptLengthFeatures) else full
    quality = RidgeStatistics(arms, d, penalties[:d], targets=2, widths=True)
    cost = RidgeStatistics(arms, full, penalties, targets=1, widths=False) if full > d else None
    for arm in range(arms):
        for _ in range(20):
            x = rng.normal(size=full)
            quality.update(arm, x[:d], rng.random(2))
            if cost is not None:
                cost.update(arm, x, rng.random(1))
    return quality, cost


def test_saved_statistics_restore_to_the_same_predictions() -> None:
    X = np.random.default_rng(1).normal(size=(50, 8))
    features = PromptLengthFeatures(ProjectedFeatures(4)).fit(np.hstack([X, np.ones((50, 1))]))
    quality, cost = _models(features, 9)
    arrays = statistics_arrays(quality, cost, None)
    assert set(arrays) == {"A", "B", "cost_A", "cost_B"}
    restored = restore_statistics(arrays, features, 9, 3)
    assert restored.latency is None and restored.quality_dim == quality.dim
    x = np.random.default_rng(2).normal(size=quality.dim)
    np.testing.assert_allclose(restored.quality.predict_one(x)[0], quality.predict_one(x)[0])
    assert restored.cost is not None
    np.testing.assert_allclose(restored.cost.A, cost.A)


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda a: a.pop("A"), "A and B are missing"),
        (lambda a: a.pop("cost_B"), "cost_A and cost_B are missing"),
        (lambda a: a.__setitem__("A", a["A"][:2]), "do not match 3 arms"),
        (lambda a: a["B"].__setitem__((0, 0, 0), np.nan), "NaN or inf"),
        (lambda a: a.__setitem__("A", -a["A"]), "not positive definite"),
        (lambda a: a.__setitem__("latency_A", a["cost_A"]), "latency_A, latency_B is missing"),
        (lambda a: a.__setitem__("pending", np.array([-1.0, 0.0, 0.0])), "pending does not fit"),
    ],
)
def test_a_tampered_array_is_a_value_error_that_names_it(tamper, match) -> None:
    X = np.random.default_rng(1).normal(size=(50, 8))
    features = PromptLengthFeatures(ProjectedFeatures(4)).fit(np.hstack([X, np.ones((50, 1))]))
    arrays = statistics_arrays(*_models(features, 9), None)
    tamper(arrays)
    with pytest.raises(ValueError, match=match):
        restore_statistics(arrays, features, 9, 3)
