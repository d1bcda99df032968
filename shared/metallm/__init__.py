"""metallm: route each query to the LLM that gives the best answer for the money.

The names here are what an application uses: a ``Router`` and its parts (budgets, fallbacks,
capabilities, stores, policies, feature maps, embedders) and the errors it catches. The rest
lives in the subpackages, each re-exporting its public names: ``metallm.serving``,
``metallm.learning``, ``metallm.state``, ``metallm.embedding``, ``metallm.evaluation``,
every error in ``metallm.exceptions``, and what a framework adapter needs in
``metallm.integrations``. The LangChain and LlamaIndex adapters live in ``metallm_langchain``
and ``metallm_llamaindex``.

>>> import metallm
>>> router = metallm.Router(["small", "large"], embedder=None)
>>> router.select([1.0, 0.0]).arm in ("small", "large")
True
"""

import importlib as _importlib
import warnings as _warnings

from metallm.embedding import OnnxEmbedder, SentenceTransformerEmbedder
from metallm.exceptions import (
    AllModelsFailedError,
    ConfigurationError,
    DecisionError,
    MetaLLMError,
    NoCapableModelError,
    StoreError,
)
from metallm.learning import (
    ClusterFeatures,
    EmbeddingFeatures,
    EpsilonGreedy,
    LinUCB,
    NeighbourQuality,
    ProjectedFeatures,
    SquareCB,
)
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
    RouterHealth,
)
from metallm.state import RedisStore, SQLiteStore

__version__ = "0.1.0"

__all__ = [
    "AllModelsFailedError",
    "Budget",
    "Capabilities",
    "ClusterFeatures",
    "ConfigurationError",
    "Cooldown",
    "Decision",
    "DecisionError",
    "EmbeddingFeatures",
    "EpsilonGreedy",
    "Fallbacks",
    "Feedback",
    "FeedbackSummary",
    "LinUCB",
    "MetaLLMError",
    "Needs",
    "NeighbourQuality",
    "NoCapableModelError",
    "OnnxEmbedder",
    "Prediction",
    "ProjectedFeatures",
    "RedisStore",
    "RoutedCall",
    "Router",
    "RouterHealth",
    "SQLiteStore",
    "SentenceTransformerEmbedder",
    "SquareCB",
    "StoreError",
    "__version__",
]

_MOVED = {
    **dict.fromkeys(
        ["DEFAULT_EMBEDDING_MODEL", "EMBEDDING_MODEL_ENV", "Embedder", "default_embedder"],
        "metallm.embedding",
    ),
    **dict.fromkeys(
        ["BudgetState", "DecisionRecord", "FeedbackEvent", "MalformedEvent", "Snapshot", "StateStore"],
        "metallm.state",
    ),
    **dict.fromkeys(
        ["Calibration", "FeatureMap", "LinearBandit", "Policy", "RandomPolicy", "calibrate_cost_weight", "reward"],
        "metallm.learning",
    ),
    "is_provider_error": "metallm.serving",
    **dict.fromkeys(
        [
            "DimensionMismatchError", "DuplicateEventError", "DuplicateFeedbackError",
            "EmbedderError", "EmptyQueryError", "ExpiredDecisionError", "InfeasibleBudgetError",
            "InvalidFeedbackError", "InvalidInputError", "LogTrimmedError", "RoutingTableError",
            "StateFileError", "UnknownArmError", "UnknownDecisionError",
        ],
        "metallm.exceptions",
    ),
}  # fmt: skip
"""Names ``metallm`` exported before its API was narrowed, and where each lives now."""


def __getattr__(name: str) -> object:
    """A name that moved to a subpackage still works from here, with a DeprecationWarning."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'metallm' has no attribute {name!r}")
    _warnings.warn(
        f"metallm.{name} moved: import it from {home} (`from {home} import {name}`); "
        "metallm's own namespace keeps what applications use",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(_importlib.import_module(home), name)
