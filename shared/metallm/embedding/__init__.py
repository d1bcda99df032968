"""Embedding: turning query text into the vector the router routes on.

The `Embedder` protocol, the default (`default_embedder`: MiniLM on ONNX
Runtime), Sentence-BERT through sentence-transformers (loaded lazily), a fast static embedder
and an on-disk cache (`_cache`).
"""

from metallm.embedding._cache import DiskCachedEmbedder
from metallm.embedding._choice import default_embedder, make_embedder
from metallm.embedding._embedders import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_MODEL_ENV,
    Embedder,
    SentenceTransformerEmbedder,
    StaticEmbedder,
    check_texts,
    distill_static_embedder,
)
from metallm.embedding._onnx import OnnxEmbedder

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODEL_ENV",
    "DiskCachedEmbedder",
    "Embedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "check_texts",
    "default_embedder",
    "distill_static_embedder",
    "make_embedder",
]
