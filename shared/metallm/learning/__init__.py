"""Learning: what a router knows and how it turns that into a choice.

Ridge statistics with rank-1 updates (:mod:`~metallm.learning.ridge`), feature maps
(:mod:`~metallm.learning.features`), policies (:mod:`~metallm.learning.policies`), the reward
and its cost weight (:mod:`~metallm.learning.reward`), cross-validated tuning
(:mod:`~metallm.learning.tuning`) and routing metrics (:mod:`~metallm.learning.metrics`).
Nothing here knows about ids, locks, clocks, stores or frameworks.
"""

from metallm.learning.features import (
    ClusterFeatures,
    EmbeddingFeatures,
    FeatureMap,
    ProjectedFeatures,
)
from metallm.learning.neighbours import NeighbourQuality
from metallm.learning.policies import EpsilonGreedy, LinUCB, Policy, RandomPolicy, SquareCB
from metallm.learning.reward import Calibration, calibrate_cost_weight, reward
from metallm.learning.ridge import RidgeStatistics

__all__ = [
    "Calibration",
    "ClusterFeatures",
    "EmbeddingFeatures",
    "EpsilonGreedy",
    "FeatureMap",
    "LinUCB",
    "NeighbourQuality",
    "Policy",
    "ProjectedFeatures",
    "RandomPolicy",
    "RidgeStatistics",
    "SquareCB",
    "calibrate_cost_weight",
    "reward",
]
