"""The reward a router maximises: ``quality - p * cost / cost_scale - l * latency / latency_scale``."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from metallm.exceptions import ConfigurationError
from metallm.serving._checks import check_cost_weight, check_latency_weight

__all__ = ["RewardSetting"]


def _scale(name: str, value: float | None, unit: str) -> float | None:
    if value is not None and not (
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    ):
        raise ConfigurationError(f"{name} must be a positive number{unit}, got {value!r}")
    return None if value is None else float(value)


@dataclass(frozen=True)
class RewardSetting:
    """One frozen reward setting; a budget or a calibration replaces it whole, never edits it.

    Args:
        cost_weight: ``p``, the weight of cost (0 ignores cost).
        latency_weight: ``l``, the weight of latency (0 ignores it).
        cost_scale: A fixed cost normaliser in USD (None: the priciest model's mean observed cost).
        latency_scale: A fixed latency normaliser in seconds (None: the slowest model's mean).

    Raises:
        ConfigurationError: A weight is negative or not finite, or a scale not positive.

    >>> RewardSetting(0.1).with_cost_weight(0.3).cost_weight
    0.3
    """

    cost_weight: float
    latency_weight: float = 0.0
    cost_scale: float | None = None
    latency_scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cost_weight", check_cost_weight(self.cost_weight))
        object.__setattr__(self, "latency_weight", check_latency_weight(self.latency_weight))
        object.__setattr__(self, "cost_scale", _scale("cost_scale", self.cost_scale, ""))
        object.__setattr__(
            self, "latency_scale", _scale("latency_scale", self.latency_scale, " of seconds")
        )

    def with_cost_weight(self, cost_weight: float) -> RewardSetting:
        """This setting with another ``p`` (checked)."""
        return replace(self, cost_weight=cost_weight)
