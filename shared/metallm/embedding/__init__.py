"""Embedding: turning query text into the vector the router routes on.

The :class:`Embedder` protocol, Sentence-BERT (loaded lazily), a fast static embedder and
an on-disk cache (:mod:`~metallm.embedding.cache`).
"""

from metallm.embedding.embedders import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_MODEL_ENV,
    Embedder,
    SentenceTransformerEmbedder,
    StaticEmbedder,
)

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODEL_ENV",
    "Embedder",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
]
