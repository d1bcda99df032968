"""Per-token prices: checking them, and the cost of one call from the usage it reported."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from metallm.exceptions import ConfigurationError

__all__ = ["Prices", "check_prices", "usage_cost"]

Prices = Mapping[str, tuple[float, float]]
"""USD per 1M input tokens and per 1M output tokens, by model name."""


def check_prices(prices: Prices, models: Iterable[str]) -> dict[str, tuple[float, float]]:
    """The prices as a dict, or `ConfigurationError` naming what is wrong."""
    pool = set(models)
    unknown = sorted(set(prices) - pool)
    if unknown:
        raise ConfigurationError(f"prices name models that are not in the pool: {unknown}")
    checked = {}
    for name, price in prices.items():
        try:
            price_in, price_out = (float(p) for p in price)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"price of {name!r} must be (usd_per_1M_input, usd_per_1M_output), got {price!r}"
            ) from None
        if not (
            math.isfinite(price_in)
            and math.isfinite(price_out)
            and price_in >= 0
            and price_out >= 0
        ):
            raise ConfigurationError(f"price of {name!r} must be finite and >= 0, got {price!r}")
        checked[name] = (price_in, price_out)
    return checked


def usage_cost(prices: Prices, model: str, input_tokens: int, output_tokens: int) -> float | None:
    """USD of one call: reported tokens times the model's prices.

    Args:
        prices: USD per 1M input and output tokens, by model.
        model: The model that answered.
        input_tokens: What the provider reported.
        output_tokens: What the provider reported.

    Returns:
        The cost, or None when the model has no price.
    """
    price = prices.get(model)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6
