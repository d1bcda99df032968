"""The confidence sequence behind the report's verdicts: valid at every look, and decisive."""

from __future__ import annotations

import numpy as np
import pytest

from metallm.evaluation import confidence_sequence, sequential_verdict
from metallm.evaluation._sequential import (
    MIN_ROWS,
    logging_distribution,
    prequential_terms,
)


def test_the_sequence_holds_the_true_mean_at_every_look_in_at_least_the_stated_share():
    rng = np.random.default_rng(0)
    misses = 0
    for _ in range(300):
        values = rng.binomial(1, 0.3, 2_000) - rng.binomial(1, 0.3, 2_000)  # true mean 0
        _, lows, highs = confidence_sequence(values, alpha=0.05)
        looked = slice(MIN_ROWS - 1, None)  # a verdict is read from MIN_ROWS rows on
        misses += bool(((lows[looked] > 0) | (highs[looked] < 0)).any())
    assert misses / 300 <= 0.05  # every look of every stream, not one fixed look


def test_a_fixed_95_interval_read_at_every_look_would_have_been_wrong_far_more_often():
    rng = np.random.default_rng(0)
    misses = 0
    for _ in range(300):
        values = rng.binomial(1, 0.3, 2_000) - rng.binomial(1, 0.3, 2_000)
        t = np.arange(1, 2_001)
        means = np.cumsum(values) / t
        half = 1.96 * np.sqrt(np.maximum(np.cumsum(values**2) / t - means**2, 1e-12) / t)
        looked = slice(MIN_ROWS - 1, None)
        misses += bool((np.abs(means[looked]) > half[looked]).any())
    assert misses / 300 > 0.15  # why the report uses a confidence sequence


def test_a_clear_gain_is_declared_better_and_a_clear_loss_worse():
    rng = np.random.default_rng(1)
    better = sequential_verdict(rng.normal(0.3, 1.0, 1_500))
    worse = sequential_verdict(rng.normal(-0.3, 1.0, 1_500))
    assert (better.verdict, worse.verdict) == ("better", "worse")
    assert better.low > 0 and worse.high < 0 and better.rows_needed is None
    assert "better at 95% (anytime-valid)" in str(better)


def test_before_enough_rows_the_verdict_is_not_yet_and_says_how_many_more():
    def stream(n):  # mean exactly 0.15 and variance 1 at every even length
        return 0.15 + np.resize([1.0, -1.0], n)

    early = sequential_verdict(stream(150))
    assert early.verdict == "not yet" and early.rows == 150
    assert early.rows_needed is not None and early.rows_needed > 50
    enough = 150 + early.rows_needed + 1
    assert sequential_verdict(stream(enough + enough % 2)).verdict == "better"
    short = 150 + int(0.8 * early.rows_needed)
    assert sequential_verdict(stream(short + short % 2)).verdict == "not yet"


def test_an_expected_variance_widens_the_bounds_before_rare_large_values_are_seen():
    values = np.zeros(1_000) + 0.05  # all small so far
    narrow = sequential_verdict(values)
    wide = sequential_verdict(values, variances=np.full(1_000, 50.0))
    assert narrow.verdict == "better" and wide.verdict == "not yet"
    assert wide.high - wide.low > 10 * (narrow.high - narrow.low)


def test_nothing_to_compare_and_bad_settings():
    empty = sequential_verdict(np.array([]))
    assert empty.verdict == "not yet" and empty.rows == 0
    with pytest.raises(ValueError, match="alpha"):
        confidence_sequence(np.ones(3), alpha=1.5)
    with pytest.raises(ValueError, match="planned"):
        confidence_sequence(np.ones(3), planned=0)


def test_the_logging_distribution_is_exact_for_a_uniform_floor_where_the_pick_was_greedy():
    mu = logging_distribution(np.array([2, 0]), np.array([0.94, 0.02]), 3)
    assert mu[0].tolist() == pytest.approx([0.03, 0.03, 0.94])
    assert mu[1].tolist() == pytest.approx([0.02, 0.02, 0.02])  # not the pick: the floor


def test_prequential_terms_estimate_a_candidates_value_without_bias():
    rng = np.random.default_rng(3)
    n, k = 4_000, 2
    X = rng.normal(size=(n, 4))
    reward = np.stack([(X[:, 0] > 0), (X[:, 0] <= 0)], axis=1).astype(float)
    chosen = rng.integers(0, k, n)
    candidate = np.eye(k)[(X[:, 0] <= 0).astype(int)]  # always right: true value 1
    terms, variances = prequential_terms(
        X, chosen, np.full(n, 0.5), reward[np.arange(n), chosen], candidate
    )
    assert terms.mean() == pytest.approx(1.0, abs=0.05)
    assert (variances > 0).all()
