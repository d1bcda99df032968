"""The linear contextual bandit: per-arm ridge models of quality, cost and latency, and a policy.

`LinearBandit` owns the feature map, the ridge statistics and the policy. It scores
one query or many, learns from one outcome or a batch, fits from logged data and predicts.
It knows arms only by index, and nothing of ids, locks, clocks, stores or text: the
`Router` adds those around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from metallm.exceptions import ConfigurationError, DimensionMismatchError
from metallm.learning._capacity import choose_capacity
from metallm.learning._drift import DriftDetector
from metallm.learning._features import (
    FeatureMap,
    feature_map_from_state,
    quality_dimension,
    reads_prompt_length,
)
from metallm.learning._growth import CapacityGrowth
from metallm.learning._neighbours import NeighbourQuality
from metallm.learning._policies import Policy, round_policy
from metallm.learning._reward import cost_scale
from metallm.learning._ridge import RidgeStatistics
from metallm.learning._statistics_state import restore_statistics, statistics_arrays
from metallm.learning._tuning import DEFAULT_CANDIDATES, NeighbourChoice, Tuning

__all__ = ["LinearBandit", "OneScore", "Scores"]

OneScore = tuple[
    int, list[float], list[float], np.ndarray, list[float], list[float], list[float] | None
]
"""For one query: the chosen arm's index, the score and the bonus per arm, the features, and the
predicted quality, cost (USD) and latency (seconds; None before any was learned) per arm."""
Scores = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None
]
"""For many queries: the chosen arm per row, scores (n, k), bonus (n, k), features (n, m), and
predicted quality, cost and latency (n, k; latency None before any was learned)."""


class LinearBandit:
    """Ridge models of quality and cost per arm over a feature map, chosen among by a policy.

    Args:
        n_arms: How many arms (models); they are known by index here.
        policy: Turns predictions and their uncertainty into a choice.
        features: What the linear models see of an embedding.
        seed: Seed of the policy's randomness (tie-breaking, exploration).
        neighbours: The kNN second opinion on quality, if any.
        drift: Watches each arm's prediction errors and forgets an arm's past when they show
            it changed (None: an arm's whole past weighs alike, unless the policy discounts).
        growth: Keeps a cold bandit's first outcomes and switches to a richer feature map when
            they support it (None: the map stays until a ``fit``).
        blend: A kNN second opinion a tuned ``fit`` weighs beside the linear model and keeps
            only when cross-validation gives it a weight above 0 (None: not offered; ignored
            when ``neighbours`` is given).

    >>> import numpy as np
    >>> from metallm import EmbeddingFeatures, LinUCB
    >>> bandit = LinearBandit(2, policy=LinUCB(alpha=0.0), features=EmbeddingFeatures(), seed=0)
    >>> bandit.learn(1, np.array([1.0, 0.0]), quality=1.0, cost=0.001)
    >>> chosen, scores, bonus, *_ = bandit.score_one(np.array([1.0, 0.0]), cost_weight=0.0, scale=1.0)
    >>> chosen
    1
    """

    def __init__(
        self,
        n_arms: int,
        *,
        policy: Policy,
        features: FeatureMap,
        seed: int | None = None,
        neighbours: NeighbourQuality | None = None,
        drift: DriftDetector | None = None,
        growth: CapacityGrowth | None = None,
        blend: NeighbourQuality | None = None,
    ) -> None:
        self.n_arms = n_arms
        self.blend = blend
        """The kNN blend a tuned `fit` offers to cross-validation when ``neighbours`` is None."""
        self.growth = growth
        """What grows a cold bandit's capacity online (`_growth`), if anything."""
        self.policy = policy
        self.features = features
        self.drift = drift
        """What notices that an arm changed and forgets its past (`_drift`), if anything."""
        if drift is not None:
            drift.start(n_arms)
        self.neighbours = neighbours
        """The second opinion on quality blended with the linear models, if any
        (`_neighbours`); it learns on embeddings, so `update`
        (features only) does not reach it: learn with `learn` or `partial_fit`."""
        self.tuning_: Tuning | None = None
        """The cross-validation that chose `features` in the last `fit`, if any."""
        self.neighbour_tuning_: NeighbourChoice | None = None
        """The cross-validation that chose the neighbours' ``k`` and weight, if any."""
        self.stats: RidgeStatistics | None = None
        """The ridge statistics; None until the embedding size is known."""
        self.cost_stats: RidgeStatistics | None = None
        """The cost models' own statistics when they read more than the quality models (the
        prompt's length: `PromptLengthFeatures`); else None,
        and `stats` predicts cost too."""
        self.latency_stats: RidgeStatistics | None = None
        """The latency models (seconds per call, on the cost models' features); None until the
        first latency is learned."""
        self._quality_dim = 0
        self.embedding_dim = 0
        self.n_updates = 0
        """Outcomes learned from (online updates and offline rows)."""
        self.prior_counts: list[float] = [0.0] * n_arms
        """Per arm, the pseudo-outcomes a warm start gave it (see `metallm.learning._onboarding`)."""
        self.rng = np.random.default_rng(seed)
        self._scale_key: tuple[int, int] | None = None
        self._scale = 1.0
        self._latency_key: tuple[int, int] | None = None
        self._latency_scale = 1.0

    @property
    def dimension(self) -> int | None:
        """Embedding size, known after the first query or fit (None before)."""
        return None if self.stats is None else self.embedding_dim

    def dimension_mismatch(self, dim: int) -> DimensionMismatchError:
        """The error for an embedding of the wrong size.

        Args:
            dim: The size given.
        """
        hint = (
            " (its vectors carry the prompt's length as their last element: pass texts, or "
            "metallm.learning._features.with_prompt_length(embeddings, texts))"
            if reads_prompt_length(self.features)
            else ""
        )
        return DimensionMismatchError(
            f"embedding has {dim} dimensions but the router was built on "
            f"{self.embedding_dim}; use the same embedding model throughout{hint}"
        )

    def ensure(self, dim: int) -> RidgeStatistics:
        """The statistics for embeddings of size ``dim`` (made on first use).

        Args:
            dim: The embeddings' size.
        """
        if self.stats is None:
            if not self.features.fitted:
                raise ConfigurationError(
                    f"{self.features.name} must be fitted first: call router.fit(...) on logged data"
                )
            self.embedding_dim = dim
            full, penalties = self.features.dimension(dim), self.features.penalties(dim)
            self._quality_dim = quality_dimension(self.features, dim)
            self.stats = RidgeStatistics(
                self.n_arms,
                self._quality_dim,
                penalties[: self._quality_dim],
                discount=self.discount,
            )
            self.cost_stats = (
                RidgeStatistics(
                    self.n_arms, full, penalties, targets=1, widths=False, discount=self.discount
                )
                if full > self._quality_dim
                else None
            )
        elif self.embedding_dim != dim:
            raise self.dimension_mismatch(dim)
        return self.stats

    def add_arm(self) -> int:
        """One more arm, knowing nothing yet; its index."""
        for stats in (self.stats, self.cost_stats, self.latency_stats):
            if stats is not None:
                stats.add_arm()
        if self.neighbours is not None:
            self.neighbours.add_arms(1)
        if self.drift is not None:
            self.drift.add_arm()
        self.n_arms += 1
        self.prior_counts.append(0.0)
        return self.n_arms - 1

    def counts(self) -> np.ndarray:
        """Outcomes learned per arm (a warm start's pseudo-outcomes not counted).

        What an arm forgot after a drift alarm still counts: the calls happened.
        """
        if self.stats is None:
            return np.zeros(self.n_arms)
        counts: np.ndarray = self.stats.counts() - np.asarray(self.prior_counts)
        if self.drift is not None:
            counts = counts + np.rint(self.drift.forgotten)
        return counts

    def observed_cost_scale(self) -> float:
        """The priciest arm's mean observed cost (1.0 before any), recomputed only after learning."""
        if self.stats is None:
            return 1.0
        key = (id(self.stats), self.n_updates)
        if self._scale_key != key:
            self._scale_key, self._scale = (
                key,
                cost_scale(self.stats.counts(), self.stats.cost_sums()),
            )
        return self._scale

    def observed_latency_scale(self) -> float:
        """The slowest arm's mean observed latency in seconds (1.0 before any)."""
        stats = self.latency_stats
        if stats is None:
            return 1.0
        key = (id(stats), self.n_updates)
        if self._latency_key != key:
            bias = self._quality_dim - 1  # the quality features end with the bias
            counts = np.rint(stats.A[:, bias, bias] - stats.penalties[bias])
            self._latency_key = key
            self._latency_scale = cost_scale(counts, stats.B[:, bias, 0])
        return self._latency_scale

    def _latency_model(self) -> RidgeStatistics:
        if self.latency_stats is None:
            full = self.features.dimension(self.embedding_dim)
            penalties = self.features.penalties(self.embedding_dim)
            self.latency_stats = RidgeStatistics(
                self.n_arms, full, penalties, targets=1, widths=False, discount=self.discount
            )
        return self.latency_stats

    @property
    def discount(self) -> float:
        """How much of what an arm learned survives each of its updates (the policy's; 1: all)."""
        return float(getattr(self.policy, "discount", 1.0))

    def _follow_discount(self) -> None:
        """Statistics forget at the policy's discount (the policy may have been swapped)."""
        discount = self.discount
        for stats in (self.stats, self.cost_stats, self.latency_stats):
            if stats is not None:
                stats.discount = discount

    def choosing_policy(self) -> Policy:
        """The policy as it chooses now (SquareCB's exploration scale follows the outcomes learned)."""
        return round_policy(self.policy, self.n_updates)

    def _embedding_part(self, embeddings: np.ndarray) -> np.ndarray:
        """The embedding of vectors that may end with the prompt's length (the neighbours read it)."""
        return embeddings[:, :-1] if reads_prompt_length(self.features) else embeddings

    def _blended(self, quality: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        if self.neighbours is None or not self.neighbours.active:
            return quality
        return self.neighbours.blend(quality, self._embedding_part(embeddings))

    # -- scoring -------------------------------------------------------------------------
    def score_one(
        self,
        embedding: np.ndarray,
        *,
        cost_weight: float,
        scale: float,
        excluded: set[int] | None = None,
        forced: int | None = None,
        latency_weight: float = 0.0,
        latency_scale: float = 1.0,
    ) -> OneScore:
        """Choose for one embedding (dim,), with as few numpy calls as the maths allows.

        Three matrix products, then plain floats: for one query and a pool of models that is
        faster than a dozen small numpy calls (docs/performance.md). ``excluded`` arms are
        not chosen; ``forced`` is chosen whatever the scores.

        Args:
            embedding: (dim,).
            cost_weight: ``p``.
            scale: The cost normaliser (USD).
            excluded: Arms not to choose.
            forced: The arm to choose whatever the scores.
            latency_weight: ``l``.
            latency_scale: The latency normaliser (seconds).
        """
        stats = self.stats if self.stats is not None else self.ensure(embedding.shape[0])
        if embedding.shape[0] != self.embedding_dim:
            raise self.dimension_mismatch(embedding.shape[0])
        features = self.features.transform_one(embedding)
        if self.cost_stats is None:
            means, quad = stats.predict_one(features)
        else:  # the cost model reads the features and more (the prompt's length)
            means, quad = stats.predict_one(features[: self._quality_dim])
            np.maximum(self.cost_stats.means_one(features)[0], 0.0, out=means[1])
        if self.neighbours is not None and self.neighbours.active:
            part = embedding[:-1] if reads_prompt_length(self.features) else embedding
            means[0] = self.neighbours.blend_one(means[0], part)
        policy = self.choosing_policy()
        bonus = policy.bonus(np.sqrt(np.maximum(quad, 0.0, out=quad), out=quad)).tolist()
        quality, cost = means.tolist()
        weight = cost_weight / scale
        scores = [q - weight * c + b for q, c, b in zip(quality, cost, bonus)]
        latency = None
        if self.latency_stats is not None:
            latency = np.maximum(self.latency_stats.means_one(features)[0], 0.0).tolist()
            if latency_weight:
                slow = latency_weight / latency_scale
                scores = [s - slow * t for s, t in zip(scores, latency)]
        if forced is not None:
            chosen = forced
        elif excluded:
            chosen = policy.choose_one(
                [-math.inf if i in excluded else v for i, v in enumerate(scores)], self.rng
            )
        else:
            chosen = policy.choose_one(scores, self.rng)
        return chosen, scores, bonus, features, quality, cost, latency

    def score_many(
        self,
        embeddings: np.ndarray,
        *,
        cost_weight: float,
        scale: float,
        excluded: set[int] | None = None,
        forced: int | None = None,
        latency_weight: float = 0.0,
        latency_scale: float = 1.0,
    ) -> Scores:
        """Choose for each row of ``embeddings`` (n, dim), vectorised over the batch.

        Args:
            embeddings: (n, dim).
            cost_weight: ``p``.
            scale: The cost normaliser (USD).
            excluded: Arms not to choose.
            forced: The arm to choose whatever the scores.
            latency_weight: ``l``.
            latency_scale: The latency normaliser (seconds).
        """
        stats = self.ensure(embeddings.shape[1])
        X = self.features.transform(embeddings)
        quality, cost, width = self._predict(stats, X, fast_width=True, widths=True)
        assert width is not None
        quality = self._blended(quality, embeddings)
        policy = self.choosing_policy()
        bonus = policy.bonus(width)
        scores = quality - cost_weight * cost / scale + bonus
        latency = self._predict_latency(X)
        if latency is not None and latency_weight:
            scores = scores - latency_weight * latency / latency_scale
        if excluded:
            masked = scores.copy()
            masked[:, sorted(excluded)] = -np.inf
        else:
            masked = scores
        chosen = policy.choose(masked, self.rng) if forced is None else np.full(X.shape[0], forced)
        return chosen, scores, bonus, X, quality, cost, latency

    def _predict_latency(self, X: np.ndarray) -> np.ndarray | None:
        if self.latency_stats is None:
            return None
        latency: np.ndarray = np.maximum(self.latency_stats.means(X)[:, 0], 0.0)
        return latency

    def predict_latency(self, embeddings: np.ndarray) -> np.ndarray | None:
        """Predicted latency (seconds, never below zero) per arm, (n, k); None before any was learned.

        Args:
            embeddings: (n, dim).
        """
        self.ensure(embeddings.shape[1])
        return self._predict_latency(self.features.transform(embeddings))

    def predict(
        self, embeddings: np.ndarray, *, widths: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Predicted quality, cost (never below zero) and confidence width per arm, each (n, k).

        ``widths=False`` skips the widths (None), the costly part.

        Args:
            embeddings: (n, dim).
            widths: Compute the confidence widths (False: None, much cheaper).
        """
        stats = self.ensure(embeddings.shape[1])
        quality, cost, width = self._predict(
            stats, self.features.transform(embeddings), widths=widths
        )
        return self._blended(quality, embeddings), cost, width

    def _predict(
        self, stats: RidgeStatistics, X: np.ndarray, *, widths: bool, fast_width: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self.cost_stats is None:
            return stats.predict(X, fast_width=fast_width, widths=widths)
        quality, _, width = stats.predict(
            X[:, : self._quality_dim], fast_width=fast_width, widths=widths
        )
        return quality, np.maximum(self.cost_stats.means(X)[:, 0], 0.0), width

    # -- learning ------------------------------------------------------------------------
    def update(
        self,
        arm: int,
        features: np.ndarray,
        quality: float,
        cost: float,
        latency: float | None = None,
        *,
        watch: bool = True,
    ) -> None:
        """Learn one outcome of ``arm`` at already-computed ``features`` (rank-1).

        ``latency`` (seconds) is learned when known.

        Args:
            arm: The arm.
            features: Its features (what ``features.transform`` gave).
            quality: The outcome.
            cost: USD.
            latency: Seconds, when known.
            watch: Show the outcome to the drift detector (False for a provider's failure:
                an outage is the cooldown's business, not a change of the model).
        """
        if self.growth is not None:  # it keeps embeddings, which features cannot give back
            self.growth.stop("learning from features, not embeddings")
        self._learn_one(arm, features, quality, cost, latency, watch)

    def _learn_one(
        self,
        arm: int,
        features: np.ndarray,
        quality: float,
        cost: float,
        latency: float | None,
        watch: bool,
    ) -> None:
        """One rank-1 update of every model ``arm`` has, watched by the drift detector."""
        stats = self.stats
        assert stats is not None
        self._follow_discount()
        quality_part = features if self.cost_stats is None else features[: self._quality_dim]
        drift = self.drift if watch else None
        error = 0.0 if drift is None else quality - stats.mean_of(arm, quality_part)
        stats.update(arm, quality_part, np.array([quality, cost]))
        if self.cost_stats is not None:
            self.cost_stats.update(arm, features, np.array([cost]))
        if latency is not None:
            self._latency_model().update(arm, features, np.array([latency]))
        self.n_updates += 1
        if drift is not None:
            change = drift.observe(arm, error)
            if change is not None:  # re-read its past at the new level, then let it weigh little
                stats.shift(arm, change)
                drift.forgotten[arm] += stats.shrink(arm, drift.keep)
                if self.neighbours is not None:  # its remembered outcomes predate the change
                    self.neighbours.forget(arm)
                if self.growth is not None:
                    self.growth.stop("a drift alarm reshaped the statistics")

    def correct(
        self, arm: int, embedding: np.ndarray, old: float, new: float, *, transformed: bool = False
    ) -> None:
        """Replace a quality already learned for an embedding: as if ``new`` had been learned.

        The cost, latency and the count of updates are unchanged (the call happened once).
        A kNN memory keeps the first grade (it is a sample of past outcomes, refreshed as
        new ones come).

        Args:
            arm: The arm that answered.
            embedding: (dim,) the query's vector.
            old: The quality learned before.
            new: The quality that replaces it.
            transformed: Whether ``embedding`` is already the features (``update``'s input).
        """
        assert self.stats is not None
        row = np.asarray(embedding, dtype=np.float64)[None, :]
        features = row[0] if transformed else self.features.transform(row)[0]
        quality_part = features if self.cost_stats is None else features[: self._quality_dim]
        self.stats.correct(arm, quality_part, 0, new - old)
        if self.growth is not None and not transformed:
            self.growth.regrade(arm, row[0], old, new)

    def learn(
        self,
        arm: int,
        embedding: np.ndarray,
        *,
        quality: float,
        cost: float,
        latency: float | None = None,
        watch: bool = True,
    ) -> None:
        """Learn one outcome of ``arm`` for an embedding (dim,).

        Args:
            arm: The arm.
            embedding: (dim,).
            quality: The outcome.
            cost: USD.
            latency: Seconds, when known.
            watch: Show the outcome to the drift detector (see `update`).
        """
        row = np.asarray(embedding, dtype=np.float64)[None, :]
        self.ensure(row.shape[1])
        self._learn_one(arm, self.features.transform(row)[0], quality, cost, latency, watch)
        self._grow(arm, row[0], quality, cost, latency)
        if self.neighbours is not None:
            self.neighbours.add(
                self._embedding_part(row), np.array([arm]), np.array([quality]), self.n_arms
            )

    def _grow(
        self, arm: int, embedding: np.ndarray, quality: float, cost: float, latency: float | None
    ) -> None:
        """Keep the outcome for the capacity growth; at a check, switch maps if it says so."""
        growth = self.growth
        if growth is None or not growth.active:
            return
        if self.discount != 1.0 or any(self.prior_counts):
            growth.stop("a discount or a warm start shaped the statistics")
            return
        growth.keep(embedding, arm, quality, cost, latency)
        chosen = growth.check(self.features, self.n_arms) if growth.due else None
        if chosen is not None:
            self._rebuild(chosen, *growth.kept())
        if growth.full:
            growth.stop("the rows are in")

    def _rebuild(self, chosen: FeatureMap, X: np.ndarray, arms: np.ndarray, Y: np.ndarray) -> None:
        """Take a grown feature map: the statistics learned again from the kept outcomes."""
        self.features = chosen
        self.stats = self.cost_stats = self.latency_stats = None
        stats = self.ensure(X.shape[1])
        self._add_rows(stats, chosen.transform(X), arms, Y[:, :2], Y[:, 2])
        if self.drift is not None:  # the sums watched the old map's errors
            self.drift.start(self.n_arms)

    def fit(
        self,
        embeddings: np.ndarray,
        quality: np.ndarray,
        cost: np.ndarray,
        *,
        tune: bool,
        candidates: Sequence[FeatureMap] = DEFAULT_CANDIDATES,
        seed: int = 0,
        latency: np.ndarray | None = None,
        grow: bool = False,
        offer_blend: bool = True,
    ) -> None:
        """Learn from scratch from full-information rows (every arm's outcome known).

        ``latency`` (n, k), seconds, when the rows carry it.

        Args:
            embeddings: (n, dim).
            quality: (n, k).
            cost: (n, k) USD.
            tune: Choose the feature map by cross-validation.
            candidates: The feature maps to choose among.
            seed: The folds' seed.
            latency: (n, k) seconds, when known.
            grow: Keep these rows for the capacity growth and go on growing from them (rows
                too few to tune); otherwise a fit stops the growth (the map was chosen, by
                cross-validation or by the caller).
            offer_blend: Let a tuned fit weigh ``blend`` (False where decisions pending
                elsewhere hold features a memory of embeddings could not learn from).
        """
        offered = (
            tune
            and offer_blend
            and self.blend is not None
            and (self.neighbours is None or self.neighbours.offered)
        )
        capacity = choose_capacity(
            embeddings,
            self._embedding_part(embeddings),
            quality,
            cost,
            features=self.features,
            tune=tune,
            neighbours=self.neighbours,
            blend=self.blend if offered else None,
            candidates=candidates,
            seed=seed,
        )
        self.features, self.neighbours = capacity.features, capacity.neighbours
        self.neighbour_tuning_ = capacity.blend_choice
        if capacity.tuning is not None:
            self.tuning_ = capacity.tuning
        self.stats = self.cost_stats = self.latency_stats = None
        self.prior_counts = [0.0] * self.n_arms
        if self.drift is not None:
            self.drift.start(self.n_arms)
        growth = self.growth
        if growth is not None:
            if tune:
                growth.stop("the map was chosen by cross-validation on a routing table")
            elif not grow:
                growth.stop("fitted with tune=False: the map stays")
            elif self.discount != 1.0:
                growth.stop("a discount or a warm start shaped the statistics")
            else:  # too few rows to tune: keep them and grow from them online
                growth.start_from(embeddings, quality, cost, latency)
        stats = self.ensure(embeddings.shape[1])
        X = self.features.transform(embeddings)
        Xq = X[:, : self._quality_dim]
        stats.A += (Xq.T @ Xq)[None]
        stats.B[:] = np.einsum("nd,nkj->kdj", Xq, np.stack([quality, cost], axis=2))
        stats.refresh()
        if self.cost_stats is not None:
            self.cost_stats.A += (X.T @ X)[None]
            self.cost_stats.B[:] = np.einsum("nd,nk->kd", X, cost)[:, :, None]
            self.cost_stats.refresh()
        if latency is not None:
            model = self._latency_model()
            model.A += (X.T @ X)[None]
            model.B[:] = np.einsum("nd,nk->kd", X, latency)[:, :, None]
            model.refresh()
        self.n_updates = X.shape[0] * self.n_arms
        if growth is not None and growth.active and growth.n >= growth.every:  # as online
            chosen = growth.check(self.features, self.n_arms)
            if chosen is not None:
                self._rebuild(chosen, *growth.kept())

    def partial_fit(
        self,
        embeddings: np.ndarray,
        arms: np.ndarray,
        quality: np.ndarray,
        cost: np.ndarray,
        latency: np.ndarray | None = None,
    ) -> None:
        """Learn from logged bandit rows: one arm's outcome per row (and its latency, if known).

        Args:
            embeddings: (n, dim).
            arms: The arm of each row.
            quality: Its outcome.
            cost: USD.
            latency: Seconds, when known.
        """
        stats = self.ensure(embeddings.shape[1])
        self._follow_discount()
        if self.growth is not None:
            self.growth.stop("learned a logged batch")
        X = self.features.transform(embeddings)
        Y = np.stack([quality, cost], axis=1)
        self._add_rows(stats, X, arms, Y, None if latency is None else np.asarray(latency))
        if self.neighbours is not None:
            self.neighbours.add(self._embedding_part(embeddings), arms, quality, self.n_arms)
        self.n_updates += embeddings.shape[0]

    def _add_rows(
        self,
        stats: RidgeStatistics,
        X: np.ndarray,
        arms: np.ndarray,
        Y: np.ndarray,
        latency: np.ndarray | None,
    ) -> None:
        """Add feature rows to each arm's models, one refactoring per arm (NaN latency: unknown)."""
        known = None if latency is None else ~np.isnan(latency)
        for k in np.unique(arms):
            rows = arms == k
            stats.add_batch(int(k), X[rows, : self._quality_dim], Y[rows])
            if self.cost_stats is not None:
                self.cost_stats.add_batch(int(k), X[rows], Y[rows, 1:])
            if latency is not None and known is not None and (rows & known).any():
                timed = rows & known
                self._latency_model().add_batch(int(k), X[timed], latency[timed, None])

    # -- state ---------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What to save: a JSON-able header and arrays (features, and ``A``, ``B`` once learning began)."""
        feature_header, feature_arrays = self.features.to_state()
        header = {
            "dimension": self.dimension,
            "features": feature_header,
            "n_updates": self.n_updates,
            "prior_counts": list(self.prior_counts),
        }
        arrays: dict[str, np.ndarray] = {f"features_{k}": v for k, v in feature_arrays.items()}
        arrays.update(statistics_arrays(self.stats, self.cost_stats, self.latency_stats))
        if self.neighbours is not None:
            header["neighbours"], neighbour_arrays = self.neighbours.to_state()
            arrays.update(neighbour_arrays)
        if self.drift is not None:
            header["drift"], drift_arrays = self.drift.to_state()
            arrays.update(drift_arrays)
        if self.growth is not None:
            header["growth"], growth_arrays = self.growth.to_state()
            arrays.update(growth_arrays)
        return header, arrays

    def adopt(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Take the state written by `to_state`; ValueError says what is wrong with it.

        Args:
            header: The saved header.
            arrays: The saved arrays.
        """
        try:
            features = feature_map_from_state(
                header["features"],
                {
                    k.removeprefix("features_"): v
                    for k, v in arrays.items()
                    if k.startswith("features_")
                },
            )
            dim = header["dimension"]
            n_updates = int(header["n_updates"])
            prior_counts = [float(c) for c in header.get("prior_counts", [0.0] * self.n_arms)]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the header is incomplete or invalid ({e!r})") from e
        if len(prior_counts) != self.n_arms:
            raise ValueError(f"prior_counts {prior_counts} do not fit {self.n_arms} models")
        if header.get("neighbours") is not None:
            self.neighbours = NeighbourQuality.from_state(header["neighbours"], arrays, self.n_arms)
        elif self.neighbours is not None:  # saved without one: this one starts remembering now
            self.neighbours.clear(self.n_arms)
        if header.get("drift") is not None:
            self.drift = DriftDetector.from_state(header["drift"], arrays, self.n_arms)
        elif self.drift is not None:  # saved without one: this one starts watching now
            self.drift.start(self.n_arms)
        if header.get("growth") is not None:
            self.growth = CapacityGrowth.from_state(header["growth"], arrays)
        elif self.growth is not None:  # saved without one: what was learned is not kept
            self.growth.stop("restored from a state that kept no outcomes")
        self.prior_counts = prior_counts
        if dim is None:
            self.features, self.stats, self.cost_stats = features, None, None
            self.latency_stats, self.n_updates = None, n_updates
            return
        models = restore_statistics(arrays, features, int(dim), self.n_arms)
        self.features, self.stats, self.cost_stats = features, models.quality, models.cost
        self.latency_stats = models.latency
        self.embedding_dim, self.n_updates = int(dim), n_updates
        self._quality_dim = models.quality_dim

    def reset(self) -> None:
        """Forget what was learned (keeps the feature map and policy)."""
        self.stats, self.cost_stats, self.latency_stats, self.n_updates = None, None, None, 0
        self.prior_counts = [0.0] * self.n_arms
        if self.neighbours is not None:
            self.neighbours.clear(self.n_arms)
        if self.drift is not None:
            self.drift.start(self.n_arms)
        if self.growth is not None:
            self.growth.restart()
