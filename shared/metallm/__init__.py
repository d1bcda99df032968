"""metallm: route each query to the LLM that gives the best answer for the money.

The core is numpy only; the LangChain and LlamaIndex adapters live in
``metallm_langchain`` and ``metallm_llamaindex``.
"""

from metallm.embedding.choice import default_embedder
from metallm.embedding.embedders import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_MODEL_ENV,
    Embedder,
    SentenceTransformerEmbedder,
)
from metallm.embedding.onnx import OnnxEmbedder
from metallm.exceptions import (
    AllModelsFailedError,
    ConfigurationError,
    DecisionError,
    DimensionMismatchError,
    DuplicateEventError,
    DuplicateFeedbackError,
    EmbedderError,
    EmptyQueryError,
    ExpiredDecisionError,
    InfeasibleBudgetError,
    InvalidFeedbackError,
    InvalidInputError,
    LogTrimmedError,
    MetaLLMError,
    NoCapableModelError,
    RoutingTableError,
    StateFileError,
    StoreError,
    UnknownArmError,
    UnknownDecisionError,
)
from metallm.learning.bandit import LinearBandit
from metallm.learning.features import (
    ClusterFeatures,
    EmbeddingFeatures,
    FeatureMap,
    ProjectedFeatures,
)
from metallm.learning.neighbours import NeighbourQuality
from metallm.learning.policies import EpsilonGreedy, LinUCB, Policy, RandomPolicy, SquareCB
from metallm.learning.reward import Calibration, calibrate_cost_weight, reward
from metallm.serving import (
    Budget,
    Capabilities,
    Cooldown,
    Decision,
    Fallbacks,
    Feedback,
    FeedbackSummary,
    Needs,
    Prediction,
    RoutedCall,
    Router,
    is_provider_error,
)
from metallm.state import (
    BudgetState,
    DecisionRecord,
    FeedbackEvent,
    MalformedEvent,
    RedisStore,
    Snapshot,
    SQLiteStore,
    StateStore,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODEL_ENV",
    "AllModelsFailedError",
    "Budget",
    "BudgetState",
    "Calibration",
    "Capabilities",
    "ClusterFeatures",
    "ConfigurationError",
    "Cooldown",
    "Decision",
    "DecisionError",
    "DecisionRecord",
    "DimensionMismatchError",
    "DuplicateEventError",
    "DuplicateFeedbackError",
    "Embedder",
    "EmbedderError",
    "EmbeddingFeatures",
    "EmptyQueryError",
    "EpsilonGreedy",
    "ExpiredDecisionError",
    "Fallbacks",
    "FeatureMap",
    "Feedback",
    "FeedbackEvent",
    "FeedbackSummary",
    "InfeasibleBudgetError",
    "InvalidFeedbackError",
    "InvalidInputError",
    "LinUCB",
    "LinearBandit",
    "LogTrimmedError",
    "MalformedEvent",
    "MetaLLMError",
    "Needs",
    "NeighbourQuality",
    "NoCapableModelError",
    "OnnxEmbedder",
    "Policy",
    "Prediction",
    "ProjectedFeatures",
    "RandomPolicy",
    "RedisStore",
    "RoutedCall",
    "Router",
    "RoutingTableError",
    "SQLiteStore",
    "SentenceTransformerEmbedder",
    "Snapshot",
    "SquareCB",
    "StateFileError",
    "StateStore",
    "StoreError",
    "UnknownArmError",
    "UnknownDecisionError",
    "__version__",
    "calibrate_cost_weight",
    "default_embedder",
    "is_provider_error",
    "reward",
]
