"""Embedding: turning query text into the vector the router routes on.

The :class:`Embedder` protocol, the default (:func:`default_embedder`: MiniLM on ONNX
Runtime), Sentence-BERT through sentence-transformers (loaded lazily), a fast static embedder
and an on-disk cache (:mod:`~metallm.embedding.cache`).
"""

from metallm.embedding.choice import default_embedder, make_embedder
from metallm.embedding.embedders import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_MODEL_ENV,
    Embedder,
    SentenceTransformerEmbedder,
    StaticEmbedder,
)
from metallm.embedding.onnx import OnnxEmbedder

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODEL_ENV",
    "Embedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "default_embedder",
    "make_embedder",
]
