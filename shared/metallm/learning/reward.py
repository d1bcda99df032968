"""The reward ``quality - p * cost / cost_scale`` and the calibration of ``p`` to a budget.

Cost is normalised so that the priciest arm's mean cost is 1 (the MetaLLM paper's
convention): ``p`` then reads as "how many points of quality one priciest-model bill is
worth", independent of currency and of how cheap a pool is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metallm.exceptions import InfeasibleBudgetError

__all__ = [
    "Calibration",
    "calibrate_cost_weight",
    "cost_scale",
    "default_cost_weight_grid",
    "reward",
]


def reward(quality: np.ndarray, cost: np.ndarray, cost_weight: float, scale: float) -> np.ndarray:
    """The paper's reward: quality minus ``p`` times the normalised cost."""
    return np.asarray(quality) - cost_weight * np.asarray(cost) / scale


def cost_scale(counts: np.ndarray, cost_sums: np.ndarray) -> float:
    """Mean cost of the priciest arm seen so far; 1.0 before any cost is seen."""
    seen = counts > 0
    if not seen.any():
        return 1.0
    means = cost_sums[seen] / counts[seen]
    top = float(means.max())
    return top if top > 0 else 1.0


def default_cost_weight_grid() -> np.ndarray:
    """``p = 0`` and 241 log-spaced values from 1e-4 to 1e4."""
    return np.concatenate([[0.0], np.logspace(-4, 4, 241)])


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate_cost_weight` on validation data."""

    cost_weight: float
    quality: float
    cost: float


def calibrate_cost_weight(
    predicted_quality: np.ndarray,
    predicted_cost: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    budget: float,
    grid: np.ndarray | None = None,
) -> Calibration:
    """The ``p`` whose greedy routing has the best validation quality within ``budget`` $/query.

    ``predicted_cost`` is already normalised; ``quality`` and ``cost`` (n, k) are the
    known outcomes of every arm on the validation rows.
    """
    grid = default_cost_weight_grid() if grid is None else np.asarray(grid, dtype=float)
    rows = np.arange(quality.shape[0])
    best: Calibration | None = None
    cheapest = np.inf
    for p in grid:
        chosen = np.argmax(predicted_quality - p * predicted_cost, axis=1)
        mean_cost = float(cost[rows, chosen].mean())
        mean_quality = float(quality[rows, chosen].mean())
        cheapest = min(cheapest, mean_cost)
        if mean_cost > budget * (1 + 1e-9):
            continue
        if (
            best is None
            or mean_quality > best.quality + 1e-12
            or (abs(mean_quality - best.quality) <= 1e-12 and mean_cost < best.cost)
        ):
            best = Calibration(float(p), mean_quality, mean_cost)
    if best is None:
        raise InfeasibleBudgetError(budget, cheapest)
    return best
