"""Calibrating the cost weight p to a budget: the significance walk."""

from __future__ import annotations

import numpy as np
import pytest

from metallm import ConfigurationError
from metallm.exceptions import InfeasibleBudgetError
from metallm.learning import calibrate_cost_weight


def _noisy_table(seed: int, n: int = 400, k: int = 4) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    quality = (rng.random((n, k)) < np.linspace(0.5, 0.8, k)).astype(float)
    cost = np.tile(np.geomspace(1e-4, 1e-2, k), (n, 1)) * rng.uniform(0.5, 1.5, (n, 1))
    predicted_quality = quality * 0.3 + rng.normal(0.5, 0.2, (n, k))
    predicted_cost = cost / cost.mean(axis=0).max()
    return predicted_quality, predicted_cost, quality, cost


@pytest.mark.parametrize("significance", [0.0, 1.0, 2.0])
def test_a_larger_budget_never_gets_lower_quality(significance: float) -> None:
    for seed in range(5):
        pq, pc, q, c = _noisy_table(seed)
        budgets = np.geomspace(c.mean(axis=0).min(), c.mean(axis=0).max() * 1.1, 40)
        found = [
            calibrate_cost_weight(pq, pc, q, c, float(b), significance=significance)
            for b in budgets
        ]
        qualities = [f.quality for f in found]
        assert qualities == sorted(qualities), (seed, qualities)
        assert all(f.cost <= b * (1 + 1e-9) for f, b in zip(found, budgets))


def test_significance_holds_off_a_one_row_gain_and_zero_takes_it() -> None:
    # arm 1 costs ten times more and is right on one more row of 200
    n = 200
    quality = np.zeros((n, 2))
    quality[:100, :] = 1.0
    quality[100, 1] = 1.0
    cost = np.tile([0.001, 0.01], (n, 1))
    predicted_quality = np.tile([0.5, 0.6], (n, 1))
    predicted_cost = cost / 0.01
    strict = calibrate_cost_weight(predicted_quality, predicted_cost, quality, cost, budget=0.02)
    plain = calibrate_cost_weight(
        predicted_quality, predicted_cost, quality, cost, budget=0.02, significance=0.0
    )
    assert strict.cost == pytest.approx(0.001) and strict.quality == pytest.approx(0.5)
    assert plain.cost == pytest.approx(0.01) and plain.quality == pytest.approx(0.505)


def test_a_clear_gain_is_bought() -> None:
    n = 200
    quality = np.tile([0.0, 1.0], (n, 1))
    cost = np.tile([0.001, 0.01], (n, 1))
    found = calibrate_cost_weight(quality, cost / 0.01, quality, cost, budget=0.02)
    assert found.quality == 1.0 and found.cost == pytest.approx(0.01)


def test_bad_significance_and_infeasible_budgets_are_typed_errors() -> None:
    pq, pc, q, c = _noisy_table(0)
    with pytest.raises(ConfigurationError, match="significance"):
        calibrate_cost_weight(pq, pc, q, c, 1.0, significance=-1.0)
    with pytest.raises(InfeasibleBudgetError):
        calibrate_cost_weight(pq, pc, q, c, float(c.min()) / 10)
