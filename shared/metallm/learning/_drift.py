"""Noticing that a model changed: a two-sided CUSUM on each model's prediction errors.

A provider can replace a model's snapshot without a word, and the model the router trusts
most gets worse (or a model it gave up on gets better). Plain ridge statistics weigh a model's
whole past, so the more history, the slower the router reacts. `DriftDetector` watches, per
model, the error of the prediction made *before* each outcome is learned (the prequential
residual ``quality - predicted``): while nothing changes it hovers about zero; after a change it
leans one way. Page's CUSUM sums that lean, minus an allowance, on each side; when a sum passes
the threshold the model's past is moved by the change the sum measured (the mean error since
the sum last stood at zero: every past outcome re-read at the new level, so the model's
prediction follows at once) and shrunk to a few outcomes' worth (its uncertainty grows back, so
the new outcomes decide). Outcomes are on the quality scale, 0 to 1.

Its state (the sums, the outcomes watched, what was forgotten) is saved with the router and
folded identically by every process that folds the same events, like the statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metallm.exceptions import ConfigurationError

__all__ = ["DriftDetector"]


@dataclass(eq=False)
class DriftDetector:
    """Per model, Page's two-sided CUSUM on the quality prediction's errors; an alarm forgets.

    Args:
        shift: The allowance: the smallest lasting change of a model's mean quality worth
            reacting to is about twice this (quality scale, 0 to 1).
        threshold: The sum that raises an alarm. Larger: fewer false alarms, slower reaction
            (about ``threshold / (change - shift)`` of the model's outcomes after a change).
        keep: Outcomes' worth of its past a model keeps after an alarm.
        warmup: A model's outcomes before its errors are watched (and again after an alarm):
            a model that has seen little predicts with a learning bias, not a change.

    >>> detector = DriftDetector(shift=0.1, threshold=2.0, warmup=0)
    >>> detector.start(1)
    >>> [detector.observe(0, -0.6) for _ in range(4)]  # the model does 0.6 worse than predicted
    [None, None, None, -0.6]
    """

    shift: float = 0.1
    threshold: float = 12.0
    keep: float = 20.0
    warmup: int = 30
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    """Per model: the CUSUM of errors above the allowance (the model got better)."""
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    """Per model: the CUSUM of errors below it (the model got worse)."""
    watched: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    """Per model: outcomes since it started or since its last alarm."""
    upper_run: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    """Per model: outcomes since ``upper`` last stood at zero (the change's age, if it is one)."""
    lower_run: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    """Per model: outcomes since ``lower`` last stood at zero."""
    alarms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    """Per model: the alarms raised."""
    forgotten: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    """Per model: the outcomes' worth shrunk away by alarms (added back where outcomes are counted)."""

    def __post_init__(self) -> None:
        for name in ("shift", "threshold", "keep"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"DriftDetector {name} must be positive, got {value!r}")
        if self.warmup < 0:
            raise ConfigurationError(f"DriftDetector warmup must be >= 0, got {self.warmup!r}")

    def start(self, n_arms: int) -> None:
        """Watch ``n_arms`` models from scratch (a fit, a reset).

        Args:
            n_arms: The models.
        """
        self.upper = np.zeros(n_arms)
        self.lower = np.zeros(n_arms)
        self.watched = np.zeros(n_arms, np.int64)
        self.upper_run = np.zeros(n_arms, np.int64)
        self.lower_run = np.zeros(n_arms, np.int64)
        self.alarms = np.zeros(n_arms, np.int64)
        self.forgotten = np.zeros(n_arms)

    def add_arm(self) -> None:
        """Watch one more model (its warm-up starts with its first outcome)."""
        self.upper = np.append(self.upper, 0.0)
        self.lower = np.append(self.lower, 0.0)
        self.watched = np.append(self.watched, np.int64(0))
        self.upper_run = np.append(self.upper_run, np.int64(0))
        self.lower_run = np.append(self.lower_run, np.int64(0))
        self.alarms = np.append(self.alarms, np.int64(0))
        self.forgotten = np.append(self.forgotten, 0.0)

    def observe(self, arm: int, error: float) -> float | None:
        """Add one prediction error of ``arm``; on an alarm, the change it measured.

        Args:
            arm: The model.
            error: Quality observed minus quality predicted before learning it.

        Returns:
            None while nothing changed; on an alarm (the sums restart), the mean error since
            the alarming sum last stood at zero: how much the model's quality moved.
        """
        self.watched[arm] += 1
        if self.watched[arm] <= self.warmup:
            return None
        self.upper[arm] = max(0.0, self.upper[arm] + error - self.shift)
        self.lower[arm] = max(0.0, self.lower[arm] - error - self.shift)
        self.upper_run[arm] = self.upper_run[arm] + 1 if self.upper[arm] > 0 else 0
        self.lower_run[arm] = self.lower_run[arm] + 1 if self.lower[arm] > 0 else 0
        if self.upper[arm] >= self.threshold:
            change = float(self.upper[arm] / self.upper_run[arm] + self.shift)
        elif self.lower[arm] >= self.threshold:
            change = -float(self.lower[arm] / self.lower_run[arm] + self.shift)
        else:
            return None
        self.upper[arm] = self.lower[arm] = 0.0
        self.upper_run[arm] = self.lower_run[arm] = 0
        self.watched[arm] = 0
        self.alarms[arm] += 1
        return change

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The settings (header) and the sums (arrays) to save."""
        header = {
            "shift": self.shift,
            "threshold": self.threshold,
            "keep": self.keep,
            "warmup": self.warmup,
        }
        arrays = {
            "drift_upper": self.upper.copy(),
            "drift_lower": self.lower.copy(),
            "drift_watched": self.watched.copy(),
            "drift_upper_run": self.upper_run.copy(),
            "drift_lower_run": self.lower_run.copy(),
            "drift_alarms": self.alarms.copy(),
            "drift_forgotten": self.forgotten.copy(),
        }
        return header, arrays

    @classmethod
    def from_state(
        cls, header: dict[str, Any], arrays: dict[str, np.ndarray], n_arms: int
    ) -> DriftDetector:
        """A detector saved by `to_state`; ValueError says what is wrong with it.

        Args:
            header: Its settings.
            arrays: Its sums (absent: a detector that starts watching now).
            n_arms: The models.
        """
        try:
            detector = cls(
                shift=float(header["shift"]),
                threshold=float(header["threshold"]),
                keep=float(header["keep"]),
                warmup=int(header["warmup"]),
            )
        except (KeyError, TypeError, ValueError, ConfigurationError) as e:
            raise ValueError(f"the drift detector's settings are invalid ({e})") from e
        detector.start(n_arms)
        for name in ("upper", "lower", "watched", "upper_run", "lower_run", "alarms", "forgotten"):
            saved = arrays.get(f"drift_{name}")
            if saved is None:
                continue
            if saved.shape != (n_arms,) or not np.isfinite(saved).all() or (saved < 0).any():
                raise ValueError(f"the array drift_{name} does not fit {n_arms} models")
            getattr(detector, name)[:] = saved
        return detector
