"""Growing a cold router's capacity online, when held-out errors say the data supports it.

A router fitted on a routing table large enough to tune chose its feature map by
cross-validation (`_tuning`). A router with no offline data starts with the simplest map (a
seeded random projection) and `CapacityGrowth` keeps its first outcomes (``rows`` of them:
embedding, model, quality, cost, latency); a router fitted on a few rows without tuning keeps
those rows' outcomes (every model's, full information) and goes on growing from them. Every ``every`` outcomes it fits each candidate map on the embeddings seen (PCA, a
cluster map) and scores it, and the map in use, by the cross-validated squared error of each
model's quality predictions on the outcomes seen (bandit feedback: each row teaches only the
model that answered it). When a candidate's error is below the current map's by ``margin``
(relative) and by ``z`` standard errors of the per-outcome differences, the router switches: its statistics are rebuilt from the same outcomes under the new
map, so nothing learned is lost and the predictions move only where the richer map fits better.

The outcomes are kept and checked in the order they are learned, and the choice is a function
of them alone, so every process folding the same events switches at the same outcome; the
outcomes kept are saved with the router and in store snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metallm.exceptions import ConfigurationError
from metallm.learning._features import (
    ClusterFeatures,
    FeatureMap,
    ProjectedFeatures,
    feature_map_from_state,
    quality_dimension,
    reading_prompt_length,
    reads_prompt_length,
)
from metallm.learning._tuning import describe, fold_splits

__all__ = ["GROWTH_CANDIDATES", "CapacityGrowth", "Growth"]

GROWTH_CANDIDATES: tuple[FeatureMap, ...] = (
    ProjectedFeatures(128, 1.0),
    ClusterFeatures(32, 0.05, 3.0, 10.0, dims=128),
)
"""What a cold router may grow into: PCA of the prompts seen, then soft clusters of them."""


@dataclass(frozen=True)
class Growth:
    """One check: after how many outcomes, each map's held-out error, and what was chosen.

    Args:
        at: Outcomes kept when it checked.
        errors: Each map's cross-validated mean squared error of quality.
        chosen: The map switched to (None: the one in use stayed).
    """

    at: int
    errors: dict[str, float]
    """Cross-validated mean squared error of quality per map (the one in use first, marked)."""
    chosen: str | None
    """The map switched to (None: the current one stayed)."""


@dataclass(eq=False)
class CapacityGrowth:
    """Keep a cold router's first outcomes and switch to a richer feature map when they support it.

    Args:
        every: Outcomes between two checks.
        rows: Outcomes kept (the checks stop once they are all in).
        margin: How much lower (relative) a candidate's held-out error must be to switch.
        z: And by how many standard errors of the per-outcome differences (the data must
            support the richer map, not a lucky split).
        candidates: The maps to grow into (each fitted on the prompts seen).
        folds: Cross-validation folds.
        seed: The folds' and the maps' seed.

    >>> growth = CapacityGrowth(every=100, rows=1000)
    >>> growth.due  # nothing kept yet
    False
    """

    every: int = 500
    rows: int = 4_000
    margin: float = 0.005
    z: float = 1.0
    candidates: Sequence[FeatureMap] = GROWTH_CANDIDATES
    folds: int = 5
    seed: int = 0
    n: int = 0
    """Outcomes kept."""
    room: int = 0
    """Outcomes it keeps in all: ``rows``, plus a fit's outcomes when it grows on from one
    (set by `restart` and `start_from`)."""
    stopped: str | None = None
    """Why the checks stopped (None: still growing): the rows are in, or something else shaped
    the statistics (a fit, a warm start, a drift alarm, a discount) that the kept rows cannot
    rebuild."""
    checks: list[Growth] = field(default_factory=list)
    _X: np.ndarray | None = field(default=None, repr=False)
    _arms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _Y: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)), repr=False)

    def __post_init__(self) -> None:
        if self.every < 1 or self.rows < self.every:
            raise ConfigurationError(
                f"CapacityGrowth needs every >= 1 and rows >= every, got {self.every}, {self.rows}"
            )
        if not (math.isfinite(self.margin) and 0.0 <= self.margin < 1.0):
            raise ConfigurationError(f"CapacityGrowth margin must be in [0, 1), got {self.margin}")
        if not (math.isfinite(self.z) and self.z >= 0.0):
            raise ConfigurationError(f"CapacityGrowth z must be >= 0, got {self.z}")
        if self.folds < 2:
            raise ConfigurationError(f"CapacityGrowth folds must be >= 2, got {self.folds}")
        self.candidates = tuple(self.candidates)
        self.room = max(self.room, self.rows)

    # -- what is kept -------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether it still keeps outcomes and checks."""
        return self.stopped is None

    @property
    def due(self) -> bool:
        """Whether a check falls on the outcome just kept."""
        return self.active and self.n > 0 and self.n % self.every == 0

    def stop(self, why: str) -> None:
        """Stop keeping and checking (the kept rows are dropped).

        Args:
            why: What made the kept rows unable to rebuild the statistics.
        """
        if self.stopped is None:
            self.stopped = why
        self._X, self._arms, self._Y = None, np.zeros(0, np.int64), np.zeros((0, 3))

    @property
    def full(self) -> bool:
        """Whether every outcome it has room for is in (the checks stop)."""
        return self.n >= self.room

    def restart(self) -> None:
        """Start again from nothing (the router forgot what it learned)."""
        self.n, self.stopped, self.checks, self.room = 0, None, [], self.rows
        self._X, self._arms, self._Y = None, np.zeros(0, np.int64), np.zeros((0, 3))

    def start_from(
        self,
        embeddings: np.ndarray,
        quality: np.ndarray,
        cost: np.ndarray,
        latency: np.ndarray | None = None,
    ) -> None:
        """Start again from a fit's rows (every model's outcome), if there are few enough.

        A fit on a few hundred rows is too small to choose a map by cross-validation, so the
        router goes on growing: it keeps those outcomes (one per row and model) and ``rows``
        more online. A fit with more than ``2 * rows`` outcomes stops it instead (the rows are
        better used to tune: ``Router.fit(tune=True)``).

        Args:
            embeddings: (n, dim) the rows' vectors, as the router reads them.
            quality: (n, k) every model's quality.
            cost: (n, k) USD.
            latency: (n, k) seconds, when known.
        """
        self.restart()
        n, k = quality.shape
        if n * k > 2 * self.rows:
            self.stop(f"fitted on {n * k:,} outcomes, more than it keeps (tune to choose the map)")
            return
        self.room = n * k + self.rows
        self._X = np.empty((self.room, embeddings.shape[1]))
        self._arms = np.empty(self.room, np.int64)
        self._Y = np.empty((self.room, 3))
        self._X[: n * k] = np.repeat(embeddings, k, axis=0)
        self._arms[: n * k] = np.tile(np.arange(k), n)
        self._Y[: n * k, 0], self._Y[: n * k, 1] = quality.ravel(), cost.ravel()
        self._Y[: n * k, 2] = np.nan if latency is None else np.asarray(latency).ravel()
        self.n = n * k

    def keep(
        self, embedding: np.ndarray, arm: int, quality: float, cost: float, latency: float | None
    ) -> None:
        """Keep one outcome (while there is room).

        Args:
            embedding: (dim,) the query's vector, as the router reads it.
            arm: The model that answered.
            quality: Its quality.
            cost: USD.
            latency: Seconds (None: unknown).
        """
        if not self.active or self.full:
            return
        if self._X is None:
            self._X = np.empty((self.room, embedding.shape[0]))
            self._arms = np.empty(self.room, np.int64)
            self._Y = np.empty((self.room, 3))
        self._X[self.n] = embedding
        self._arms[self.n] = arm
        self._Y[self.n] = quality, cost, np.nan if latency is None else latency
        self.n += 1

    def regrade(self, arm: int, embedding: np.ndarray, old: float, new: float) -> None:
        """A later grade replaced a quality already learned: the kept row takes it too.

        Args:
            arm: The model that answered.
            embedding: The query's vector.
            old: The quality learned before.
            new: The quality that replaces it.
        """
        if not self.active or self._X is None:
            return
        n = self.n
        match = np.flatnonzero(
            (self._arms[:n] == arm)
            & (self._Y[:n, 0] == old)
            & np.all(self._X[:n] == embedding, axis=1)
        )
        if match.size:
            self._Y[match[0], 0] = new

    def kept(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The outcomes kept: vectors (n, dim), models (n,), quality / cost / latency (n, 3)."""
        if self._X is None:
            return np.zeros((0, 0)), self._arms[:0], self._Y[:0]
        return self._X[: self.n], self._arms[: self.n], self._Y[: self.n]

    # -- choosing -------------------------------------------------------------------------
    def check(self, current: FeatureMap, n_arms: int) -> FeatureMap | None:
        """Score the current map and each candidate on the kept outcomes; the map to switch to.

        Args:
            current: The map in use.
            n_arms: The models.

        Returns:
            A fitted candidate whose held-out error is lower by ``margin`` (None: stay).
        """
        X, arms, Y = self.kept()
        wrap = reads_prompt_length(current)
        fitted: list[FeatureMap] = []
        for candidate in self.candidates:
            try:
                fitted.append(
                    (reading_prompt_length(candidate) if wrap else candidate).fit(X, seed=self.seed)
                )
            except ConfigurationError:  # e.g. fewer distinct prompts than the map's clusters
                continue
        if not fitted:
            return None
        maps = [current, *fitted]
        squared = [
            _held_out_errors(m, X, arms, Y[:, 0], n_arms, self.folds, self.seed) for m in maps
        ]
        errors = [float(e.mean()) for e in squared]
        best = int(np.argmin(errors[1:])) + 1
        gain = squared[0] - squared[best]  # per outcome: how much better the candidate predicts
        significant = gain.mean() > self.z * gain.std(ddof=1) / math.sqrt(len(gain))
        chosen = (
            maps[best] if significant and errors[best] < errors[0] * (1.0 - self.margin) else None
        )
        self.checks.append(
            Growth(
                self.n,
                {
                    ("in use: " if i == 0 else "") + describe(m): float(e)
                    for i, (m, e) in enumerate(zip(maps, errors, strict=True))
                },
                None if chosen is None else describe(chosen),
            )
        )
        return chosen

    # -- saving ---------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Its settings and checks (header) and the kept outcomes (arrays)."""
        candidates = [candidate.to_state()[0] for candidate in self.candidates]
        header = {
            "every": self.every,
            "rows": self.rows,
            "margin": self.margin,
            "z": self.z,
            "folds": self.folds,
            "seed": self.seed,
            "n": self.n,
            "room": self.room,
            "stopped": self.stopped,
            "candidates": candidates,
            "checks": [{"at": c.at, "errors": c.errors, "chosen": c.chosen} for c in self.checks],
        }
        X, arms, Y = self.kept()
        arrays = {} if self._X is None else {"growth_X": X, "growth_arms": arms, "growth_Y": Y}
        return header, arrays

    @classmethod
    def from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> CapacityGrowth:
        """A growth saved by `to_state`; ValueError says what is wrong with it.

        Args:
            header: Its settings and checks.
            arrays: The kept outcomes.
        """
        try:
            growth = cls(
                every=int(header["every"]),
                rows=int(header["rows"]),
                margin=float(header["margin"]),
                z=float(header.get("z", 1.0)),
                candidates=tuple(feature_map_from_state(c, {}) for c in header["candidates"]),
                folds=int(header["folds"]),
                seed=int(header["seed"]),
            )
            n, stopped = int(header["n"]), header["stopped"]
            growth.room = max(int(header.get("room", growth.rows)), n)
            checks = [
                Growth(int(c["at"]), dict(c["errors"]), c["chosen"]) for c in header["checks"]
            ]
        except (KeyError, TypeError, ValueError, ConfigurationError) as e:
            raise ValueError(f"the capacity growth's settings are invalid ({e})") from e
        growth.checks = checks
        if stopped is not None:
            growth.stop(str(stopped))
            growth.n = n
            return growth
        if n:
            X, arms, Y = (arrays.get(k) for k in ("growth_X", "growth_arms", "growth_Y"))
            if X is None or arms is None or Y is None:
                raise ValueError("the capacity growth's kept outcomes are missing")
            if X.ndim != 2 or len(X) != n or arms.shape != (n,) or Y.shape != (n, 3):
                raise ValueError(f"the capacity growth's arrays do not hold {n} outcomes")
            growth._X = np.empty((growth.room, X.shape[1]))
            growth._arms = np.empty(growth.room, np.int64)
            growth._Y = np.empty((growth.room, 3))
            growth._X[:n], growth._arms[:n], growth._Y[:n] = X, arms, Y
            growth.n = n
        return growth


def _held_out_errors(
    features: FeatureMap,
    X: np.ndarray,
    arms: np.ndarray,
    quality: np.ndarray,
    n_arms: int,
    folds: int,
    seed: int,
) -> np.ndarray:
    """Per row: the squared error of its model's ridge prediction of its quality, out of fold."""
    F = features.transform(X)
    d = quality_dimension(features, X.shape[1])
    F = F[:, :d]
    prior = np.diag(features.penalties(X.shape[1])[:d])
    squared = np.zeros(len(X))
    for train, test in fold_splits(len(X), folds, seed):
        for arm in range(n_arms):
            rows, held = train[arms[train] == arm], test[arms[test] == arm]
            if held.size == 0:
                continue
            Fa = F[rows]
            theta = np.linalg.solve(prior + Fa.T @ Fa, Fa.T @ quality[rows])
            squared[held] = (F[held] @ theta - quality[held]) ** 2
    return squared
