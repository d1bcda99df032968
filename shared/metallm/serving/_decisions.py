"""What a routing decision holds: the chosen model, why, and what learning from it needs.

A `Decision` is one small tuple; its per-model ``scores`` and ``bonus`` and its
``embedding`` are read on access from the `Selection` that made it (one
``select`` / ``select_batch`` call), so ``select_batch`` stays above 100,000 decisions/s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from metallm.serving._shadows import ShadowChoice, parse_shadows

__all__ = ["ArmValues", "Decision", "Prediction", "Selection", "explain"]

RowsOfValues = np.ndarray | list[list[float]]
"""Per-arm values, one row per decision: an (n, k) array, or for one decision a list of one list."""
Rows = np.ndarray | list[np.ndarray]
"""Vectors, one row per decision: an (n, dim) array, or for one decision a list of one vector."""


class Selection:
    """What one ``select`` / ``select_batch`` call computed; its decisions read their rows from it."""

    __slots__ = (
        "arms",
        "index",
        "scores",
        "bonus",
        "embeddings",
        "features",
        "prompts",
        "quality",
        "cost",
        "propensity",
        "shadows",
        "latency",
    )

    def __init__(
        self,
        arms: tuple[str, ...],
        index: dict[str, int],
        scores: RowsOfValues,
        bonus: RowsOfValues,
        embeddings: Rows,
        features: Rows,
        prompts: list[str | None] | None,
        quality: RowsOfValues | None = None,
        cost: RowsOfValues | None = None,
        propensity: np.ndarray | list[float] | None = None,
        shadows: list[str] | None = None,
        latency: RowsOfValues | None = None,
    ) -> None:
        self.arms, self.index, self.scores, self.bonus = arms, index, scores, bonus
        self.embeddings, self.features, self.prompts = embeddings, features, prompts
        self.quality, self.cost, self.propensity = quality, cost, propensity
        self.shadows = shadows
        self.latency = latency


class ArmValues(Mapping[str, float]):
    """A read-only ``{arm: value}`` view over one row of a selection's scores (built without a dict)."""

    __slots__ = ("_arms", "_index", "_values", "_row")

    def __init__(self, selection: Selection, values: RowsOfValues, row: int) -> None:
        self._arms, self._index, self._values, self._row = (
            selection.arms,
            selection.index,
            values,
            row,
        )

    def __getitem__(self, arm: str) -> float:
        return float(self._values[self._row][self._index[arm]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._arms)

    def __len__(self) -> int:
        return len(self._arms)

    def __repr__(self) -> str:
        return repr(dict(self))


class Decision(NamedTuple):
    """One routing decision: the chosen arm, why, and what the later update needs (immutable).

    Attributes:
        id: The decision's id (for ``record``).
        arm: The chosen model.
        cost_weight: The ``p`` it was chosen at.
        selection: What the ``select`` call computed (scores, embeddings), shared by its decisions.
        row: This decision's row in the selection.
        forced: Whether the caller forced the model.
        sticky: Whether a session kept it on its model.
    """

    id: str
    arm: str
    cost_weight: float
    selection: Selection
    row: int
    """This decision's row in ``selection``."""
    forced: bool = False
    """True when the caller named the arm instead of letting the router choose."""
    sticky: bool = False
    """True when the arm was kept from earlier in the same session."""

    @property
    def scores(self) -> Mapping[str, float]:
        """Upper confidence bound per arm: predicted reward plus ``bonus``."""
        return ArmValues(self.selection, self.selection.scores, self.row)

    @property
    def bonus(self) -> Mapping[str, float]:
        """The exploration bonus per arm (``alpha * width`` for LinUCB)."""
        return ArmValues(self.selection, self.selection.bonus, self.row)

    @property
    def propensity(self) -> float | None:
        """The probability that the policy chose this arm for this query.

        1.0 when the caller forced it or a session kept it; what off-policy evaluation
        reweights by.
        """
        values = self.selection.propensity
        return None if values is None else float(values[self.row])

    @property
    def shadows(self) -> dict[str, ShadowChoice]:
        """What each shadow router would have chosen for this query ({} without shadows)."""
        logged = self.selection.shadows
        return {} if logged is None else parse_shadows(logged[self.row])

    @property
    def predicted_quality(self) -> Mapping[str, float]:
        """The quality each arm was predicted to give (empty when not recorded)."""
        values = self.selection.quality
        return {} if values is None else ArmValues(self.selection, values, self.row)

    @property
    def predicted_latency(self) -> Mapping[str, float]:
        """The latency (seconds) each arm was predicted to have (empty before any was learned)."""
        values = self.selection.latency
        return {} if values is None else ArmValues(self.selection, values, self.row)

    @property
    def predicted_cost(self) -> Mapping[str, float]:
        """The cost (USD) each arm was predicted to have (empty when not recorded)."""
        values = self.selection.cost
        return {} if values is None else ArmValues(self.selection, values, self.row)

    def explain(self, excluded: Mapping[str, str] | None = None) -> str:
        """Why this arm: a table of every arm's predicted quality, cost, bonus and score.

        ``excluded`` (a routed call's, see `metallm.RoutedCall.excluded`) adds the arms
        left out and why. The chosen arm is marked ``*``. `explain` renders the same
        from a response's ``metallm`` metadata.

        Args:
            excluded: The members a routed call left out, with why (None: none).

        >>> import numpy as np
        >>> from metallm import Router
        >>> router = Router(["small", "large"], embedder=None, seed=0)
        >>> print(router.select(np.array([1.0, 0.0]), force="small").explain({"vision": "no image inputs"}))
           model  quality  cost_usd   bonus   score
        *  small   0.0000  0.000000  1.4142  1.4142
           large   0.0000  0.000000  1.4142  1.4142
           vision: excluded, no image inputs
        (forced by the caller; cost weight p = 0.1)
        """
        return explain({**self.to_metadata(), "excluded": dict(excluded or {})})

    @property
    def embedding(self) -> np.ndarray:
        """The query's embedding (a read-only view)."""
        row: np.ndarray = self.selection.embeddings[self.row]
        row.setflags(write=False)
        return row

    @property
    def features(self) -> np.ndarray:
        """The features the choice was made on (what learning from it updates)."""
        row: np.ndarray = self.selection.features[self.row]
        return row

    @property
    def prompt(self) -> str | None:
        """The query text, when the router's store keeps prompts."""
        prompts = self.selection.prompts
        return None if prompts is None else prompts[self.row]

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-friendly summary for response metadata."""
        return {
            "decision_id": self.id,
            "model": self.arm,
            "scores": dict(self.scores.items()),
            "bonus": dict(self.bonus.items()),
            "predicted_quality": dict(self.predicted_quality.items()),
            "predicted_cost_usd": dict(self.predicted_cost.items()),
            "predicted_latency_s": dict(self.predicted_latency.items()),
            "cost_weight": self.cost_weight,
            "propensity": self.propensity,
            "forced": self.forced,
            "sticky": self.sticky,
            "shadows": {
                name: {"model": choice.arm, "propensity": choice.propensity}
                for name, choice in self.shadows.items()
            },
        }

    def __repr__(self) -> str:
        return (
            f"Decision(id={self.id!r}, arm={self.arm!r}, cost_weight={self.cost_weight}, "
            f"forced={self.forced}, sticky={self.sticky})"
        )


def explain(metadata: Mapping[str, Any]) -> str:
    """A decision's ``metallm`` metadata (a response's, or `Decision.to_metadata`) as a table.

    One row per model, best score first: predicted quality, cost (USD), exploration bonus and
    score (``quality - p * cost / scale + bonus``); the chosen one marked ``*``; then the models
    left out and why.

    Args:
        metadata: A response's ``metallm`` metadata, or ``Decision.to_metadata()``.
    """
    scores: Mapping[str, float] = metadata.get("scores") or {}
    bonus: Mapping[str, float] = metadata.get("bonus") or {}
    quality: Mapping[str, float] = metadata.get("predicted_quality") or {}
    cost: Mapping[str, float] = metadata.get("predicted_cost_usd") or {}
    latency: Mapping[str, float] = metadata.get("predicted_latency_s") or {}
    left_out: Mapping[str, str] = metadata.get("excluded") or {}
    chosen = metadata.get("model")
    header = ["", "model", "quality", "cost_usd", "bonus", "score"]
    if latency:
        header.insert(4, "latency_s")
    rows = [header]
    for arm, score in sorted(scores.items(), key=lambda kv: -kv[1]):
        if arm in left_out:
            continue
        row = [
            "*" if arm == chosen else "",
            arm,
            f"{quality[arm]:.4f}" if arm in quality else "-",
            f"{cost[arm]:.6f}" if arm in cost else "-",
            f"{bonus[arm]:.4f}" if arm in bonus else "-",
            f"{score:.4f}",
        ]
        if latency:
            row.insert(4, f"{latency[arm]:.3f}" if arm in latency else "-")
        rows.append(row)
    widths = [max(len(r[j]) for r in rows) for j in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(widths[j]) if j < 2 else c.rjust(widths[j]) for j, c in enumerate(r)
        ).rstrip()
        for r in rows
    ]
    lines += [f"{' ' * widths[0]}  {arm}: excluded, {why}" for arm, why in left_out.items()]
    how = (
        "forced by the caller"
        if metadata.get("forced")
        else "kept for its session"
        if metadata.get("sticky")
        else "the highest score"
    )
    weight = metadata.get("cost_weight")
    slow = metadata.get("latency_weight")
    weights = f"cost weight p = {weight:g}" + (f", latency weight {slow:g}" if slow else "")
    return "\n".join([*lines, f"({how}; {weights})"])


class Prediction(NamedTuple):
    """Per-arm predictions, each (n_queries, n_arms).

    Attributes:
        quality: Predicted quality per query and model.
        cost: Predicted USD per query and model (never below zero).
        width: The confidence width of each quality (None when not asked for).
    """

    quality: np.ndarray
    cost: np.ndarray
    """In USD (not normalised)."""
    width: np.ndarray | None
    """Confidence width ``sqrt(x^T A^-1 x)``; None from ``predict(..., widths=False)``."""
