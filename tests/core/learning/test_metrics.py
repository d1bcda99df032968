"""Routing metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from metallm.learning._metrics import (
    aiq,
    cheapest_cost_reaching,
    oracle,
    quality_hull,
    savings_at_best,
    zero_router_aiq,
)


def test_the_hull_drops_dominated_points_and_stops_at_the_best():
    points = [(1, 0.5), (2, 0.55), (3, 0.8), (4, 0.7), (5, 0.8)]
    # (2, 0.55) lies under the chord from (1, .5) to (3, .8); (4, .7) and (5, .8) add nothing
    assert quality_hull(points).tolist() == [[1, 0.5], [3, 0.8]]


def test_aiq_of_two_models_is_the_trapezoid():
    # a line from (0, 0.4) to (1, 0.8): area 0.6 over a range of 1
    assert aiq([(0, 0.4), (1, 0.8)], (0, 1)) == pytest.approx(0.6)
    assert zero_router_aiq([(0, 0.4), (1, 0.8)]) == pytest.approx(0.6)


def test_aiq_counts_zero_below_the_cheapest_point_and_flat_after_the_best():
    # hull starts at cost 0.5: nothing below it; best quality 0.9 at cost 1, flat to 2
    area = aiq([(0.5, 0.5), (1.0, 0.9)], (0.0, 2.0))
    expected = (0.5 * (0.5 + 0.9) / 2 + 1.0 * 0.9) / 2.0
    assert area == pytest.approx(expected)


def test_a_router_above_the_zero_router_has_higher_aiq():
    single = [(1.0, 0.6), (10.0, 0.9)]
    router = [(1.0, 0.6), (3.0, 0.88), (10.0, 0.92)]
    assert aiq(router, (1.0, 10.0)) > zero_router_aiq(single)


def test_cheapest_cost_reaching_interpolates_on_the_hull():
    points = [(1.0, 0.6), (3.0, 0.9)]
    assert cheapest_cost_reaching(points, 0.75) == pytest.approx(2.0)
    assert cheapest_cost_reaching(points, 0.5) == pytest.approx(1.0)
    assert cheapest_cost_reaching(points, 0.95) is None


def test_savings_at_best():
    single = {"small": (1.0, 0.6), "big": (10.0, 0.9)}
    assert savings_at_best([(1.0, 0.6), (4.0, 0.9)], single) == pytest.approx(0.6)
    assert savings_at_best([(1.0, 0.6), (4.0, 0.85)], single) is None


def test_oracle_takes_the_best_model_per_row_and_the_cheapest_among_ties():
    quality = np.array([[1, 1], [0, 1], [0, 0]], dtype=float)
    cost = np.array([[1, 5], [1, 5], [1, 5]], dtype=float)
    assert oracle(quality, cost) == pytest.approx((7 / 3, 2 / 3))


def test_prices_are_checked_and_costs_come_from_reported_usage():
    from metallm import ConfigurationError
    from metallm.serving._pricing import check_prices, usage_cost

    prices = check_prices({"mini": (0.15, 0.6)}, ["mini", "pro"])
    assert usage_cost(prices, "mini", 1_000, 500) == pytest.approx((1_000 * 0.15 + 500 * 0.6) / 1e6)
    assert usage_cost(prices, "pro", 1_000, 500) is None
    with pytest.raises(ConfigurationError, match="not in the pool: \\['gpt-9'\\]"):
        check_prices({"gpt-9": (1, 1)}, ["mini"])
    with pytest.raises(ConfigurationError, match="finite and >= 0"):
        check_prices({"mini": (-1, 1)}, ["mini"])
    with pytest.raises(ConfigurationError, match="usd_per_1M_input"):
        check_prices({"mini": (1,)}, ["mini"])
