"""What a router has learned and how it scores: its models, its bandit, its reward, its shadows.

A `Learner` is the part every other part of a router reads: the decision path scores
with it, the feedback path and the store's events teach it, snapshots and state files are
written from it and adopted into it. A shadow router is another router's learner, taught
every outcome this one learns.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from metallm.learning import (
    CapacityGrowth,
    DriftDetector,
    FeatureMap,
    LinearBandit,
    LinUCB,
    NeighbourQuality,
    OneScore,
    Policy,
    ProjectedFeatures,
    Scores,
    default_blend,
    reading_prompt_length,
    reads_prompt_length,
)
from metallm.serving._arms import ArmPool
from metallm.serving._checks import check_part
from metallm.serving._reward_setting import RewardSetting

__all__ = ["DEFAULT_PROJECTION_DIMS", "Learner"]

DEFAULT_PROJECTION_DIMS = 128
"""The default feature map's size: a 128-d projection of the embedding (and a bias)."""

logger = logging.getLogger("metallm.serving._router")


DEFAULT_POLICY = LinUCB(explore=0.03)
"""A router's policy unless given: UCB that sends 3% of queries to a uniformly random capable
model, so every model keeps a propensity of at least 0.03 / k and the default deployment's log
supports off-policy evaluation of other routers (``metallm evaluate --log``); ``LinUCB()`` is
plain, deterministic UCB."""


class Learner:
    """A router's learned state: the pool, the bandit over it, the reward and the shadows.

    Not thread-safe on its own: callers hold `lock` around reads and updates.

    Args:
        pool: The models, by name.
        bandit: The per-model ridge models and the policy, arms in ``pool`` order.
        reward: The reward setting the bandit's scores maximise.
        embedding_model: The embedding model's name, written into saved state.
    """

    def __init__(
        self,
        pool: ArmPool,
        bandit: LinearBandit,
        reward: RewardSetting,
        embedding_model: str | None = None,
    ) -> None:
        self.pool = pool
        self.bandit = bandit
        self.reward = reward
        self.embedding_model = embedding_model
        self.lock = threading.RLock()
        """Held around every read and update of the statistics."""
        self.shadows: dict[str, Learner] = {}
        """Other routers' learners that learn every outcome this one learns."""

    @classmethod
    def build(
        cls,
        arms: Sequence[str],
        reward: RewardSetting,
        *,
        policy: Policy | None,
        features: FeatureMap | None,
        reads_length: bool,
        seed: int | None,
        neighbours: NeighbourQuality | None,
        embedding_model: str | None,
        drift: DriftDetector | None | str = None,
        growth: CapacityGrowth | None | str = None,
        blend: NeighbourQuality | None | str = None,
    ) -> Learner:
        """A learner that knows nothing yet, with a router's defaults.

        Args:
            arms: The models.
            reward: The reward setting.
            policy: The policy (None: ``DEFAULT_POLICY``, UCB with a small exploration floor).
            features: The feature map (None: a 128-d projection, the policy's penalty).
            reads_length: Whether its models read the prompt's length too.
            seed: Seed of the policy's randomness.
            neighbours: The neighbours' second opinion on quality (None: off).
            embedding_model: The embedding model's name, written into saved state.
            drift: What notices a model changed and forgets its past (``"default"``:
                ``DriftDetector()``; None: nothing).
            growth: What grows a cold router's feature map online (``"default"``:
                ``CapacityGrowth()``; None: the map stays).
            blend: The kNN blend a tuned fit weighs and keeps where cross-validation gives it
                a weight (``"default"``: `default_blend()`; None: not offered).

        Raises:
            ConfigurationError: A model name is bad or repeated.
        """
        drift = DriftDetector() if drift == "default" else drift
        check_part(drift, DriftDetector, "drift", "metallm.learning.DriftDetector(threshold=12.0)")
        growth = CapacityGrowth() if growth == "default" else growth
        check_part(growth, CapacityGrowth, "growth", "metallm.learning.CapacityGrowth()")
        blend = default_blend() if blend == "default" else blend
        check_part(blend, NeighbourQuality, "blend", "metallm.NeighbourQuality(dims=64)")
        assert not isinstance(drift, str) and not isinstance(growth, str)  # checked above
        assert not isinstance(blend, str)
        pool = ArmPool(arms)
        policy = policy if policy is not None else DEFAULT_POLICY
        if features is None:
            features = ProjectedFeatures(DEFAULT_PROJECTION_DIMS, l2=policy.l2)
        if reads_length:
            features = reading_prompt_length(features)
        bandit = LinearBandit(
            len(pool.names),
            policy=policy,
            features=features,
            seed=seed,
            neighbours=neighbours,
            drift=drift,
            growth=growth,
            blend=blend,
        )
        return cls(pool, bandit, reward, embedding_model)

    # -- what it holds ------------------------------------------------------------------
    @property
    def cost_scale(self) -> float:
        """The cost normaliser in USD: fixed, or the priciest model's mean observed cost."""
        fixed = self.reward.cost_scale
        return fixed if fixed is not None else self.bandit.observed_cost_scale()

    @property
    def latency_scale(self) -> float:
        """The latency normaliser in seconds: fixed, or the slowest model's mean observed latency."""
        fixed = self.reward.latency_scale
        return fixed if fixed is not None else self.bandit.observed_latency_scale()

    @property
    def reads_prompt_length(self) -> bool:
        """Whether its models read the prompt's length (the last element of each vector)."""
        return reads_prompt_length(self.bandit.features)

    @property
    def scale_known(self) -> bool:
        """Whether the cost normaliser is fixed or learned (a budget moves ``p`` with it then)."""
        return self.reward.cost_scale is not None or self.bandit.n_updates > 0

    def counts(self) -> dict[str, int]:
        """Real outcomes learned per model (provider failures left out)."""
        learned = self.bandit.counts()
        failures = self.pool.failures
        return {a: int(c) - failures[i] for i, (a, c) in enumerate(zip(self.pool.names, learned))}

    # -- scoring ------------------------------------------------------------------------
    def score_one(self, embedding: np.ndarray, excluded: set[int], forced: int | None) -> OneScore:
        """The bandit's choice and scores for one embedding under this reward."""
        reward = self.reward
        return self.bandit.score_one(
            embedding,
            cost_weight=reward.cost_weight,
            scale=self.cost_scale,
            excluded=excluded,
            forced=forced,
            latency_weight=reward.latency_weight,
            latency_scale=self.latency_scale,
        )

    def score_many(self, embeddings: np.ndarray, excluded: set[int], forced: int | None) -> Scores:
        """The bandit's choices and scores for a batch of embeddings under this reward."""
        reward = self.reward
        return self.bandit.score_many(
            embeddings,
            cost_weight=reward.cost_weight,
            scale=self.cost_scale,
            excluded=excluded,
            forced=forced,
            latency_weight=reward.latency_weight,
            latency_scale=self.latency_scale,
        )

    def propensity_one(self, scores: list[float], chosen: int, excluded: set[int]) -> float:
        """The probability that the policy chooses ``chosen`` given these scores."""
        if excluded:
            scores = [-math.inf if i in excluded else v for i, v in enumerate(scores)]
        return self.bandit.choosing_policy().probability_one(scores, chosen)

    def propensities(
        self, scores: np.ndarray, chosen: np.ndarray, excluded: set[int]
    ) -> np.ndarray:
        """`propensity_one` for each row of a batch."""
        masked = scores
        if excluded:
            masked = scores.copy()
            masked[:, sorted(excluded)] = -np.inf
        probabilities: np.ndarray = self.bandit.choosing_policy().probabilities(masked, chosen)
        return probabilities

    # -- learning -----------------------------------------------------------------------
    def learn(
        self,
        arm: int,
        embedding: np.ndarray,
        quality: float,
        cost: float,
        latency: float | None,
        failure: bool = False,
    ) -> None:
        """Learn one outcome for an embedding; the shadows learn it too (caller holds the lock)."""
        self.bandit.learn(
            arm, embedding, quality=quality, cost=cost, latency=latency, watch=not failure
        )
        if failure:
            self.pool.failures[arm] += 1
        if self.shadows:
            name = self.pool.names[arm]
            for shadow in self.shadows.values():
                with shadow.lock:
                    shadow.bandit.learn(
                        shadow.pool.index[name],
                        embedding,
                        quality=quality,
                        cost=cost,
                        latency=latency,
                        watch=not failure,
                    )

    def correct(
        self, arm: int, vector: np.ndarray, old: float, new: float, *, transformed: bool = False
    ) -> None:
        """Replace a grade already learned, here and in the shadows (caller holds the lock).

        Args:
            arm: The model that answered.
            vector: The query's embedding, or its features when ``transformed``.
            old: The quality learned before.
            new: The quality that replaces it.
            transformed: Whether ``vector`` is already the features.
        """
        self.bandit.correct(arm, vector, old, new, transformed=transformed)
        if transformed:
            return  # shadows learn on embeddings: a router that keeps features has none
        name = self.pool.names[arm]
        for shadow in self.shadows.values():
            with shadow.lock:
                shadow.bandit.correct(shadow.pool.index[name], vector, old, new)

    def update(
        self,
        arm: int,
        features: np.ndarray,
        quality: float,
        cost: float,
        latency: float | None,
        failure: bool = False,
    ) -> None:
        """Learn one outcome at features already computed (caller holds the lock)."""
        self.bandit.update(arm, features, quality, cost, latency, watch=not failure)
        if failure:
            self.pool.failures[arm] += 1

    def reset(self) -> None:
        """Forget everything learned (a store's snapshot or log follows)."""
        self.bandit.reset()
        self.pool.reset_failures()

    # -- the pool -----------------------------------------------------------------------
    def add_arm(self, name: str) -> None:
        """Add a model that knows nothing yet, here and in the shadows."""
        with self.lock:
            if not self.pool.add(name):
                return
            self.bandit.add_arm()
            for shadow in self.shadows.values():
                shadow.add_arm(name)
        logger.info("metallm: %s joined the pool %s", name, list(self.pool.active))

    def retire_arm(self, name: str) -> None:
        """Stop routing to a model, here and in the shadows (its history is kept)."""
        with self.lock:
            self.pool.retire(name)
            for shadow in self.shadows.values():
                if name in shadow.pool.index:
                    shadow.retire_arm(name)
        logger.info("metallm: %s retired; the pool is now %s", name, list(self.pool.active))

    def set_shadows(self, shadows: Mapping[str, Learner]) -> None:
        """Replace the shadows (already checked against this learner)."""
        with self.lock:
            self.shadows = dict(shadows)
