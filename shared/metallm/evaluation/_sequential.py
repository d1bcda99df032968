"""Anytime-valid comparisons: a confidence sequence a team may look at every day.

A confidence interval computed after every new graded decision, and acted on the first time it
excludes zero, is wrong far more often than its stated level. A **confidence sequence** holds
at every time at once: with probability at least ``1 - alpha`` the true mean lies inside every
one of its intervals, however often it is looked at and whenever the team stops.

This uses the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Howard and Ramdas
("Time-uniform central limit theory and asymptotic confidence sequences", Annals of Statistics
2024), the normal-mixture boundary of Robbins with the variance estimated:

    mean_t +- sqrt( 2 (t s_t^2 rho^2 + 1) / (t^2 rho^2) * log( sqrt(t s_t^2 rho^2 + 1) / alpha ) )

where ``rho`` makes it tightest near a planned number of rows (it stays valid at every other).
The values compared are per-decision differences whose mean is the quantity of interest; for a
shadow router they are `prequential_terms`: doubly robust terms whose direct model is fitted on
earlier rows only, so each row's term has the shadow's true gain as its mean given the past.

>>> rng = np.random.default_rng(0)
>>> verdict = sequential_verdict(rng.normal(0.2, 1.0, 2_000))
>>> verdict.verdict, verdict.low > 0
('better', True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from metallm.learning import LinearBandit, LinUCB, ProjectedFeatures

__all__ = [
    "SequentialVerdict",
    "confidence_sequence",
    "logging_distribution",
    "prequential_terms",
    "sequential_verdict",
]

PLANNED_ROWS = 1_000
"""Where the boundary is tightest by default (it is valid at every number of rows)."""

MIN_ROWS = 200
"""Graded decisions before any verdict: the boundary is asymptotic, so it is not read earlier."""

PRIOR_VARIANCE = 1.0
"""The variance the estimate starts from, as if one value had been seen (rewards are O(1))."""

_REFIT_EVERY = 50
"""Rows between two updates of the direct model in `prequential_terms`."""


@dataclass(frozen=True)
class SequentialVerdict:
    """Whether a candidate is better than the live router, at a confidence that holds always.

    Attributes:
        verdict: ``"better"``, ``"worse"`` or ``"not yet"``.
        estimate: The mean difference so far (candidate minus live).
        low: The confidence sequence's lower bound now.
        high: Its upper bound now.
        rows: Graded decisions compared.
        confidence: ``1 - alpha``.
        rows_needed: While "not yet": about how many more graded decisions the boundary needs
            to exclude zero if the difference stays what it is now (None: decided, or no
            difference seen).
    """

    verdict: str
    estimate: float
    low: float
    high: float
    rows: int
    confidence: float
    rows_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data."""
        return asdict(self)

    def __str__(self) -> str:
        text = (
            f"{self.verdict} at {self.confidence:.0%} (anytime-valid): {self.estimate:+.4f} "
            f"[{self.low:+.4f}, {self.high:+.4f}] over {self.rows} graded decisions"
        )
        if self.rows_needed is not None:
            text += f"; about {self.rows_needed} more likely needed"
        return text


def _rho(alpha: float, planned: int) -> float:
    """The mixture's width parameter that makes the boundary tightest near ``planned`` rows."""
    log_term = -2.0 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1.0)) / planned)


def _radius(t: np.ndarray, variance: np.ndarray, alpha: float, rho: float) -> np.ndarray:
    scaled = t * variance * rho**2 + 1.0
    radius: np.ndarray = np.sqrt(2.0 * scaled / (t**2 * rho**2) * np.log(np.sqrt(scaled) / alpha))
    return radius


def confidence_sequence(
    values: np.ndarray,
    *,
    alpha: float = 0.05,
    planned: int = PLANNED_ROWS,
    variances: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The running mean of ``values`` and its confidence sequence after each value.

    Args:
        values: Per-decision values in the order they were graded.
        alpha: The error allowed over all looks together.
        planned: The number of rows where the bounds are tightest.
        variances: Per value, its expected variance given the past, when known (e.g. from the
            logging policy's propensities); the bounds use the larger of their running mean
            and the observed variance, so rare large values not yet seen still widen them.

    Returns:
        (means, lows, highs), each (n,).

    Raises:
        ValueError: ``alpha`` outside (0, 1) or ``planned`` below 1.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if planned < 1:
        raise ValueError(f"planned must be at least 1, got {planned}")
    x = np.asarray(values, dtype=np.float64)
    t = np.arange(1, len(x) + 1, dtype=np.float64)
    means = np.cumsum(x) / t
    # the variance with one prior unit of PRIOR_VARIANCE: a few equal early values cannot make
    # the bounds collapse before the estimate means anything
    squares = np.maximum(np.cumsum(x**2) - t * means**2, 0.0)
    variance = (squares + PRIOR_VARIANCE) / t
    if variances is not None:
        variance = np.maximum(variance, np.cumsum(np.asarray(variances, dtype=np.float64)) / t)
    radius = _radius(t, variance, alpha, _rho(alpha, planned))
    return means, means - radius, means + radius


def sequential_verdict(
    values: np.ndarray,
    *,
    alpha: float = 0.05,
    planned: int = PLANNED_ROWS,
    min_rows: int = MIN_ROWS,
    variances: np.ndarray | None = None,
) -> SequentialVerdict:
    """The verdict "better", "worse" or "not yet" from the confidence sequence of the mean.

    Args:
        values: Per-decision differences (candidate minus live), in grading order.
        alpha: The error allowed over every look together.
        planned: The number of rows where the bounds are tightest.
        min_rows: Rows before any verdict but "not yet".
        variances: Per value, its expected variance given the past (see `confidence_sequence`).

    Returns:
        The verdict now, with the bounds and, while undecided, the rows likely still needed.
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return SequentialVerdict("not yet", 0.0, -math.inf, math.inf, 0, 1.0 - alpha, None)
    means, lows, highs = confidence_sequence(x, alpha=alpha, planned=planned, variances=variances)
    mean, low, high = float(means[-1]), float(lows[-1]), float(highs[-1])
    verdict = "not yet"
    if len(x) >= min_rows:
        verdict = "better" if low > 0 else "worse" if high < 0 else "not yet"
    needed = None
    if verdict == "not yet" and mean != 0.0:
        variance = float((x.var() * len(x) + PRIOR_VARIANCE) / len(x))
        if variances is not None:
            variance = max(variance, float(np.mean(variances)))
        rho = _rho(alpha, planned)
        t = len(x)
        while t < 10**9:
            t *= 2
            if _radius(np.array([float(t)]), np.array([variance]), alpha, rho)[0] < abs(mean):
                break
        # the smallest t (to within a few percent) where the radius falls below |mean|
        lo, hi = t // 2, t
        while hi - lo > max(1, lo // 50):
            mid = (lo + hi) // 2
            if _radius(np.array([float(mid)]), np.array([variance]), alpha, rho)[0] < abs(mean):
                hi = mid
            else:
                lo = mid
        needed = max(hi, min_rows) - len(x) if hi < 10**9 else None
        needed = None if needed is not None and needed <= 0 else needed
    return SequentialVerdict(verdict, mean, low, high, len(x), 1.0 - alpha, needed)


def logging_distribution(chosen: np.ndarray, propensity: np.ndarray, k: int) -> np.ndarray:
    """Each model's probability under the logging policy per row, as far as the log tells it.

    The chosen model's is logged. The others are an even share of the rest when the chosen
    one was the likely pick (propensity at least 0.5: exact for the default policy, whose
    exploration is uniform), and otherwise the log's smallest propensity (a floor the default
    policy keeps for every model): never more than the truth there, so variances built on it
    are not understated.

    Args:
        chosen: The chosen model per row.
        propensity: Its logged probability.
        k: The number of models.

    Returns:
        (n, k) probabilities.

    >>> logging_distribution(np.array([0, 1]), np.array([0.91, 0.03]), 4).round(2).tolist()
    [[0.91, 0.03, 0.03, 0.03], [0.03, 0.03, 0.03, 0.03]]
    """
    n = len(chosen)
    floor = float(propensity.min())
    spread = np.where(propensity >= 0.5, (1.0 - propensity) / max(k - 1, 1), floor)
    mu = np.repeat(np.maximum(spread, floor)[:, None], k, axis=1)
    mu[np.arange(n), chosen] = propensity
    return mu


def prequential_terms(
    vectors: np.ndarray,
    chosen: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
    candidate: np.ndarray,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, a doubly robust term of the candidate's reward whose direct model saw only the past.

    Row ``i``'s term is ``sum_a candidate[i, a] r_hat(x_i, a) + w_i (r_i - r_hat(x_i, a_i))``
    with ``w_i = candidate[i, a_i] / propensity_i`` and ``r_hat`` ridge models fitted on rows
    before ``i``'s block (refitted every 50 rows). Given the past, its mean is the candidate's
    expected reward on that row's query, so the differences to the live reward form a
    martingale the confidence sequence is valid for. Rows must be in logging order.

    Each term's expected variance given the past is ``sum_a candidate[i, a]^2 / mu_i(a) * s^2``:
    ``s^2`` the mean squared residual of earlier rows and ``mu_i`` the logging policy's
    distribution. Only the chosen model's probability is logged; the others are taken as an
    even share of the rest when the chosen one was the likely pick (exact for the default
    policy, whose exploration is uniform), and as the log's smallest propensity otherwise.
    This counts the rare, heavily weighted corrections before they happen, where the observed
    variance would not.

    Args:
        vectors: The logged vectors (n, d).
        chosen: The logged model index per row.
        propensity: The logging policy's probability of that model.
        reward: The logged reward per row.
        candidate: The candidate's probability of each model per row (n, k).
        seed: The projection's seed.

    Returns:
        (terms, expected variances), each (n,).
    """
    n, k = candidate.shape
    features = ProjectedFeatures(32, l2=1.0).fit(vectors, seed=seed)  # outcome-free: no leak
    bandit = LinearBandit(k, policy=LinUCB(alpha=0.0), features=features)
    second_moment = (candidate**2 / logging_distribution(chosen, propensity, k)).sum(axis=1)
    terms, variances = np.empty(n), np.empty(n)
    squared, seen = PRIOR_VARIANCE, 1.0
    for start in range(0, n, _REFIT_EVERY):
        block = slice(start, min(start + _REFIT_EVERY, n))
        size = block.stop - block.start
        if start == 0:
            r_hat = np.zeros((size, k))
        else:
            r_hat, _, _ = bandit.predict(vectors[block], widths=False)
        local = np.arange(size)
        b_chosen = chosen[block]
        weight = candidate[block][local, b_chosen] / propensity[block]
        residual = reward[block] - r_hat[local, b_chosen]
        terms[block] = (candidate[block] * r_hat).sum(axis=1) + weight * residual
        variances[block] = second_moment[block] * squared / seen
        squared += float((residual**2).sum())
        seen += size
        bandit.partial_fit(vectors[block], b_chosen, reward[block], np.zeros(size))
    return terms, variances


_GRID = 1_001
"""Candidate means scanned by `betting_lower_bound` (a step of 1/1000 of the range)."""


def betting_lower_bound(
    values: np.ndarray, *, alpha: float = 0.05, top: float = 1.0, fraction: float = 0.5
) -> float:
    """An anytime-valid lower bound for the mean of nonnegative values, by betting.

    For each candidate mean ``m`` in [0, top], a gambler bets against "the mean is ``m``" with
    wealth ``K_t(m) = prod (1 + lambda_i (x_i - m))``, ``lambda_i`` chosen from the values
    before ``i`` only (the predictable plug-in of Waudby-Smith and Ramdas, "Estimating means
    of bounded random variables by betting", JRSS-B 2023) and capped at ``fraction / m`` so
    the wealth stays positive however large a value comes. If the mean were ``m`` the wealth
    would be a nonnegative martingale, so by Ville's inequality it reaches ``1 / alpha`` with
    probability at most ``alpha`` over all time: the bound is the smallest ``m`` whose wealth
    never did. Only nonnegativity is assumed (no upper bound on the values), which is what an
    importance-weighted outcome ``x = w * q`` offers (Waudby-Smith, Wu, Ramdas, Karampatziakis
    and Mineiro, "Anytime-valid off-policy inference for contextual bandits", 2022).

    Args:
        values: Nonnegative values in the order they came.
        alpha: The error allowed over every look together.
        top: The largest mean considered (the bound is at most this).
        fraction: The most of its wealth the gambler stakes, as ``fraction / m``.

    Returns:
        The lower bound (0 when nothing can be ruled out).

    Raises:
        ValueError: A negative value.

    >>> rng = np.random.default_rng(0)
    >>> 0.4 < betting_lower_bound(rng.binomial(1, 0.5, 2_000).astype(float)) < 0.5
    True
    """
    x = np.asarray(values, dtype=np.float64)
    if (x < 0).any():
        raise ValueError("betting_lower_bound needs nonnegative values")
    n = len(x)
    if n == 0:
        return 0.0
    t = np.arange(1, n + 1, dtype=np.float64)
    # predictable estimates: what was known before each value
    mean_before = np.concatenate([[0.5 * top], (0.5 * top + np.cumsum(x)[:-1]) / t[1:]])
    spread = (x - mean_before) ** 2
    variance_before = np.concatenate(
        [[0.25 * top**2], (0.25 * top**2 + np.cumsum(spread)[:-1]) / t[1:]]
    )
    plug_in = np.sqrt(2.0 * math.log(1.0 / alpha) / (variance_before * t * np.log(t + 1.0)))
    grid = np.linspace(0.0, top, _GRID)[1:]  # m = 0 is never rejected
    lam = np.minimum(plug_in[None, :], fraction / grid[:, None])
    log_wealth = np.cumsum(np.log1p(lam * (x[None, :] - grid[:, None])), axis=1)
    rejected = log_wealth.max(axis=1) >= math.log(1.0 / alpha)
    kept = grid[~rejected]
    return float(kept.min()) if len(kept) else top
