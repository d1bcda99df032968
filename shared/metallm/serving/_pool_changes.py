"""Changing a router's pool while it serves: models added, retired, quizzed and onboarded."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from metallm.exceptions import ConfigurationError
from metallm.learning import (
    prior_start,
    quiz_rows,
    warm_start,
)
from metallm.serving import _offline as offline
from metallm.serving._checks import (
    as_batch,
    check_cost,
    check_cost_array,
    check_quality,
    check_quality_array,
    check_vector,
)
from metallm.serving._learner import Learner
from metallm.serving._learning import Learning
from metallm.serving._sync import pool_change_problem

__all__ = ["PoolChanges"]


class PoolChanges:
    """Adds, retires and teaches a router's models; shared changes are written first.

    Args:
        learner: The router's learned state.
        learning: Shares each change (a store's pool list) before it is made here.
        embed: Turns queries into checked embeddings.
    """

    def __init__(
        self, learner: Learner, learning: Learning, embed: Callable[[Any], np.ndarray]
    ) -> None:
        self._learner = learner
        self._learning = learning
        self._embed = embed

    def add(self, name: str, prior: tuple[float, float] | None, prior_weight: float) -> None:
        """Add a model (see ``Router.add_arm``)."""
        pool = self._learner.pool
        if name in pool.index:
            state = "retired" if name in pool.retired else "in the pool"
            raise ConfigurationError(f"{name!r} is already {state}: give the new model a new name")
        problem = pool_change_problem("add", name, pool.names, pool.active)
        if problem is not None:
            raise ConfigurationError(f"cannot add this model: {problem}")
        if prior is not None:
            quality, cost = check_quality(prior[0]), check_cost(prior[1])
            if not (np.isfinite(prior_weight) and prior_weight > 0):
                raise ConfigurationError(f"prior_weight must be positive, got {prior_weight!r}")
        self._learning.write_pool_change("add", name)  # StoreError: nothing changed anywhere
        self._learner.add_arm(name)
        if prior is not None:
            with self._learner.lock:
                prior_start(
                    self._learner.bandit, pool.index[name], quality, cost, weight=prior_weight
                )

    def retire(self, name: str) -> None:
        """Stop routing to a model (see ``Router.retire_arm``)."""
        pool = self._learner.pool
        pool.index_of(name)
        if name in pool.retired:
            return
        if len(pool.active) == 1:
            raise ConfigurationError(
                f"{name!r} is the last model routed to: add another before retiring it"
            )
        self._learning.write_pool_change("retire", name)
        self._learner.retire_arm(name)

    def quiz(self, name: str, texts: Sequence[Any] | np.ndarray, n: int) -> list[int]:
        """The queries to ask a new model first (see ``Router.quiz``)."""
        index = self._learner.pool.index_of(name)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigurationError(f"n must be a positive number of queries, got {n!r}")
        embeddings = self._embed(as_batch(texts))
        with self._learner.lock:
            return quiz_rows(self._learner.bandit, index, embeddings, n)

    def onboard(
        self,
        name: str,
        queries: Sequence[Any] | np.ndarray,
        quality: Sequence[float] | np.ndarray,
        cost: Sequence[float] | np.ndarray,
        how: str | None,
        pessimism: float,
    ) -> None:
        """Teach a new model from its first outcomes (see ``Router.onboard``)."""
        learner = self._learner
        index = learner.pool.index_of(name)
        if how not in ("combination", "similar", None):
            raise ConfigurationError(
                f'warm_start must be "combination", "similar" or None, got {how!r}'
            )
        if not (math.isfinite(pessimism) and pessimism >= 0):
            raise ConfigurationError(f"pessimism must be a finite number >= 0, got {pessimism!r}")
        embeddings = self._embed(as_batch(queries))
        n = embeddings.shape[0]
        Q, C = check_vector(quality, "quality", n), check_vector(cost, "cost", n)
        check_quality_array(Q)
        check_cost_array(C)
        known = [learner.pool.index[a] for a in learner.pool.active if a != name]
        with learner.lock:
            warm_start(
                learner.bandit, index, embeddings, Q, C, known=known, how=how, pessimism=pessimism
            )
        offline.partial_fit(learner, embeddings, [name] * n, Q, C)
