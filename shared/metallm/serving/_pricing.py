"""Per-token prices: checking them, and the cost of one call from the usage it reported."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

from metallm.exceptions import ConfigurationError

__all__ = ["Prices", "check_prices", "list_price", "usage_cost"]

logger = logging.getLogger("metallm.serving")

Prices = Mapping[str, tuple[float, ...]]
"""USD per 1M input tokens and per 1M output tokens (and, optionally, per 1M cached input
tokens), by model name."""


def check_prices(prices: Prices, models: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """The prices as a dict, or `ConfigurationError` naming what is wrong.

    Args:
        prices: ``(usd_per_1M_input, usd_per_1M_output[, usd_per_1M_cached_input])`` by model.
        models: The pool.
    """
    pool = set(models)
    unknown = sorted(set(prices) - pool)
    if unknown:
        raise ConfigurationError(f"prices name models that are not in the pool: {unknown}")
    checked = {}
    for name, price in prices.items():
        try:
            values = tuple(float(p) for p in price)
        except (TypeError, ValueError):
            values = ()
        if len(values) not in (2, 3):
            raise ConfigurationError(
                f"price of {name!r} must be (usd_per_1M_input, usd_per_1M_output) or with a third "
                f"usd_per_1M_cached_input, got {price!r}"
            )
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigurationError(f"price of {name!r} must be finite and >= 0, got {price!r}")
        checked[name] = values
    return checked


def usage_cost(
    prices: Prices,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
) -> float | None:
    """USD of one call: reported tokens times the model's prices.

    Cached input tokens (counted within ``input_tokens``, as providers report them) are priced
    at the cached-input price when the model has one, else as input.

    Args:
        prices: USD per 1M input, output (and cached input) tokens, by model.
        model: The model that answered.
        input_tokens: What the provider reported (cached ones included).
        output_tokens: What the provider reported.
        cached_input_tokens: How many of the input tokens were read from the provider's cache.

    Returns:
        The cost, or None when the model has no price.

    >>> usage_cost({"m": (1.0, 2.0, 0.1)}, "m", 1_000_000, 0, cached_input_tokens=500_000)
    0.55
    """
    price = prices.get(model)
    if price is None:
        return None
    cached = min(max(cached_input_tokens, 0), input_tokens) if len(price) > 2 else 0
    cached_price = price[2] if len(price) > 2 else price[0]
    return (
        (input_tokens - cached) * price[0] + cached * cached_price + output_tokens * price[1]
    ) / 1e6


def list_price(model_ref: str, provider: str | None = None) -> tuple[float, ...] | None:
    """A model's list price from genai-prices (pydantic's maintained price list), if installed.

    Args:
        model_ref: The provider's model name (e.g. ``"gpt-4o-mini"``).
        provider: The provider's id (e.g. ``"openai"``; None: the list guesses from the name).

    Returns:
        USD per 1M input, output and (when listed) cached input tokens; None when the package
        is not installed (``pip install "metallm[prices]"``) or the model is not listed.
    """
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None
    try:
        found = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref, provider_id=provider)
    except LookupError:
        if provider is None:
            return None
        return list_price(model_ref)  # a provider the list names otherwise
    except Exception as e:  # a price list that cannot be read is not a reason to stop
        logger.debug("metallm: genai-prices failed for %s: %s", model_ref, e)
        return None
    model_price = found.model_price
    rates: list[object] = [model_price.input_mtok, model_price.output_mtok]
    cached = getattr(model_price, "cache_read_mtok", None)
    if cached is not None:
        rates.append(cached)
    values = []
    for rate in rates:
        try:
            values.append(float(rate))  # type: ignore[arg-type]
        except (TypeError, ValueError):  # a tiered price: not one flat rate per token
            return None if len(values) < 2 else tuple(values)
    return tuple(values)
