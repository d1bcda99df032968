"""Choosing the feature map by cross-validation on the training rows only.

Each candidate is fitted on k-1 folds and predicts the held-out fold, so every training row
gets an out-of-fold prediction per candidate. A candidate's score is the AIQ of the routing
frontier those predictions give (sweeping the cost weight ``p``); candidates whose p = 0
routing is more than half a point below the best single model are set aside unless none is
left ("do no harm"). The out-of-fold predictions of the winner are kept: they calibrate
``p`` to a budget without touching test rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from metallm.learning._features import (
    ClusterFeatures,
    EmbeddingFeatures,
    FeatureMap,
    ProjectedFeatures,
    PromptLengthFeatures,
    quality_dimension,
)
from metallm.learning._metrics import aiq, frontier
from metallm.learning._neighbours import (
    NEIGHBOUR_KS,
    NEIGHBOUR_WEIGHTS,
    neighbour_quality,
    subsample,
    unit_rows,
)
from metallm.learning._reward import cost_scale, default_cost_weight_grid

__all__ = [
    "AUTO_TUNE_ROWS",
    "DEFAULT_CANDIDATES",
    "HARM_TOLERANCE",
    "Tuning",
    "NeighbourChoice",
    "fold_gain",
    "fold_splits",
    "out_of_fold",
    "tune_features",
    "tune_neighbours",
    "describe",
    "is_linear",
]

AUTO_TUNE_ROWS = 300
HARM_TOLERANCE = 0.005

CANDIDATE_DIMS = 128
"""The principal directions of the embedding the default candidates read: a 12-model router on
them stays inside the select (0.2 ms) and record (0.5 ms) budgets; on the full 384-d MiniLM
embedding it did not (0.38 ms and 1.5 ms with the cluster map), for the same held-out AIQ
within 0.002 on the shared tables (docs/benchmarks.md)."""

DEFAULT_CANDIDATES: tuple[FeatureMap, ...] = (
    *(ProjectedFeatures(CANDIDATE_DIMS, l2) for l2 in (1.0, 3.0, 10.0, 30.0)),
    *(
        ClusterFeatures(32, 0.05, cluster_l2, embedding_l2, dims=CANDIDATE_DIMS)
        for cluster_l2 in (1.0, 3.0, 10.0)
        for embedding_l2 in (10.0, 30.0)
    ),
)
"""What `fit` chooses among: a linear model of the embedding's principal directions at four
penalties, and soft cluster memberships plus those directions (a nonlinear map) at six."""


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's cross-validated figures."""

    features: FeatureMap
    aiq: float
    quality_at_zero: float
    eligible: bool
    """Whether its p = 0 routing was within half a point of the best single model ("no harm")."""

    @property
    def label(self) -> str:
        """The candidate's settings, without its fitted arrays (its dataclass repr)."""
        return describe(self.features)


def is_linear(features: FeatureMap) -> bool:
    """Whether a map is linear in the embedding (the kNN blend's partner in a default fit).

    The blend and the nonlinear maps both add the local detail a linear model smooths away;
    a fit weighs the blend over the best linear candidate, against the nonlinear ones, so a
    select runs one of them, never both (docs/benchmarks.md, Capacity).

    Args:
        features: A feature map (a prompt-length reader is judged by its inner map).

    >>> from metallm.learning import ClusterFeatures, ProjectedFeatures
    >>> is_linear(ProjectedFeatures(128)), is_linear(ClusterFeatures(32))
    (True, False)
    """
    inner = getattr(features, "inner", features)
    return isinstance(inner, (EmbeddingFeatures, ProjectedFeatures))


def describe(features: FeatureMap) -> str:
    """A feature map's settings as one line: the inner map of a prompt-length reader.

    Args:
        features: A feature map.
    """
    inner = getattr(features, "inner", None)
    return repr(inner if inner is not None else features)


@dataclass(frozen=True)
class Tuning:
    """What the cross-validation found. ``predicted_*`` are the winner's out-of-fold predictions."""

    chosen: FeatureMap
    scores: tuple[CandidateScore, ...]
    predicted_quality: np.ndarray
    predicted_cost: np.ndarray
    folds: int
    predictions: tuple[tuple[np.ndarray, np.ndarray], ...] = field(
        default=(), repr=False, compare=False
    )
    """Every candidate's out-of-fold (quality, cost), as ``scores`` (empty once a fit is done)."""

    @property
    def chosen_score(self) -> CandidateScore:
        """The chosen candidate's figures."""
        return next(c for c in self.scores if c.features is self.chosen)

    def best(self, among: Callable[[FeatureMap], bool]) -> CandidateScore | None:
        """The best-scoring candidate among those ``among`` accepts, if any.

        Harmful or not: what is built over it (a blend) is judged for harm itself.

        Args:
            among: Which candidates compete (e.g. `is_linear`).
        """
        fits = [c for c in self.scores if among(c.features)]
        return max(fits, key=lambda c: c.aiq) if fits else None

    def choose(self, features: FeatureMap, predicted_quality: np.ndarray | None = None) -> Tuning:
        """The same cross-validation with another candidate chosen (and its predictions).

        Args:
            features: One of the candidates (``scores``); its predictions must be kept.
            predicted_quality: Its out-of-fold quality as served, e.g. blended with the kNN
                opinion (None: the candidate's own).

        Raises:
            ValueError: ``features`` is not a candidate whose predictions were kept.
        """
        index = next((i for i, c in enumerate(self.scores) if c.features is features), None)
        if index is None or index >= len(self.predictions):
            raise ValueError(f"{describe(features)} is not a candidate with kept predictions")
        quality, cost = self.predictions[index]
        if predicted_quality is not None:
            quality = predicted_quality
        return replace(self, chosen=features, predicted_quality=quality, predicted_cost=cost)

    def done(self) -> Tuning:
        """What a fitted router keeps: every candidate's predictions dropped (megabytes)."""
        return replace(self, predictions=())

    def report(self) -> str:
        """Every candidate's cross-validated AIQ, best first, the chosen one marked.

        >>> import numpy as np
        >>> from metallm.learning import ProjectedFeatures
        >>> rng = np.random.default_rng(0)
        >>> X, Q, C = rng.normal(size=(60, 4)), rng.random((60, 2)), rng.random((60, 2))
        >>> tuning = tune_features(X, Q, C, candidates=[ProjectedFeatures(2), ProjectedFeatures(3)])
        >>> tuning.report().splitlines()[0]
        '5-fold cross-validation on 60 rows (AIQ of the out-of-fold routing; "harm": quality at p = 0 below the best single model):'
        """
        rows = len(self.predicted_quality)
        lines = [
            f"{self.folds}-fold cross-validation on {rows} rows (AIQ of the out-of-fold routing; "
            '"harm": quality at p = 0 below the best single model):'
        ]
        for score in sorted(self.scores, key=lambda c: -c.aiq):
            mark = "chosen" if score.features is self.chosen else ("" if score.eligible else "harm")
            lines.append(
                f"  {score.aiq:.4f}  (p = 0: {score.quality_at_zero:.4f})  {mark:<6}  {score.label}"
            )
        return "\n".join(lines)


def _ridge_predict(
    fmap: FeatureMap, train: np.ndarray, test: np.ndarray, quality: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge predictions of quality and cost on ``test``.

    Cost reads every feature; quality those it reads (all but a cost-only prompt length).
    """
    F, T = fmap.transform(train), fmap.transform(test)
    penalties = fmap.penalties(train.shape[1])
    d = quality_dimension(fmap, train.shape[1])

    def solve(columns: int, targets: np.ndarray) -> np.ndarray:
        Fc = F[:, :columns]
        gram = Fc.T @ Fc + np.diag(penalties[:columns])
        out: np.ndarray = T[:, :columns] @ np.linalg.solve(gram, Fc.T @ targets)
        return out

    if d == F.shape[1]:
        both = solve(d, np.hstack([quality, cost]))
        return both[:, : quality.shape[1]], both[:, quality.shape[1] :]
    return solve(d, quality), solve(F.shape[1], cost)


def fold_splits(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (training rows, held-out rows) of each fold: one seeded split for every out-of-fold use.

    Args:
        n: Rows.
        folds: How many folds.
        seed: The split's seed.
    """
    order = np.random.default_rng(seed).permutation(n)
    return [
        (np.setdiff1d(order, fold, assume_unique=True), fold)
        for fold in np.array_split(order, folds)
    ]


def _fitted_part(fmap: FeatureMap) -> tuple[object, ...] | None:
    """What fitting ``fmap`` learns from data depends on, its penalties aside (None: unknown)."""
    if isinstance(fmap, PromptLengthFeatures):
        inner = _fitted_part(fmap.inner)
        return None if inner is None else ("length", *inner)
    if isinstance(fmap, ProjectedFeatures):
        return ("projection", fmap.dims, fmap.seed)
    if isinstance(fmap, ClusterFeatures):
        return ("clusters", fmap.clusters, fmap.dims)
    return None


def _with_settings_of(fitted: FeatureMap, like: FeatureMap) -> FeatureMap:
    """``fitted``'s learned parts (projection, centroids) with ``like``'s penalties."""
    if isinstance(fitted, PromptLengthFeatures) and isinstance(like, PromptLengthFeatures):
        return PromptLengthFeatures(_with_settings_of(fitted.inner, like.inner), like.l2)
    if isinstance(fitted, ProjectedFeatures) and isinstance(like, ProjectedFeatures):
        return replace(fitted, l2=like.l2)
    assert isinstance(fitted, ClusterFeatures) and isinstance(like, ClusterFeatures)
    return replace(fitted, temperature=like.temperature, cluster_l2=like.cluster_l2,
                   embedding_l2=like.embedding_l2)  # fmt: skip


class SharedFits:
    """Fits of the same rows shared by candidates that differ only in their penalties.

    The default candidates are four penalties of one PCA and six of one k-means: cross-validating
    them fits each once per fold instead of once per candidate and fold (the same maps, so the
    same scores, in a fraction of the time).
    """

    def __init__(self) -> None:
        self._fits: dict[tuple[object, ...], FeatureMap] = {}

    def __len__(self) -> int:
        """How many fits were made (the rest were shared)."""
        return len(self._fits)

    def fit(
        self, fmap: FeatureMap, rows: np.ndarray, embeddings: np.ndarray, seed: int
    ) -> FeatureMap:
        """``fmap`` fitted on ``embeddings[rows]``, from a shared fit when there is one.

        Args:
            fmap: The candidate.
            rows: The training rows (the key of the fit, with the map's fitted part).
            embeddings: All rows' vectors.
            seed: The fit's seed.
        """
        part = _fitted_part(fmap)
        if part is None:
            return fmap.fit(embeddings[rows], seed=seed)
        key = (rows.tobytes(), seed, *part)
        shared = self._fits.get(key)
        if shared is None:
            shared = self._fits[key] = fmap.fit(embeddings[rows], seed=seed)
        return _with_settings_of(shared, fmap)


def out_of_fold(
    fmap: FeatureMap,
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    fits: SharedFits | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predicted quality and cost (n, k) of ``fmap`` under full-information ridge.

    Args:
        fmap: The candidate map.
        embeddings: (n, dim).
        quality: (n, k).
        cost: (n, k) USD.
        folds: How many folds.
        seed: The folds' and the fits' seed.
        fits: Fits shared with other candidates on the same folds (None: fit each).
    """
    n, k = quality.shape
    fits = fits if fits is not None else SharedFits()
    predicted_quality, predicted_cost = np.empty((n, k)), np.empty((n, k))
    for train, fold in fold_splits(n, folds, seed):
        fitted = fits.fit(fmap, train, embeddings, seed)
        predicted_quality[fold], predicted_cost[fold] = _ridge_predict(
            fitted, embeddings[train], embeddings[fold], quality[train], cost[train]
        )
    return predicted_quality, np.maximum(predicted_cost, 0.0)  # costs are never below zero


class _Scorer:
    """How cross-validation scores out-of-fold predictions of these rows' outcomes.

    The AIQ of the routing frontier the predictions give (sweeping ``p``; the quality at
    p = 0 when there is one model), and that quality at p = 0, on every row or on some.
    """

    def __init__(self, quality: np.ndarray, cost: np.ndarray) -> None:
        n, k = quality.shape
        self.quality, self.cost = quality, cost
        self.scale = cost_scale(np.full(k, n), cost.sum(axis=0))
        single_costs = cost.mean(axis=0)
        self.cost_range = (float(single_costs.min()), float(single_costs.max()))
        self.best_single = float(quality.mean(axis=0).max())
        self.grid = default_cost_weight_grid()

    def __call__(
        self, quality: np.ndarray, cost: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[float, float]:
        """(score, quality at p = 0) of predicted ``quality`` and ``cost`` (n, k), or their ``rows``."""
        outcomes, costs = self.quality, self.cost
        if rows is not None:
            quality, cost, outcomes, costs = quality[rows], cost[rows], outcomes[rows], costs[rows]
        points = frontier(quality, cost / self.scale, outcomes, costs, self.grid)
        score = aiq(points, self.cost_range) if outcomes.shape[1] > 1 else points[0][1]
        return score, points[0][1]


def tune_features(
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    candidates: Sequence[FeatureMap] = DEFAULT_CANDIDATES,
    folds: int = 5,
    seed: int = 0,
) -> Tuning:
    """The candidate with the best cross-validated AIQ that does no harm at ``p = 0``."""
    n = quality.shape[0]
    folds = max(2, min(folds, n // 2))
    scorer = _Scorer(quality, cost)
    scores, predictions = [], []
    fits = SharedFits()
    for candidate in candidates:
        pq, pc = out_of_fold(candidate, embeddings, quality, cost, folds=folds, seed=seed,
                             fits=fits)  # fmt: skip
        score, at_zero = scorer(pq, pc)
        no_harm = at_zero >= scorer.best_single - HARM_TOLERANCE
        scores.append(CandidateScore(candidate, score, at_zero, no_harm))
        predictions.append((pq, pc))
    eligible = [i for i, s in enumerate(scores) if s.eligible]
    if eligible:
        best = max(eligible, key=lambda i: scores[i].aiq)
    else:
        best = max(range(len(scores)), key=lambda i: scores[i].quality_at_zero)
    return Tuning(
        scores[best].features,
        tuple(scores),
        predictions[best][0],
        predictions[best][1],
        folds,
        tuple(predictions),
    )


@dataclass(frozen=True)
class NeighbourChoice:
    """What cross-validation chose for the neighbours' second opinion, and the AIQ of each pair."""

    k: int
    weight: float
    scores: dict[tuple[int, float], float]
    predicted_quality: np.ndarray
    """The blend's out-of-fold predicted quality (the linear part's is `Tuning`'s)."""
    over: str = ""
    """The map it was weighed over (`describe`)."""
    quality_at_zero: float = math.nan
    """The chosen pair's out-of-fold quality at p = 0."""
    kept: bool = True
    """Whether the fit kept it (an offered blend: ahead of the chosen map on the folds, by
    more than the folds' noise)."""
    gain: tuple[float, float] | None = None
    """An offered blend's AIQ minus the chosen map's: mean and standard error over folds."""

    @property
    def aiq(self) -> float:
        """The cross-validated AIQ of the chosen ``k`` and weight."""
        return self.scores[(self.k, self.weight)]

    def summary(self) -> str:
        """One line for a log: the blend's settings, its CV AIQ and whether it was kept."""
        over = f" over {self.over}" if self.over else ""
        gain = (
            ""
            if self.gain is None
            else (
                f", {self.gain[0]:+.4f} ± {self.gain[1]:.4f} against the chosen map over the folds"
            )
        )
        kept = "kept" if self.kept else "not kept: not ahead of the chosen map by more than noise"
        return (
            f"kNN blend k={self.k}, weight {self.weight:g}{over}: CV AIQ {self.aiq:.4f}{gain} "
            f"({kept})"
        )


def fold_gain(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    quality: np.ndarray,
    cost: np.ndarray,
    *,
    folds: int,
    seed: int,
) -> tuple[float, float]:
    """How much ``first``'s routing beats ``second``'s: the AIQ difference fold by fold.

    Two out-of-fold predictions (quality, cost) of the same rows, scored on each held-out
    fold as `tune_features` scores a candidate on all of them. The mean difference and its
    standard error tell a real lead from the luck of picking the best of many settings on
    the same rows (a blend one point ahead over all folds can be behind on half of them).

    Args:
        first: (quality, cost) out-of-fold predictions, (n, k) each.
        second: The other's.
        quality: (n, k) the rows' outcomes.
        cost: (n, k) USD.
        folds: The cross-validation's folds.
        seed: Its seed (the same folds).

    Returns:
        (mean, standard error) of the per-fold differences.
    """
    scorer = _Scorer(quality, cost)
    gaps = np.array(
        [
            scorer(*first, fold)[0] - scorer(*second, fold)[0]
            for _, fold in fold_splits(len(quality), folds, seed)
        ]
    )
    return float(gaps.mean()), float(gaps.std(ddof=1) / math.sqrt(len(gaps)))


def tune_neighbours(
    embeddings: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    tuning: Tuning,
    *,
    ks: Sequence[int] = NEIGHBOUR_KS,
    weights: Sequence[float] = NEIGHBOUR_WEIGHTS,
    seed: int = 0,
    max_rows: int | None = None,
) -> NeighbourChoice:
    """The ``k`` and blend weight with the best cross-validated AIQ on the same folds.

    The linear part's out-of-fold predictions are ``tuning``'s (the chosen feature map); the
    neighbours' are made on the same folds (``embeddings`` without a prompt-length column), so
    every blend is scored on predictions no row made of itself. A blend whose p = 0 routing is
    more than half a point below the best single model is set aside, as in
    `tune_features`; ties go to the smaller weight (0 is the linear learner). Each fold's
    memory is capped at ``max_rows`` as the fitted memory is (`subsample`), so the weight is
    chosen for the memory that will answer.
    """
    unit = unit_rows(embeddings)
    splits = fold_splits(len(quality), tuning.folds, seed)
    scorer = _Scorer(quality, cost)
    linear, predicted_cost = tuning.predicted_quality, tuning.predicted_cost
    scores: dict[tuple[int, float], float] = {}
    at_zero: dict[tuple[int, float], float] = {}
    blends: dict[tuple[int, float], np.ndarray] = {}
    for k in ks:
        means, support = np.empty_like(linear), np.empty_like(linear)
        for rest, fold in splits:
            if max_rows is not None:
                rest = rest[subsample(len(rest), max_rows)]
            means[fold], support[fold] = neighbour_quality(
                unit[rest], quality[rest].astype(np.float32), unit[fold], k
            )
        for weight in weights:
            share = weight * support
            blended = (1.0 - share) * linear + share * means
            score, zero = scorer(blended, predicted_cost)
            harmful = zero < scorer.best_single - HARM_TOLERANCE
            if weight > 0 and harmful and 0.0 in weights:  # 0 stays: set the harmful aside
                continue
            scores[(k, float(weight))], at_zero[(k, float(weight))] = score, zero
            blends[(k, float(weight))] = blended
    best = max(scores, key=lambda key: (scores[key], -key[1]))
    return NeighbourChoice(
        best[0], best[1], scores, blends[best], describe(tuning.chosen), at_zero[best]
    )
