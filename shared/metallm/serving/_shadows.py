"""Shadow routers: other routers that see every query and log what they would have chosen.

A shadow never calls a model. For each live decision it scores the same vector and logs its
choice and its whole choice distribution (the probability it gives each model), so
`metallm.evaluation._offpolicy` can estimate, from the live log, what the shadow would have
delivered (``metallm evaluate --log``). Shadows learn from every outcome the live router learns
(the chosen model's, as the live router does), so a shadow at another ``p`` is "the live
router at that ``p``". A shadow is promoted by passing it as the live router.

The log entry is JSON text (stores keep it without reading it)::

    {"cheaper": {"arm": "mini", "p": {"mini": 1.0}}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from metallm.exceptions import ConfigurationError
from metallm.serving._learner import Learner

__all__ = ["ShadowChoice", "check_shadows", "choose_many", "choose_one", "parse_shadows"]


class ShadowChoice(NamedTuple):
    """What a shadow would have chosen for one query, and with what probabilities."""

    arm: str
    probabilities: dict[str, float]
    """The probability the shadow gives each model (models it would never pick are left out)."""

    @property
    def propensity(self) -> float:
        """The probability of the model the shadow chose."""
        return self.probabilities.get(self.arm, 0.0)


def check_shadows(live: Learner, shadows: object) -> dict[str, Learner]:
    """The shadows by name, checked against the live router's learner (same models, same vectors).

    Args:
        live: The live router's learner.
        shadows: Each shadow router's learner, by name (anything else is refused).

    Returns:
        The shadows, in a new dict.

    Raises:
        ConfigurationError: Not a mapping of learners, a name is empty, a shadow is the live
            router, routes other models, reads its vectors another way or has shadows.
    """
    if not isinstance(shadows, Mapping):
        raise ConfigurationError(
            "shadows must map a name to a Router, e.g. {'cheaper': Router(...)}, got "
            f"{type(shadows).__name__}"
        )
    for name, shadow in shadows.items():
        if not isinstance(shadow, Learner):
            raise ConfigurationError(
                f"shadow {name!r} must be a metallm.Router, got {type(shadow).__name__}"
            )
    out: dict[str, Learner] = {}
    for name, shadow in shadows.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a shadow's name must be a non-empty string, got {name!r}")
        if shadow is live:
            raise ConfigurationError(f"shadow {name!r} is the live router itself")
        if sorted(shadow.pool.names) != sorted(live.pool.names):
            raise ConfigurationError(
                f"shadow {name!r} routes {sorted(shadow.pool.names)}, the live router "
                f"{sorted(live.pool.names)}: a shadow must have the same models"
            )
        if shadow.reads_prompt_length != live.reads_prompt_length:
            raise ConfigurationError(
                f"shadow {name!r} {'reads' if shadow.reads_prompt_length else 'does not read'} the "
                "prompt's length and the live router does not (or the other way round): a shadow "
                "scores the live router's vectors, so build it the same way (prompt_length=...)"
            )
        if shadow.shadows:
            raise ConfigurationError(f"shadow {name!r} has shadows of its own")
        out[name] = shadow
    return out


def _distribution(shadow: Learner, scores: Sequence[float], excluded: set[int]) -> dict[str, float]:
    masked = [-math.inf if i in excluded else v for i, v in enumerate(scores)]
    policy = shadow.bandit.choosing_policy()
    out = {}
    for j, arm in enumerate(shadow.pool.names):
        if j in excluded:
            continue
        p = policy.probability_one(masked, j)
        if p > 0:
            out[arm] = round(p, 12)
    return out


def choose_one(
    shadows: Mapping[str, Learner], embedding: np.ndarray, excluded: Sequence[str]
) -> str:
    """Each shadow's choice for one vector (the live router's exclusions hold), as log JSON."""
    out: dict[str, Any] = {}
    for name, shadow in shadows.items():
        left_out = {shadow.pool.index[a] for a in excluded}
        if len(left_out) == len(shadow.pool.names):
            continue
        with shadow.lock:
            chosen, scores, *_ = shadow.score_one(embedding, left_out, None)
            out[name] = {
                "arm": shadow.pool.names[chosen],
                "p": _distribution(shadow, scores, left_out),
            }
    return json.dumps(out, separators=(",", ":"))


def choose_many(
    shadows: Mapping[str, Learner], embeddings: np.ndarray, excluded: Sequence[str]
) -> list[str]:
    """`choose_one` for each row of a batch."""
    rows: list[dict[str, Any]] = [{} for _ in range(len(embeddings))]
    for name, shadow in shadows.items():
        left_out = {shadow.pool.index[a] for a in excluded}
        if len(left_out) == len(shadow.pool.names):
            continue
        with shadow.lock:
            chosen, scores, *_ = shadow.score_many(embeddings, left_out, None)
            for row, (pick, values) in enumerate(zip(chosen.tolist(), scores.tolist())):
                rows[row][name] = {
                    "arm": shadow.pool.names[pick],
                    "p": _distribution(shadow, values, left_out),
                }
    return [json.dumps(r, separators=(",", ":")) for r in rows]


def parse_shadows(text: str | None) -> dict[str, ShadowChoice]:
    """A logged entry's shadow choices ({} when none, or when the entry cannot be read).

    Args:
        text: The log entry's shadows field (JSON).
    """
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {
            str(name): ShadowChoice(
                str(entry["arm"]), {str(a): float(p) for a, p in entry["p"].items()}
            )
            for name, entry in raw.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
