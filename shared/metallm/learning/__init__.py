"""Learning: what a router knows and how it turns that into a choice.

Ridge statistics with rank-1 updates (`_ridge`) and their saved arrays
(`_statistics_state`), feature maps (`_features`), policies (`_policies`), drift
detection (`_drift`), the reward and its cost weight (`_reward`), cross-validated
tuning (`_tuning`), what a fit serves (`_capacity`: the map and kNN blend), the kNN
blend itself (`_neighbours`), capacity grown online (`_growth`), the bandit that wires
them (`_bandit`) and routing metrics (`_metrics`).
Nothing here knows about ids, locks, clocks, stores or frameworks.
"""

from metallm.learning._bandit import LinearBandit, OneScore, Scores
from metallm.learning._drift import DriftDetector
from metallm.learning._features import (
    ClusterFeatures,
    EmbeddingFeatures,
    FeatureMap,
    ProjectedFeatures,
    PromptLengthFeatures,
    RandomFeatures,
    reading_prompt_length,
    reads_prompt_length,
    with_prompt_length,
)
from metallm.learning._growth import GROWTH_CANDIDATES, CapacityGrowth, Growth
from metallm.learning._metrics import (
    aiq,
    cheapest_cost_reaching,
    frontier,
    oracle,
    quality_hull,
    savings_at_best,
    zero_router_aiq,
)
from metallm.learning._neighbours import NeighbourQuality, default_blend
from metallm.learning._onboarding import prior_start, quiz_rows, warm_start
from metallm.learning._policies import (
    EpsilonGreedy,
    LinUCB,
    Policy,
    RandomPolicy,
    SquareCB,
    policy_from_dict,
)
from metallm.learning._reward import (
    SIGNIFICANCE,
    Calibration,
    calibrate_cost_weight,
    default_cost_weight_grid,
    reward,
)
from metallm.learning._ridge import RidgeStatistics
from metallm.learning._tuning import AUTO_TUNE_ROWS, DEFAULT_CANDIDATES, fold_splits

__all__ = [
    "AUTO_TUNE_ROWS",
    "DEFAULT_CANDIDATES",
    "GROWTH_CANDIDATES",
    "SIGNIFICANCE",
    "Calibration",
    "CapacityGrowth",
    "ClusterFeatures",
    "DriftDetector",
    "EmbeddingFeatures",
    "EpsilonGreedy",
    "FeatureMap",
    "Growth",
    "LinUCB",
    "LinearBandit",
    "NeighbourQuality",
    "default_blend",
    "OneScore",
    "Policy",
    "ProjectedFeatures",
    "RandomFeatures",
    "PromptLengthFeatures",
    "RandomPolicy",
    "RidgeStatistics",
    "Scores",
    "SquareCB",
    "aiq",
    "calibrate_cost_weight",
    "cheapest_cost_reaching",
    "default_cost_weight_grid",
    "fold_splits",
    "frontier",
    "oracle",
    "policy_from_dict",
    "prior_start",
    "quality_hull",
    "quiz_rows",
    "reading_prompt_length",
    "reads_prompt_length",
    "reward",
    "savings_at_best",
    "warm_start",
    "with_prompt_length",
    "zero_router_aiq",
]
