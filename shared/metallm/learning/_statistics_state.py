"""The ridge models a router saves and restores: quality, cost and latency statistics as arrays.

Each model is its ``A`` and ``B`` (its inverse and coefficients are recomputed on restore, so
a tampered file cannot smuggle in an inverse that disagrees with them), under a prefix:
none for quality, ``cost_`` and ``latency_``; ``pending`` holds forgetting not applied yet
(a discounting policy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metallm.learning._features import FeatureMap, quality_dimension
from metallm.learning._ridge import RidgeStatistics

__all__ = ["RestoredStatistics", "restore_statistics", "statistics_arrays"]


@dataclass(frozen=True)
class RestoredStatistics:
    """The models a saved state held.

    Attributes:
        quality: Quality and cost per arm, on the quality features.
        cost: The cost model on every feature (the prompt's length too), if the map has one.
        latency: The latency model, once latency was learned.
        quality_dim: How many features the quality model reads.
    """

    quality: RidgeStatistics
    cost: RidgeStatistics | None
    latency: RidgeStatistics | None
    quality_dim: int


def statistics_arrays(
    quality: RidgeStatistics | None,
    cost: RidgeStatistics | None,
    latency: RidgeStatistics | None,
) -> dict[str, np.ndarray]:
    """The arrays to save for these models (copies; none for a model not built yet).

    Args:
        quality: The quality (and cost) statistics.
        cost: The cost model's.
        latency: The latency model's.
    """
    arrays: dict[str, np.ndarray] = {}
    for prefix, stats in (("", quality), ("cost_", cost), ("latency_", latency)):
        if stats is not None:
            arrays[f"{prefix}A"], arrays[f"{prefix}B"] = stats.A.copy(), stats.B.copy()
            if stats.pending.any():  # forgetting not applied yet (a discounting policy)
                arrays[f"{prefix}pending"] = stats.pending.copy()
    return arrays


def restore_statistics(
    arrays: dict[str, np.ndarray], features: FeatureMap, dim: int, n_arms: int
) -> RestoredStatistics:
    """The models `statistics_arrays` wrote; ValueError says what is wrong with them.

    Args:
        arrays: The saved arrays.
        features: The saved feature map (it says how many features each model reads).
        dim: The embedding's dimension.
        n_arms: The models in the pool.

    Raises:
        ValueError: An array is missing, misshapen, not finite, or not a ridge statistic.
    """
    if "A" not in arrays or "B" not in arrays:
        raise ValueError("the arrays A and B are missing")
    k, full = n_arms, features.dimension(dim)
    d = quality_dimension(features, dim)
    penalties = features.penalties(dim)
    stats = _restored(arrays["A"], arrays["B"], k, d, penalties[:d], targets=2)
    cost_stats = None
    if full > d:
        if "cost_A" not in arrays or "cost_B" not in arrays:
            raise ValueError("the cost model's arrays cost_A and cost_B are missing")
        cost_stats = _restored(arrays["cost_A"], arrays["cost_B"], k, full, penalties, targets=1)
    latency_stats = None
    if "latency_A" in arrays or "latency_B" in arrays:
        if "latency_A" not in arrays or "latency_B" not in arrays:
            raise ValueError("one of the latency model's arrays latency_A, latency_B is missing")
        latency_stats = _restored(
            arrays["latency_A"], arrays["latency_B"], k, full, penalties, targets=1
        )
    for prefix, restored in (("", stats), ("cost_", cost_stats), ("latency_", latency_stats)):
        pending = arrays.get(f"{prefix}pending")
        if restored is not None and pending is not None:
            if pending.shape != (k,) or (pending < 0).any():
                raise ValueError(f"the array {prefix}pending does not fit {k} models")
            restored.pending[:] = pending
    return RestoredStatistics(stats, cost_stats, latency_stats, d)


def _restored(
    A: np.ndarray, B: np.ndarray, k: int, d: int, penalties: np.ndarray, *, targets: int
) -> RidgeStatistics:
    """Statistics from saved ``A`` and ``B``; ValueError says what is wrong with them."""
    if A.shape != (k, d, d) or B.shape != (k, d, targets):
        raise ValueError(
            f"array shapes A{A.shape} B{B.shape} do not match {k} arms of {d} features"
        )
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise ValueError("the arrays contain NaN or inf")
    stats = RidgeStatistics(k, d, penalties, targets=targets, widths=targets == 2)
    stats.A[:] = A
    stats.B[:] = B
    try:
        stats.refresh()
    except np.linalg.LinAlgError as e:
        raise ValueError("matrix A is not positive definite (corrupt statistics)") from e
    return stats
