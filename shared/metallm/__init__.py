"""metallm: route each query to the LLM that gives the best answer for the money.

The core is numpy only; the LangChain and LlamaIndex adapters live in
``metallm_langchain`` and ``metallm_llamaindex``.
"""

from metallm.embedding.embedders import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_MODEL_ENV,
    Embedder,
    SentenceTransformerEmbedder,
)
from metallm.exceptions import (
    AllModelsFailedError,
    ConfigurationError,
    DecisionError,
    DimensionMismatchError,
    DuplicateFeedbackError,
    EmbedderError,
    EmptyQueryError,
    InfeasibleBudgetError,
    InvalidFeedbackError,
    InvalidInputError,
    MetaLLMError,
    RoutingTableError,
    StateFileError,
    UnknownArmError,
    UnknownDecisionError,
)
from metallm.learning.features import (
    ClusterFeatures,
    EmbeddingFeatures,
    FeatureMap,
    ProjectedFeatures,
)
from metallm.learning.policies import EpsilonGreedy, LinUCB, Policy, RandomPolicy
from metallm.learning.reward import Calibration, calibrate_cost_weight, reward
from metallm.serving.failover import Attempts, Cooldown, Fallbacks, is_provider_error
from metallm.serving.router import Decision, Prediction, Router, find_router
from metallm.state.stores import FeedbackEvent, RedisStore, Snapshot, SQLiteStore, StateStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODEL_ENV",
    "AllModelsFailedError",
    "Attempts",
    "Calibration",
    "ClusterFeatures",
    "ConfigurationError",
    "Cooldown",
    "Decision",
    "DecisionError",
    "DimensionMismatchError",
    "DuplicateFeedbackError",
    "Embedder",
    "EmbedderError",
    "EmbeddingFeatures",
    "EmptyQueryError",
    "EpsilonGreedy",
    "Fallbacks",
    "FeatureMap",
    "FeedbackEvent",
    "InfeasibleBudgetError",
    "InvalidFeedbackError",
    "InvalidInputError",
    "LinUCB",
    "MetaLLMError",
    "Policy",
    "Prediction",
    "ProjectedFeatures",
    "RandomPolicy",
    "RedisStore",
    "Router",
    "RoutingTableError",
    "SQLiteStore",
    "SentenceTransformerEmbedder",
    "Snapshot",
    "StateFileError",
    "StateStore",
    "UnknownArmError",
    "UnknownDecisionError",
    "__version__",
    "calibrate_cost_weight",
    "find_router",
    "is_provider_error",
    "reward",
]
