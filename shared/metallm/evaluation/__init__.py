"""Evaluation: how good routing is, measured on routing tables.

Routing tables (:mod:`~metallm.evaluation.datasets`), offline benchmarks
(:mod:`~metallm.evaluation.bench`), online replays (:mod:`~metallm.evaluation.simulate`), the
speed budget (:mod:`~metallm.evaluation.speed`), and the routing metrics re-exported from
:mod:`metallm.learning.metrics` (where cross-validation also uses them).
"""

from metallm.learning.metrics import (
    aiq,
    cheapest_cost_reaching,
    frontier,
    oracle,
    quality_hull,
    savings_at_best,
    zero_router_aiq,
)

__all__ = [
    "aiq",
    "cheapest_cost_reaching",
    "frontier",
    "oracle",
    "quality_hull",
    "savings_at_best",
    "zero_router_aiq",
]
