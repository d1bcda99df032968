"""LlamaIndex integration of metallm: the MetaLLM router LLM and its feedback event handler."""

from metallm_llamaindex.base import MetaLLM
from metallm_llamaindex.callbacks import Evaluator, MetaLLMFeedbackEventHandler
from metallm_llamaindex.events import MetaLLMDecisionEvent

__all__ = ["Evaluator", "MetaLLM", "MetaLLMDecisionEvent", "MetaLLMFeedbackEventHandler"]
