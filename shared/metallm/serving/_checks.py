"""Checks of what callers pass to a router: queries, embeddings, quality and cost values."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from metallm.exceptions import ConfigurationError, InvalidFeedbackError, InvalidInputError

Query = str | np.ndarray | Sequence[float]
"""One query: its text, or its embedding."""


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
    if not math.isfinite(np.dot(embedding, embedding)):  # one call; NaN and inf both reach it
        raise InvalidInputError("embeddings contain NaN or inf")
    return embedding


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
    if not math.isfinite(c) or c < 0:
        raise InvalidFeedbackError(f"cost must be a finite number of USD >= 0, got {cost!r}")
    return c


def check_latency(latency: float) -> float:
    """Seconds a call took: a finite number >= 0."""
    if not _is_number(latency):
        raise InvalidFeedbackError(
            f"latency must be a number of seconds >= 0, got {latency!r} ({type(latency).__name__})"
        )
    value = float(latency)
    if not math.isfinite(value) or value < 0:
        raise InvalidFeedbackError(
            f"latency must be a finite number of seconds >= 0, got {latency!r}"
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
    bad = ~np.isfinite(L) | (L < 0)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(
            f"latency must be finite and >= 0 seconds; found {float(L[pos])!r} at {pos}"
        )


def check_cost_array(C: np.ndarray) -> None:
    bad = ~np.isfinite(C) | (C < 0)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidFeedbackError(
            f"cost must be finite and >= 0 USD; found {float(C[pos])!r} at {pos}"
        )
