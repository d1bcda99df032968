"""Metrics of routing on logged outcomes: the cost-quality frontier, AIQ, savings.

A router operating point is (mean cost $/query, mean quality) on test rows. Mixing two
operating points at random reaches every point between them, so what a router can deliver
at a cost ``c`` is its *non-decreasing upper convex hull* ``h(c)``. RouterBench's AIQ is the
area under ``h`` over the single models' cost range, divided by that range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "aiq",
    "cheapest_cost_reaching",
    "frontier",
    "oracle",
    "quality_hull",
    "savings_at_best",
    "zero_router_aiq",
]

Point = tuple[float, float]


def quality_hull(points: Sequence[Point]) -> np.ndarray:
    """Vertices (cost, quality) of the non-decreasing upper convex hull, by increasing cost.

    Args:
        points: (cost, quality) points.
    """
    pts = sorted({(float(c), float(q)) for c, q in points})
    if not pts:
        raise ValueError("no operating points")
    hull: list[Point] = []
    for point in pts:  # upper hull (monotone chain): keep right turns only
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (c2 - c1) * (point[1] - q1) - (q2 - q1) * (point[0] - c1) >= 0:
                hull.pop()
            else:
                break
        hull.append(point)
    # non-decreasing: stop at the best quality (beyond it, spend more for nothing)
    best = max(range(len(hull)), key=lambda i: (hull[i][1], -hull[i][0]))
    return np.array(hull[: best + 1])


def _hull_at(hull: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """h(c) at or right of the cheapest point: linear between vertices, flat after the best."""
    values: np.ndarray = np.interp(costs, hull[:, 0], hull[:, 1], left=0.0, right=hull[-1, 1])
    return values


def aiq(points: Sequence[Point], cost_range: tuple[float, float]) -> float:
    """Area under the non-decreasing convex hull of ``points`` over ``cost_range``, normalised.

    The hull is 0 below the cheapest point (nothing is delivered there), piecewise linear
    between vertices and flat after the best quality; the integral is exact.

    Args:
        points: (cost, quality) of a router at several cost weights.
        cost_range: The cheapest and the priciest single model's cost.
    """
    low, high = cost_range
    if not high > low:
        raise ValueError(f"empty cost range {cost_range}")
    hull = quality_hull(points)
    start = max(low, float(hull[0, 0]))
    if start >= high:
        return 0.0
    inner = hull[(hull[:, 0] > start) & (hull[:, 0] < high), 0]
    knots = np.concatenate([[start], inner, [high]])
    values = _hull_at(hull, knots)
    area = float(np.sum((values[1:] + values[:-1]) * np.diff(knots)) / 2.0)
    return area / (high - low)


def zero_router_aiq(single: Sequence[Point]) -> float:
    """AIQ of the zero router: random mixtures of single models, over their own cost range.

    Args:
        single: Each single model's (cost, quality).
    """
    costs = [c for c, _ in single]
    return aiq(single, (min(costs), max(costs)))


def cheapest_cost_reaching(points: Sequence[Point], quality: float) -> float | None:
    """Lowest cost at which the hull reaches ``quality``; None if it never does.

    Args:
        points: (cost, quality) points.
        quality: The quality to reach.
    """
    hull = quality_hull(points)
    if hull[-1, 1] < quality - 1e-12:
        return None
    if hull[0, 1] >= quality:
        return float(hull[0, 0])
    for (c1, q1), (c2, q2) in zip(hull[:-1], hull[1:]):
        if q2 >= quality - 1e-12:
            return float(c1 + (quality - q1) * (c2 - c1) / (q2 - q1))
    return None  # pragma: no cover - the last vertex reaches it


def savings_at_best(points: Sequence[Point], single: dict[str, Point]) -> float | None:
    """1 - (cheapest router cost reaching the best single model's quality) / that model's cost.

    Args:
        points: The router's (cost, quality) points.
        single: Each single model's (cost, quality).
    """
    best_cost, best_quality = min(single.values(), key=lambda cq: (-cq[1], cq[0]))
    cost = cheapest_cost_reaching(points, best_quality)
    if cost is None or best_cost <= 0:
        return None
    return 1.0 - cost / best_cost


def oracle(quality: np.ndarray, cost: np.ndarray) -> Point:
    """Mean cost and quality of picking, per row, the best model (the cheapest among ties).

    Args:
        quality: (n, k) true qualities.
        cost: (n, k) true costs.
    """
    best = quality.max(axis=1, keepdims=True)
    masked = np.where(quality >= best - 1e-12, cost, np.inf)
    chosen = masked.argmin(axis=1)
    rows = np.arange(quality.shape[0])
    return float(cost[rows, chosen].mean()), float(quality[rows, chosen].mean())


def frontier(
    predicted_quality: np.ndarray,
    predicted_cost: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    cost_weights: Sequence[float] | np.ndarray,
) -> list[Point]:
    """(mean cost, mean quality) of greedy routing at each cost weight ``p``.

    ``predicted_cost`` must already be normalised by the cost scale.

    Args:
        predicted_quality: (n, k) predictions.
        predicted_cost: (n, k) normalised cost predictions.
        quality: (n, k) true qualities.
        cost: (n, k) true costs.
        cost_weights: The ``p`` values.
    """
    rows = np.arange(quality.shape[0])
    points = []
    for p in cost_weights:
        chosen = np.argmax(predicted_quality - p * predicted_cost, axis=1)
        points.append((float(cost[rows, chosen].mean()), float(quality[rows, chosen].mean())))
    return points
