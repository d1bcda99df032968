"""The reward ``quality - p * cost / cost_scale`` and the calibration of ``p`` to a budget.

Cost is normalised so that the priciest arm's mean cost is 1 (the MetaLLM paper's
convention): ``p`` then reads as "how many points of quality one priciest-model bill is
worth", independent of currency and of how cheap a pool is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metallm.exceptions import ConfigurationError, InfeasibleBudgetError

__all__ = [
    "SIGNIFICANCE",
    "Calibration",
    "calibrate_cost_weight",
    "cost_scale",
    "default_cost_weight_grid",
    "reward",
]


def reward(quality: np.ndarray, cost: np.ndarray, cost_weight: float, scale: float) -> np.ndarray:
    """The paper's reward: quality minus ``p`` times the normalised cost.

    Args:
        quality: Qualities.
        cost: Costs (USD).
        cost_weight: ``p``.
        scale: The cost normaliser (USD).
    """
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
    """Result of `calibrate_cost_weight` on validation data.

    Attributes:
        cost_weight: The ``p`` chosen.
        quality: Its mean validation quality.
        cost: Its mean validation cost (USD).
    """

    cost_weight: float
    quality: float
    cost: float


SIGNIFICANCE = 1.0
"""How many standard errors of the paired per-row difference a larger spend must gain, out of
fold, before calibration moves to it (see `calibrate_cost_weight`)."""


def calibrate_cost_weight(
    predicted_quality: np.ndarray,
    predicted_cost: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    budget: float,
    grid: np.ndarray | None = None,
    *,
    significance: float = SIGNIFICANCE,
) -> Calibration:
    """The ``p`` whose greedy routing has the best validation quality within ``budget`` $/query.

    ``predicted_cost`` is already normalised; ``quality`` and ``cost`` (n, k) are the
    known outcomes of every arm on the validation rows.

    Every ``p`` of the grid is a routing with a validation cost and quality. They are walked
    from the cheapest up to the budget, and the walk moves to a dearer routing only when its
    quality beats the one held by more than ``significance`` standard errors of their paired
    per-row difference: a larger budget buys a gain that is there, not one row's luck. A larger
    budget walks further, so the quality it gets is never below a smaller budget's (the rows of
    the paper's budget table are monotone where they are chosen), and ``significance=0`` takes
    the plain best quality within the budget.

    Args:
        predicted_quality: (n, k) predictions on validation rows.
        predicted_cost: (n, k) normalised cost predictions.
        quality: (n, k) true qualities.
        cost: (n, k) true costs (USD).
        budget: The mean USD per query to stay within.
        grid: The cost weights tried (None: the default grid).
        significance: Standard errors of gain a larger spend must show.

    >>> import numpy as np
    >>> Q = np.array([[0.0, 1.0]] * 50 + [[1.0, 1.0]] * 50)  # arm 1 is right everywhere
    >>> C = np.array([[0.0, 1.0]] * 100)                       # and costs 1 per query
    >>> PQ, PC = Q.copy(), C.copy()
    >>> calibrate_cost_weight(PQ, PC, Q, C, budget=1.0).quality
    1.0
    >>> calibrate_cost_weight(PQ, PC, Q, C, budget=0.1).quality  # only arm 0 is affordable
    0.5
    """
    grid = default_cost_weight_grid() if grid is None else np.asarray(grid, dtype=float)
    if not (np.isfinite(significance) and significance >= 0):
        raise ConfigurationError(f"significance must be a finite number >= 0, got {significance!r}")
    rows = np.arange(quality.shape[0])
    routings = []
    for p in grid:
        chosen = np.argmax(predicted_quality - p * predicted_cost, axis=1)
        routings.append((float(cost[rows, chosen].mean()), float(p), quality[rows, chosen]))
    routings.sort(key=lambda r: (r[0], -r[1]))  # cheapest first; among equals the larger p
    cheapest = routings[0][0]
    held: tuple[float, float, np.ndarray] | None = None
    for routing in routings:
        if routing[0] > budget * (1 + 1e-9):
            break
        if held is None:
            held = routing
            continue
        gain = routing[2] - held[2]
        mean_gain = float(gain.mean())
        if mean_gain <= 1e-12:
            continue
        error = float(gain.std(ddof=1)) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
        if mean_gain > significance * error:
            held = routing
    if held is None:
        raise InfeasibleBudgetError(budget, cheapest)
    return Calibration(held[1], float(held[2].mean()), held[0])
