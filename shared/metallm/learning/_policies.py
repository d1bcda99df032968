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

__all__ = [
    "EpsilonGreedy",
    "LinUCB",
    "Policy",
    "RandomPolicy",
    "SquareCB",
    "mixture_probabilities",
    "round_policy",
    "mixture_probability",
    "policy_from_dict",
]

_TIE_TOLERANCE = 1e-12


@runtime_checkable
class Policy(Protocol):
    """What the router needs from a policy."""

    @property
    def l2(self) -> float:
        """Ridge regularisation of the per-arm models (the prior precision)."""
        ...

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """Exploration bonus added to each arm's value, shape like ``width``.

        Args:
            width: The confidence width of each arm's predicted quality.
        """
        ...

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Index of the chosen arm per row of ``scores``.

        Args:
            scores: (n, k) values; -inf marks excluded arms.
            rng: The randomness of ties and exploration.
        """
        ...

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's ``scores``.

        Args:
            scores: k floats; -inf marks excluded arms.
            rng: The randomness of ties and exploration.

        The single-decision fast path, where plain floats beat numpy calls.
        """
        ...

    def probability_one(self, scores: list[float], chosen: int) -> float:
        """The probability that this policy picks ``chosen`` given ``scores`` (its propensity).

        Args:
            scores: k floats; -inf marks excluded arms.
            chosen: The arm.
        """
        ...

    def probabilities(self, scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """``probability_one`` for each row of ``scores``.

        Args:
            scores: (n, k) values.
            chosen: The chosen arm of each row.
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


def mixture_probability(scores: list[float], chosen: int, explore: float) -> float:
    """The probability of ``chosen`` under "best score, or a random arm w.p. ``explore``".

    Ties for the best share its part equally; -inf marks an arm that is not allowed.

    >>> round(mixture_probability([0.9, 0.5, 0.1], 0, explore=0.3), 6)
    0.8
    >>> round(mixture_probability([0.9, 0.5, -math.inf], 1, explore=0.3), 6)
    0.15
    """
    allowed = [v for v in scores if v != -math.inf]
    if scores[chosen] == -math.inf or not allowed:
        return 0.0
    floor = max(allowed) - _TIE_TOLERANCE
    tied = sum(1 for v in allowed if v >= floor)
    best = (1.0 - explore) / tied if scores[chosen] >= floor else 0.0
    return best + explore / len(allowed)


def mixture_probabilities(scores: np.ndarray, chosen: np.ndarray, explore: float) -> np.ndarray:
    """`mixture_probability` for each row of ``scores`` (n, k) and its ``chosen`` arm."""
    rows = np.arange(scores.shape[0])
    allowed = np.isfinite(scores)
    top = np.where(allowed, scores, -np.inf).max(axis=1, keepdims=True)
    tied = (scores >= top - _TIE_TOLERANCE) & allowed
    picked_best = tied[rows, chosen]
    best = np.where(picked_best, (1.0 - explore) / np.maximum(tied.sum(axis=1), 1), 0.0)
    out: np.ndarray = np.where(
        allowed[rows, chosen], best + explore / np.maximum(allowed.sum(axis=1), 1), 0.0
    )
    return out


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

    Args:
        alpha: The weight of the confidence width.
        l2: The ridge penalty of the per-model models.
        explore: The share of queries routed uniformly at random.
        discount: How much older outcomes weigh (1: all alike; below 1: forget slowly).

    >>> LinUCB(alpha=0.5).bonus(np.array([[1.0, 2.0]])).tolist()
    [[0.5, 1.0]]
    """

    alpha: float = 1.0
    """With the default 128-d features, 1.0 beat greedy and random in online replays of both
    shared routing tables (docs/benchmarks.md); smaller values stop exploring too early."""
    l2: float = 1.0
    explore: float = 0.0
    """Share of queries routed to a uniformly random allowed arm instead of the UCB choice. Above
    zero every arm keeps a propensity of at least ``explore / k``, which off-policy evaluation of
    other policies needs (docs/benchmarks.md); zero is plain, deterministic UCB."""
    discount: float = 1.0
    """Forget old outcomes: at each update (of any model) what every model learned before is
    multiplied by ``discount`` (the prior is kept), so an outcome ``n`` updates old weighs
    ``discount**n`` and the half-life is ``ln 0.5 / ln discount`` updates (0.99: 69; 0.999:
    693). A model not chosen for a while forgets too: its uncertainty grows back and it is tried
    again, so a model that improved is found. 1 (the default) never forgets. Each update then
    refactors about one model's matrix (O(d^3)), the others catching up every ``k`` updates."""
    name: ClassVar[str] = "LinUCB"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ConfigurationError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        if not (math.isfinite(self.explore) and 0.0 <= self.explore <= 1.0):
            raise ConfigurationError(f"explore must be in [0, 1], got {self.explore!r}")
        if not (math.isfinite(self.discount) and 0.0 < self.discount <= 1.0):
            raise ConfigurationError(f"discount must be in (0, 1], got {self.discount!r}")
        _check_l2(self.l2)

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """Exploration bonus per arm, shaped like ``width``."""
        return self.alpha * width

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm per row of ``scores`` (-inf marks excluded arms)."""
        best = argmax_random_ties(scores, rng)
        if self.explore == 0.0:
            return best
        explore = rng.random(scores.shape[0]) < self.explore
        random_pick = argmax_random_ties(np.where(np.isfinite(scores), 0.0, -np.inf), rng)
        return np.where(explore, random_pick, best)

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's scores (-inf marks excluded arms)."""
        if self.explore and rng.random() < self.explore:
            return int(rng.choice([i for i, v in enumerate(scores) if v != -math.inf]))
        return argmax_one(scores, rng)

    def probability_one(self, scores: list[float], chosen: int) -> float:
        """The probability of picking ``chosen`` (ties share the UCB part)."""
        return mixture_probability(scores, chosen, self.explore)

    def probabilities(self, scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """`probability_one` for each row of ``scores`` (n, k)."""
        return mixture_probabilities(scores, chosen, self.explore)

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class EpsilonGreedy:
    """Greedy on the predicted value, except a uniformly random arm with probability ``epsilon``.

    Args:
        epsilon: The share of queries routed uniformly at random.
        l2: The ridge penalty of the per-model models.
    """

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

    def probability_one(self, scores: list[float], chosen: int) -> float:
        """The probability of picking ``chosen``: the greedy share, plus its share of ``epsilon``."""
        return mixture_probability(scores, chosen, self.epsilon)

    def probabilities(self, scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """`probability_one` for each row of ``scores`` (n, k)."""
        return mixture_probabilities(scores, chosen, self.epsilon)

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class RandomPolicy:
    """A uniformly random allowed arm: the floor every learned policy must beat.

    Args:
        l2: The ridge penalty of the per-model models (they still learn).
    """

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

    def probability_one(self, scores: list[float], chosen: int) -> float:
        """One over the number of allowed arms."""
        return mixture_probability(scores, chosen, 1.0)

    def probabilities(self, scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """`probability_one` for each row of ``scores`` (n, k)."""
        return mixture_probabilities(scores, chosen, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class SquareCB:
    """SquareCB (Foster and Rakhlin 2020; Vowpal Wabbit's ``--squarecb``): explore by the gaps.

    Each arm ``a`` other than the best-scored one is picked with probability
    ``1 / (K + gamma * (best - score_a))`` and the best one takes the rest, with
    ``gamma = gamma_scale * t ** gamma_exponent`` after ``t`` learned outcomes (VW's defaults
    10 and 0.5): arms predicted far worse are rarely tried, close ones often, and every choice
    has an exact propensity. The best of tied arms is the first of them, so the distribution is
    a function of the scores alone. ``floor`` mixes in a uniform choice so that every allowed
    arm keeps at least that probability (what off-policy evaluation of other policies needs;
    when ``floor * K > 1``, uniform).

    Args:
        gamma_scale: ``gamma``'s scale.
        gamma_exponent: ``gamma``'s growth with the outcomes learned.
        l2: The ridge penalty of the per-model models.
        floor: The least probability of any model.
        gamma: A fixed ``gamma`` (None: it grows as above).

    >>> policy = SquareCB().at(0)          # gamma = 10 before any outcome
    >>> round(policy.probability_one([0.9, 0.5], 1), 4)   # 1 / (2 + 10 * 0.4)
    0.1667
    """

    gamma_scale: float = 10.0
    gamma_exponent: float = 0.5
    l2: float = 1.0
    floor: float = 0.0
    gamma: float | None = None
    """The exploration scale now; set by `at` from the number of learned outcomes."""
    name: ClassVar[str] = "SquareCB"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma_scale) and self.gamma_scale > 0):
            raise ConfigurationError(f"gamma_scale must be positive, got {self.gamma_scale!r}")
        if not (math.isfinite(self.gamma_exponent) and self.gamma_exponent >= 0):
            raise ConfigurationError(
                f"gamma_exponent must be a finite number >= 0, got {self.gamma_exponent!r}"
            )
        if not (math.isfinite(self.floor) and 0.0 <= self.floor <= 1.0):
            raise ConfigurationError(f"floor must be in [0, 1], got {self.floor!r}")
        _check_l2(self.l2)

    def at(self, updates: int) -> SquareCB:
        """This policy after ``updates`` learned outcomes (its gamma for that round).

        Args:
            updates: The outcomes learned so far.
        """
        gamma = self.gamma_scale * (updates + 1) ** self.gamma_exponent
        return (
            self
            if gamma == self.gamma
            else SquareCB(self.gamma_scale, self.gamma_exponent, self.l2, self.floor, gamma)
        )

    def _gamma(self) -> float:
        return self.gamma if self.gamma is not None else self.gamma_scale

    def bonus(self, width: np.ndarray) -> np.ndarray:
        """No bonus: SquareCB explores through its choice probabilities."""
        return np.zeros_like(width)

    def distribution(self, scores: np.ndarray) -> np.ndarray:
        """The probability of each arm per row of ``scores`` (n, k); -inf arms get 0.

        Args:
            scores: (n, k) values; -inf marks excluded arms.
        """
        allowed = np.isfinite(scores)
        k = np.maximum(allowed.sum(axis=1, keepdims=True), 1)
        masked = np.where(allowed, scores, -np.inf)
        best = masked.argmax(axis=1)
        rows = np.arange(scores.shape[0])
        gap = np.where(allowed, masked[rows, best][:, None] - np.where(allowed, scores, 0.0), 0.0)
        p = np.where(allowed, 1.0 / (k + self._gamma() * gap), 0.0)
        p[rows, best] = 0.0
        p[rows, best] = 1.0 - p.sum(axis=1)
        if self.floor:
            share = np.minimum(self.floor * k, 1.0)
            p = np.where(allowed, (1.0 - share) * p + share / k, 0.0)
        return p

    def _one(self, scores: list[float]) -> list[float]:
        allowed = [v for v in scores if v != -math.inf]
        k, top = len(allowed), max(allowed)
        best = scores.index(top)
        gamma = self._gamma()
        p = [0.0 if v == -math.inf or i == best else 1.0 / (k + gamma * (top - v))
             for i, v in enumerate(scores)]  # fmt: skip
        p[best] = 1.0 - sum(p)
        if self.floor:
            share = min(self.floor * k, 1.0)
            p = [0.0 if v == -math.inf else (1.0 - share) * q + share / k
                 for q, v in zip(p, scores)]  # fmt: skip
        return p

    def choose(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm per row of ``scores``, drawn from `distribution`."""
        cumulative = np.cumsum(self.distribution(scores), axis=1)
        draws = rng.random((scores.shape[0], 1)) * cumulative[:, -1:]
        chosen = (cumulative <= draws).sum(axis=1)
        return np.asarray(np.minimum(chosen, scores.shape[1] - 1))

    def choose_one(self, scores: list[float], rng: np.random.Generator) -> int:
        """The chosen arm for one query's scores, drawn from its distribution."""
        p = self._one(scores)
        draw, total = rng.random(), 0.0
        for i, v in enumerate(p):
            total += v
            if draw < total and v > 0:
                return i
        return max(range(len(p)), key=p.__getitem__)

    def probability_one(self, scores: list[float], chosen: int) -> float:
        """The probability of picking ``chosen`` given ``scores``."""
        return self._one(scores)[chosen]

    def probabilities(self, scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """`probability_one` for each row of ``scores`` (n, k)."""
        out: np.ndarray = self.distribution(scores)[np.arange(scores.shape[0]), chosen]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Name and parameters, for the saved state's header (gamma follows the data)."""
        return {
            "name": self.name,
            "gamma_scale": self.gamma_scale,
            "gamma_exponent": self.gamma_exponent,
            "l2": self.l2,
            "floor": self.floor,
        }


_POLICIES: dict[str, type[LinUCB] | type[EpsilonGreedy] | type[RandomPolicy] | type[SquareCB]] = {
    cls.name: cls for cls in (LinUCB, EpsilonGreedy, RandomPolicy, SquareCB)
}


def round_policy(policy: Policy, updates: int) -> Policy:
    """``policy`` as it chooses after ``updates`` learned outcomes (most policies never change)."""
    at = getattr(policy, "at", None)
    return policy if at is None else at(updates)


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """Rebuild a policy from `Policy.to_dict` output.

    Args:
        data: What ``to_dict`` wrote.
    """
    params = dict(data)
    name = params.pop("name", None)
    cls = _POLICIES.get(str(name))
    if cls is None:
        raise ConfigurationError(f"unknown policy {name!r}; known: {sorted(_POLICIES)}")
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigurationError(f"bad parameters for policy {name}: {params}") from e
