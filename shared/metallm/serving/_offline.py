"""Learning a router from logged data: full-information rows, bandit logs, a budget.

The router's ``fit``, ``partial_fit`` and ``calibrate`` embed the queries and call these
functions, which check the caller's arrays and hand them to the router's learner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from metallm.exceptions import ConfigurationError, InvalidInputError
from metallm.learning import (
    AUTO_TUNE_ROWS,
    DEFAULT_CANDIDATES,
    FeatureMap,
    PromptLengthFeatures,
    calibrate_cost_weight,
    reads_prompt_length,
)
from metallm.serving._checks import (
    check_cost_array,
    check_latency_array,
    check_matrix,
    check_quality_array,
    check_vector,
)

if TYPE_CHECKING:
    from metallm.serving._learner import Learner

__all__ = ["calibrate", "fit", "partial_fit"]

logger = logging.getLogger(__name__)


def fit(
    learner: Learner,
    embeddings: np.ndarray,
    quality: np.ndarray | Sequence[Sequence[float]],
    cost: np.ndarray | Sequence[Sequence[float]],
    *,
    tune: bool | str | Sequence[FeatureMap] = "auto",
    seed: int = 0,
    latency: np.ndarray | Sequence[Sequence[float]] | None = None,
    offer_blend: bool = True,
) -> None:
    """Train from scratch on rows where every model's outcome is known (see ``Router.fit``).

    ``offer_blend``: let a tuned fit weigh the learner's kNN blend.

    Raises:
        InvalidInputError: The arrays do not fit the embeddings and the models.
        ConfigurationError: ``tune`` is not one of its documented values.
    """
    n_arms = len(learner.pool.names)
    Q = check_matrix(quality, "quality", embeddings.shape[0], n_arms)
    C = check_matrix(cost, "cost", embeddings.shape[0], n_arms)
    check_quality_array(Q)
    check_cost_array(C)
    L = None
    if latency is not None:
        L = check_matrix(latency, "latency", embeddings.shape[0], n_arms)
        check_latency_array(L)
    candidates: tuple[FeatureMap, ...] = DEFAULT_CANDIDATES
    grow = False
    if isinstance(tune, str):
        if tune != "auto":
            raise ConfigurationError(
                f'tune must be "auto", True, False or a list of feature maps, got {tune!r}'
            )
        tune = bool(embeddings.shape[0] >= AUTO_TUNE_ROWS)
        grow = not tune  # too few rows to choose a map: keep them and grow from them online
    elif not isinstance(tune, bool):
        candidates = tuple(tune)
        if not candidates:
            raise ConfigurationError("tune was given no candidate feature maps")
        tune = True
    if learner.reads_prompt_length:  # every candidate reads the length too
        candidates = tuple(
            c if reads_prompt_length(c) else PromptLengthFeatures(c) for c in candidates
        )
    with learner.lock:
        learner.bandit.fit(
            embeddings, Q, C, tune=tune, candidates=candidates, seed=seed, latency=L,
            grow=grow, offer_blend=offer_blend,
        )  # fmt: skip
        tuning, blend = learner.bandit.tuning_, learner.bandit.neighbour_tuning_
    if tune and tuning is not None:
        chosen = tuning.chosen_score
        logger.info(
            "metallm: fit chose %s by %d-fold cross-validation on %d rows (CV AIQ %.4f, best of "
            "%d candidates%s; router.tuning_.report() lists them)",
            chosen.label,
            tuning.folds,
            embeddings.shape[0],
            chosen.aiq,
            len(tuning.scores),
            "" if blend is None else "; " + blend.summary(),
        )


def partial_fit(
    learner: Learner,
    embeddings: np.ndarray,
    arms: Sequence[str],
    quality: Sequence[float] | np.ndarray,
    cost: Sequence[float] | np.ndarray,
    latency: Sequence[float] | np.ndarray | None = None,
) -> None:
    """Update from logged bandit rows: one (model, quality, cost) outcome per query.

    Raises:
        InvalidInputError: The arrays do not fit the embeddings.
        UnknownArmError: A model is not in the pool.
    """
    n = embeddings.shape[0]
    arm_names = list(arms)
    if len(arm_names) != n:
        raise InvalidInputError(f"{n} queries but {len(arm_names)} arms")
    idx = np.array([learner.pool.index_of(a) for a in arm_names])
    Q = check_vector(quality, "quality", n)
    C = check_vector(cost, "cost", n)
    check_quality_array(Q)
    check_cost_array(C)
    L = None
    if latency is not None:
        L = check_vector(latency, "latency", n)
        check_latency_array(L)
    with learner.lock:
        learner.bandit.partial_fit(embeddings, idx, Q, C, L)


def calibrate(
    predicted_quality: np.ndarray,
    predicted_cost: np.ndarray,
    cost_scale: float,
    budget: float,
    quality: np.ndarray | Sequence[Sequence[float]],
    cost: np.ndarray | Sequence[Sequence[float]],
) -> float:
    """The ``p`` with the best validation quality within ``budget`` $/query (see ``Router.calibrate``).

    Raises:
        InvalidInputError: ``budget`` is negative or the arrays do not fit the predictions.
        InfeasibleBudgetError: No ``p`` gets under the budget.
    """
    if not (np.isfinite(budget) and budget >= 0):
        raise InvalidInputError(f"budget must be a finite number >= 0 USD, got {budget!r}")
    n, k = predicted_quality.shape
    Q = check_matrix(quality, "quality", n, k)
    C = check_matrix(cost, "cost", n, k)
    return calibrate_cost_weight(
        predicted_quality, predicted_cost / cost_scale, Q, C, budget
    ).cost_weight
