"""Arm-selection policies: how predicted value and uncertainty become a choice.

Each policy is a small frozen config, validated once. All policies share the same
learned ridge statistics; they differ only in how they turn predictions into a pick,
so switching policy never throws away what was learned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from metallm.exceptions import ConfigurationError

__all__ = ["EpsilonGreedy", "LinUCB", "Policy", "RandomPolicy", "policy_from_dict"]

_TIE_TOLERANCE = 1e-12


@runtime_checkable
class Policy(Protocol):
    """What the router needs from a policy."""

    @property
    def l2(self) -> float:
        """Ridge regularisation of the per-arm models (the prior precision)."""
        ...

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """Exploration bonus added to each arm's value, shape like ``width``."""
        ...

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Index of the chosen arm per row of ``scores`` (n, k); -inf marks excluded arms."""
        ...

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's ``scores`` (a list of k floats; -inf marks excluded arms).

        The single-decision fast path, where plain floats beat numpy calls.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        ...


def _check_l2(l2: float) -> None:
    if not (math.isfinite(l2) and l2 > 0):
        raise ConfigurationError(f"l2 must be a positive finite number, got {l2!r}")


def argmax_one(scores: list[float], rng: np.random.Generator) -> int:
    """Argmax of a list of floats; an exact tie is broken uniformly at random."""
    top = max(scores)
    floor = top - _TIE_TOLERANCE
    if len(scores) == 1 or sorted(scores)[-2] < floor:  # no tie: the common case, all in C
        return scores.index(top)
    tied = [i for i, v in enumerate(scores) if v >= floor]
    return tied[int(rng.integers(len(tied)))]


def argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of a 2-d array, breaking exact ties uniformly at random."""
    chosen = scores.argmax(axis=1)
    best = scores[np.arange(scores.shape[0]), chosen][:, None]
    tied = scores >= best - _TIE_TOLERANCE
    if tied.sum() == scores.shape[0]:  # no ties anywhere: the common case, no random draws
        return np.asarray(chosen)
    # A random key among the tied entries only; the largest key wins.
    keys = np.where(tied, rng.random(scores.shape), -1.0)
    return np.asarray(keys.argmax(axis=1))


@dataclass(frozen=True)
class LinUCB:
    """Upper confidence bound on a linear model: pick ``argmax value + alpha * width``.

    ``alpha = 0`` is the greedy policy. Larger ``alpha`` explores more.

    >>> LinUCB(alpha=0.5).bonus(np.array([[1.0, 2.0]])).tolist()
    [[0.5, 1.0]]
    """

    alpha: float = 1.0
    """With the default 128-d features, 1.0 beat greedy and random in online replays of both
    shared routing tables (docs/benchmarks.md); smaller values stop exploring too early."""
    l2: float = 1.0
    name: ClassVar[str] = "LinUCB"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ConfigurationError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        _check_l2(self.l2)

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """Exploration bonus per arm, shaped like ``width``."""
        return self.alpha * width

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm per row of ``scores`` (-inf marks excluded arms)."""
        return argmax_random_ties(scores, rng)

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's scores (-inf marks excluded arms)."""
        return argmax_one(scores, rng)

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class EpsilonGreedy:
    """Greedy on the predicted value, except a uniformly random arm with probability ``epsilon``."""

    epsilon: float = 0.1
    l2: float = 1.0
    name: ClassVar[str] = "EpsilonGreedy"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and 0.0 <= self.epsilon <= 1.0):
            raise ConfigurationError(f"epsilon must be in [0, 1], got {self.epsilon!r}")
        _check_l2(self.l2)

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """Exploration bonus per arm, shaped like ``width``."""
        return np.zeros_like(width)

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm per row of ``scores`` (-inf marks excluded arms)."""
        greedy = argmax_random_ties(scores, rng)
        allowed = np.isfinite(scores)
        explore = rng.random(scores.shape[0]) < self.epsilon
        random_pick = argmax_random_ties(np.where(allowed, 0.0, -np.inf), rng)
        return np.where(explore, random_pick, greedy)

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's scores (-inf marks excluded arms)."""
        return int(self.choose(np.array([scores]), rng)[0])

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class RandomPolicy:
    """A uniformly random allowed arm: the floor every learned policy must beat."""

    l2: float = 1.0
    name: ClassVar[str] = "RandomPolicy"

    def __post_init__(self) -> None:
        _check_l2(self.l2)

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """Exploration bonus per arm, shaped like ``width``."""
        return np.zeros_like(width)

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm per row of ``scores`` (-inf marks excluded arms)."""
        return argmax_random_ties(np.where(np.isfinite(scores), 0.0, -np.inf), rng)

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's scores (-inf marks excluded arms)."""
        return int(rng.choice([i for i, v in enumerate(scores) if math.isfinite(v)]))

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        return {"name": self.name, **asdict(self)}


_POLICIES: dict[str, type[LinUCB] | type[EpsilonGreedy] | type[RandomPolicy]] = {
    cls.name: cls for cls in (LinUCB, EpsilonGreedy, RandomPolicy)
}


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """Rebuild a policy from :meth:`Policy.to_dict` output."""
    params = dict(data)
    name = params.pop("name", None)
    cls = _POLICIES.get(str(name))
    if cls is None:
        raise ConfigurationError(f"unknown policy {name!r}; known: {sorted(_POLICIES)}")
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigurationError(f"bad parameters for policy {name}: {params}") from e
