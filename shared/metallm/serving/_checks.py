"""Checks of what callers pass to a router: queries, embeddings, quality and cost values."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from metallm.exceptions import (
    ConfigurationError,
    InvalidFeedbackError,
    InvalidInputError,
    UnknownDecisionError,
)

Query = str | np.ndarray | Sequence[float]
"""One query: its text, or its embedding."""

MAX_ABS_ELEMENT = 1e6
"""The largest magnitude an embedding's element may have (a unit vector's are at most 1; the
prompt-length feature of a billion-character prompt is 1e6). Larger finite values would make
the learned statistics overflow, so they are refused from callers and from the store's log alike."""
MAX_COST_USD = 1e4
"""The largest cost one call may report (USD); larger values would swamp the cost scale."""
MAX_LATENCY_S = 1e6
"""The largest latency one call may report (seconds, about 11.6 days)."""


def as_batch(queries: Any) -> Any:
    if isinstance(queries, str):
        return [queries]
    if isinstance(queries, np.ndarray) and queries.ndim == 1:
        return queries[None, :]
    return queries


def one_embedding(query: np.ndarray | Sequence[float]) -> np.ndarray:
    """One embedding (dim,), checked, in an array of our own (the caller may reuse theirs)."""
    embedding = np.array(query, dtype=np.float64)
    if embedding.ndim == 2 and embedding.shape[0] == 1:
        embedding = embedding[0]
    if embedding.ndim != 1 or embedding.shape[0] == 0:
        raise InvalidInputError(
            f"expected one embedding of shape (dim,), got shape {embedding.shape}"
        )
    check_embeddings(embedding)
    return embedding


def vector_problem(values: np.ndarray) -> str | None:
    """Why vectors cannot be learned from (NaN, inf, or an element beyond `MAX_ABS_ELEMENT`).

    One pass in the common case: the sum of squares is finite and small only when every element
    is finite and within the bound; the elements are looked at only when it is not.

    >>> vector_problem(np.array([1e200, 0.0]))
    'its embedding has elements beyond +-1e+06'
    """
    with np.errstate(over="ignore", invalid="ignore"):
        square = float(np.vdot(values, values))
    if square <= MAX_ABS_ELEMENT**2:
        return None
    if not np.isfinite(values).all():
        return "its embedding holds NaN or inf"
    if float(np.abs(values).max()) > MAX_ABS_ELEMENT:
        return f"its embedding has elements beyond +-{MAX_ABS_ELEMENT:g}"
    return None  # many elements near the bound: large, but each within it


def check_embeddings(values: np.ndarray) -> None:
    """`vector_problem` for a caller's vectors, as an `InvalidInputError`."""
    problem = vector_problem(values)
    if problem is None:
        return
    if "NaN" in problem:
        raise InvalidInputError("embeddings contain NaN or inf")
    raise InvalidInputError(
        f"embeddings must have elements within +-{MAX_ABS_ELEMENT:g}: pass normalised vectors"
    )


def number_problem(name: str, value: object, high: float, low: float = 0.0) -> str | None:
    """Why ``value`` is not a number in [low, high] (None when it is).

    >>> number_problem("cost", 1e308, MAX_COST_USD)
    'its cost 1e+308 is not a finite number in [0, 10000]'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return f"its {name} {value!r} is not a number"
    v = float(value)
    if not (math.isfinite(v) and low <= v <= high):
        return f"its {name} {value!r} is not a finite number in [{low:g}, {high:g}]"
    return None


MAX_ID_LENGTH = 256
"""The longest decision or run id metallm accepts (its own are about 40 characters)."""


def check_id(value: object, kind: str) -> str:
    """A decision or run id, or `UnknownDecisionError` (never issued by metallm).

    The error shows the start of a long id only, so a hostile id never floods a log.

    >>> check_id("x" * 300, "decision")
    Traceback (most recent call last):
    ...
    metallm.exceptions.UnknownDecisionError: a decision id of 300 characters ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...') was never issued: metallm's ids are under 256
    """
    if not isinstance(value, str):
        raise UnknownDecisionError(
            f"a {kind} id must be the text metallm returned (decision.id), got {type(value).__name__}"
        )
    if len(value) > MAX_ID_LENGTH:
        raise UnknownDecisionError(
            f"a {kind} id of {len(value)} characters ({value[:40] + '...'!r}) was never issued: "
            f"metallm's ids are under {MAX_ID_LENGTH}"
        )
    return value


def check_cost_weight(p: float) -> float:
    if not (isinstance(p, (int, float)) and math.isfinite(p) and p >= 0):
        raise ConfigurationError(f"cost_weight must be a finite number >= 0, got {p!r}")
    return float(p)


def _is_number(value: object) -> bool:
    """A real number, not a bool and not a string that looks like one ("0.7", True are refused)."""
    if type(value) is float or type(value) is int:  # the common case, without the ABC check
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_quality(quality: float) -> float:
    if not _is_number(quality):
        raise InvalidFeedbackError(
            f"quality must be a number in [0, 1], got {quality!r} ({type(quality).__name__})"
        )
    q = float(quality)
    if not math.isfinite(q) or not 0.0 <= q <= 1.0:
        raise InvalidFeedbackError(f"quality must be a number in [0, 1], got {quality!r}")
    return q


def check_cost(cost: float) -> float:
    if not _is_number(cost):
        raise InvalidFeedbackError(
            f"cost must be a number of USD >= 0, got {cost!r} ({type(cost).__name__})"
        )
    c = float(cost)
    if not math.isfinite(c) or c < 0 or c > MAX_COST_USD:
        raise InvalidFeedbackError(
            f"cost must be a finite number of USD in [0, {MAX_COST_USD:g}] per call, got {cost!r}"
        )
    return c


def check_latency(latency: float) -> float:
    """Seconds a call took: a finite number >= 0."""
    if not _is_number(latency):
        raise InvalidFeedbackError(
            f"latency must be a number of seconds >= 0, got {latency!r} ({type(latency).__name__})"
        )
    value = float(latency)
    if not math.isfinite(value) or value < 0 or value > MAX_LATENCY_S:
        raise InvalidFeedbackError(
            f"latency must be a finite number of seconds in [0, {MAX_LATENCY_S:g}], got {latency!r}"
        )
    return value


def check_latency_weight(weight: float) -> float:
    if not (
        isinstance(weight, (int, float))
        and not isinstance(weight, bool)
        and math.isfinite(weight)
        and weight >= 0
    ):
        raise ConfigurationError(f"latency_weight must be a finite number >= 0, got {weight!r}")
    return float(weight)


def check_matrix(values: Any, name: str, n: int, k: int) -> np.ndarray:
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidFeedbackError(f"{name} must be numeric: {e}") from e
    if matrix.shape != (n, k):
        raise InvalidFeedbackError(
            f"{name} must have shape ({n}, {k}) (queries x models), got {matrix.shape}"
        )
    return matrix


def check_vector(values: Any, name: str, n: int) -> np.ndarray:
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidFeedbackError(f"{name} must be numeric: {e}") from e
    if vector.shape != (n,):
        raise InvalidFeedbackError(f"{name} must have shape ({n},), got {vector.shape}")
    return vector


def check_quality_array(Q: np.ndarray) -> None:
    bad = ~np.isfinite(Q) | (Q < 0) | (Q > 1)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(f"quality must be in [0, 1]; found {float(Q[pos])!r} at {pos}")


def check_latency_array(L: np.ndarray) -> None:
    bad = ~np.isfinite(L) | (L < 0) | (L > MAX_LATENCY_S)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(
            f"latency must be finite and >= 0 seconds; found {float(L[pos])!r} at {pos}"
        )


def check_cost_array(C: np.ndarray) -> None:
    bad = ~np.isfinite(C) | (C < 0) | (C > MAX_COST_USD)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(
            f"cost must be finite and in [0, {MAX_COST_USD:g}] USD; found {float(C[pos])!r} at {pos}"
        )


def check_part(value: object, kind: type, name: str, example: str) -> None:
    """Refuse an argument that is neither None nor a ``kind`` (e.g. a dict given as a budget).

    Raises:
        ConfigurationError: Saying what was given and an example of what is expected.
    """
    if value is not None and not isinstance(value, kind):
        raise ConfigurationError(
            f"{name} must be a metallm.{kind.__name__} or None, got {type(value).__name__}: "
            f"e.g. {example}"
        )


def check_ttl(seconds: object) -> float:
    """A positive, finite number of seconds (how long a decision waits for its feedback).

    Raises:
        ConfigurationError: Anything else.
    """
    number = (
        float(seconds)
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        else math.nan
    )
    if not (math.isfinite(number) and number > 0):
        raise ConfigurationError(
            f"feedback_ttl must be a positive number of seconds, got {seconds!r}"
        )
    return number
