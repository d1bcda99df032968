"""LangChain integration of metallm: ChatMetaLLM and its feedback callback handler."""

from metallm_langchain.callbacks import Evaluator, MetaLLMFeedbackHandler
from metallm_langchain.chat_models import ChatMetaLLM

__all__ = ["ChatMetaLLM", "Evaluator", "MetaLLMFeedbackHandler"]
