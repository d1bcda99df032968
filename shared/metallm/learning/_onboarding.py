"""Onboarding a new model: which prompts to ask it, and where its statistics start.

A model added to a running router knows nothing. Two things make its first outcomes count:

* `quiz_rows` chooses the prompts to ask it: greedily the prompt whose features the new
  model's ridge model is least sure about (``x^T A^-1 x``, updated after each pick, so the picks
  spread over the feature space: a D-optimal design), weighted up where the current models
  disagree most about the quality (where knowing the new one matters);
* `most_similar` names the known model whose predicted quality is closest to the new
  one's outcomes on the same prompts (``warm_start="similar"`` starts it as a copy of that one);
* `combination_start` gives it a starting point from the models already known: its
  quality on the quiz prompts is regressed on theirs (ridge on their predictions and a bias), and
  its coefficients start as that combination of their coefficients, held with the weight of
  ``pseudo_count`` observations; its own outcomes then update it like any other model's.
"""

from __future__ import annotations

import numpy as np

from metallm.learning._bandit import LinearBandit

__all__ = ["combination_start", "most_similar", "prior_start", "quiz_rows", "warm_start"]


def quiz_rows(bandit: LinearBandit, arm: int, embeddings: np.ndarray, n: int) -> list[int]:
    """The ``n`` rows of ``embeddings`` to ask ``arm`` first, best first (see the module).

    Args:
        bandit: The bandit.
        arm: The new model's arm.
        embeddings: The candidate queries (n, d).
        n: How many to pick.
    """
    stats = bandit.ensure(embeddings.shape[1])
    X = bandit.features.transform(embeddings)[:, : stats.dim]
    others = [k for k in range(bandit.n_arms) if k != arm]
    weight = np.ones(len(X))
    if len(others) > 1:
        quality = bandit.predict(embeddings, widths=False)[0][:, others]
        spread = quality.std(axis=1)
        weight = 1.0 + spread / (spread.mean() + 1e-12)
    A_inv = stats.A_inv[arm].copy()
    chosen: list[int] = []
    available = np.ones(len(X), dtype=bool)
    for _ in range(min(n, len(X))):
        value = np.einsum("nd,de,ne->n", X, A_inv, X) * weight
        value[~available] = -np.inf
        i = int(np.argmax(value))
        chosen.append(i)
        available[i] = False
        ax = A_inv @ X[i]
        A_inv -= np.outer(ax, ax) / (1.0 + X[i] @ ax)
    return chosen


def prior_start(
    bandit: LinearBandit, arm: int, quality: float, cost: float, *, weight: float
) -> None:
    """Start ``arm`` at a prior mean quality and cost (e.g. a leaderboard's).

    The prior is worth ``weight`` outcomes, all on the bias feature, so every query starts at
    that mean until the model's own outcomes say otherwise.

    Args:
        bandit: The bandit.
        arm: The new model's arm.
        quality: Its prior mean quality.
        cost: Its prior mean cost (USD).
        weight: How many outcomes the prior is worth.
    """
    stats = bandit.stats
    if stats is None:
        return  # nothing learned yet: nothing to place the prior beside
    bias = stats.dim - 1
    stats.A[arm, bias, bias] += weight
    stats.B[arm, bias] += weight * np.array([quality, cost])
    stats.refresh(arm)
    if bandit.cost_stats is not None:
        bandit.cost_stats.A[arm, bias, bias] += weight
        bandit.cost_stats.B[arm, bias, 0] += weight * cost
        bandit.cost_stats.refresh(arm)
    bandit.prior_counts[arm] += weight


def most_similar(
    bandit: LinearBandit, embeddings: np.ndarray, quality: np.ndarray, *, known: list[int]
) -> int:
    """The known arm whose predicted quality is closest (mean squared) to these outcomes."""
    predicted = bandit.predict(embeddings, widths=False)[0][:, known]
    return known[int(np.argmin(((predicted - quality[:, None]) ** 2).mean(axis=0)))]


def combination_start(
    bandit: LinearBandit,
    arm: int,
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    known: list[int],
    pseudo_count: float = 300.0,
    l2: float = 10.0,
    pessimism: float = 1.0,
    only: int | None = None,
) -> np.ndarray:
    """Start ``arm`` as the combination of the ``known`` arms that best explains its outcomes.

    ``l2`` is the combination's ridge penalty, on the intercept too. (Tried and measured worse
    with ``metallm onboard``: choosing it by leave-one-out error on the quiz, whose spread-out
    prompts made it pick small penalties, and leaving the intercept unpenalised.)

    ``pessimism``: the start's quality is lowered by this many standard errors of the
    combination's prediction (its mean over the quiz prompts). A few dozen outcomes predict the
    new model with an error of several points, and routing picks it exactly where that error
    flatters it; one standard error down keeps it from taking prompts on a guess, while a model
    that is clearly better still wins them (measured with ``metallm onboard``: providers.md).
    ``only``: start from that one known arm's quality model as it is (the "similar" warm
    start: weight 1 on it, no bias, no pessimism); the cost is still fitted to these outcomes.
    Returns the combination's weights for quality (one per known arm, then the bias).
    """
    stats = bandit.ensure(embeddings.shape[1])
    X = bandit.features.transform(embeddings)
    q_dim = stats.dim
    bias = np.zeros(X.shape[1])
    bias[q_dim - 1] = 1.0  # the quality features end with the bias

    def design(theta: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The known arms' predictions on the quiz prompts, and a bias column."""
        return np.hstack([features @ theta.T, np.ones((features.shape[0], 1))])

    def fit(
        theta: np.ndarray, y: np.ndarray, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        Z = design(theta, features)
        w = np.linalg.solve(Z.T @ Z + l2 * np.eye(Z.shape[1]), Z.T @ y)
        return w, w[:-1] @ theta + w[-1] * bias[: theta.shape[1]]

    counts = bandit.counts()[known]
    scale = pseudo_count / max(float(counts.mean()), 1.0)
    penalties = np.diag(stats.penalties)
    data = (stats.A[known] - penalties).mean(axis=0)
    A_new = penalties + scale * data
    if only is not None:
        w_quality = np.array([float(k == only) for k in known] + [0.0])
        theta_quality = stats.theta[only, :, 0].copy()
        pessimism = 0.0
    else:
        w_quality, theta_quality = fit(stats.theta[known, :, 0], quality, X[:, :q_dim])
    if pessimism and len(quality) > 1:
        Z = design(stats.theta[known, :, 0], X[:, :q_dim])
        spread = float((quality - Z @ w_quality).std(ddof=1))
        covariance = np.linalg.inv(Z.T @ Z + l2 * np.eye(Z.shape[1]))
        error = float(np.sqrt(np.einsum("ij,jk,ik->i", Z, covariance, Z)).mean()) * spread
        theta_quality = theta_quality - pessimism * error * bias[:q_dim]
    _, theta_cost = fit(stats.theta[known, :, 1], cost, X[:, :q_dim])
    if bandit.cost_stats is not None:  # the cost model's own statistics (it reads the length)
        cost_stats = bandit.cost_stats
        cost_penalties = np.diag(cost_stats.penalties)
        cost_A = cost_penalties + scale * (cost_stats.A[known] - cost_penalties).mean(axis=0)
        _, cost_theta_full = fit(cost_stats.theta[known, :, 0], cost, X)
        cost_stats.A[arm] = cost_A
        cost_stats.B[arm] = (cost_A @ cost_theta_full)[:, None]
        cost_stats.refresh(arm)
    stats.A[arm] = A_new
    stats.B[arm] = np.stack([A_new @ theta_quality, A_new @ theta_cost], axis=1)
    stats.refresh(arm)
    bias_index = q_dim - 1
    bandit.prior_counts[arm] = float(A_new[bias_index, bias_index] - stats.penalties[bias_index])
    return w_quality


def warm_start(
    bandit: LinearBandit,
    arm: int,
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    known: list[int],
    how: str | None,
    pessimism: float,
) -> None:
    """Start a new model from its first outcomes and the models already learned.

    Args:
        bandit: The bandit, the new model's arm already added.
        arm: The new model's arm.
        embeddings: The quiz's embeddings (n, dim).
        quality: The new model's graded answers (n,).
        cost: Their costs in USD (n,).
        known: The arms already learned (retired ones left out).
        how: ``"combination"`` (`combination_start`), ``"similar"`` (a copy of the
            `most_similar` model) or None (nothing: the outcomes alone teach it).
        pessimism: Standard errors the combination's quality level is lowered by.
    """
    if how is None or not known or not bandit.n_updates:
        return
    only = most_similar(bandit, embeddings, quality, known=known) if how == "similar" else None
    combination_start(
        bandit, arm, embeddings, quality, cost, known=known, pessimism=pessimism, only=only
    )
