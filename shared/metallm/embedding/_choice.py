"""Which embedder a router uses when it is given none, and embedders by name (``--embedder``).

The default is MiniLM run by ONNX Runtime when ``onnxruntime`` is installed (the ``fast``
extra, also pulled in by the ``embeddings``, ``langchain`` and ``llamaindex`` extras): the same
model as sentence-transformers at a fraction of the latency. Without it, or when the model
cannot be exported, sentence-transformers embeds, and a log line says so once per process.
"""

from __future__ import annotations

import importlib.util

from metallm.embedding._embedders import Embedder, SentenceTransformerEmbedder, warn_once
from metallm.exceptions import ConfigurationError

__all__ = ["DEFAULT_QUANTIZE", "EMBEDDER_KINDS", "default_embedder", "make_embedder"]

EMBEDDER_KINDS = ("default", "onnx", "onnx-int8", "sentence-transformers")
"""Names `make_embedder` (and ``metallm bench --embedder``) accepts."""

DEFAULT_QUANTIZE = False
"""Whether the default ONNX embedder runs the int8 copy. Off: on the shared routing tables int8
loses more than 0.3 point of max quality or AIQ on at least one table (docs/performance.md)."""


def onnx_runtime_installed() -> bool:
    """Whether ``onnxruntime`` and ``tokenizers`` can be imported (without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "tokenizers"))


def default_embedder(model: str | None = None) -> Embedder:
    """The embedder a `Router` uses when given none.

    `OnnxEmbedder` (falling back to sentence-transformers if
    the model cannot be exported or loaded) when ONNX Runtime is installed, else
    `SentenceTransformerEmbedder`; a WARNING says which fallback, once.

    Args:
        model: The model (None: ``$METALLM_EMBEDDING_MODEL``, else MiniLM).

    >>> embedder = default_embedder()
    >>> type(embedder).__name__ in {"OnnxEmbedder", "SentenceTransformerEmbedder"}
    True
    """
    return make_embedder("default", model)


def make_embedder(kind: str = "default", model: str | None = None) -> Embedder:
    """An embedder by name: one of `EMBEDDER_KINDS`.

    ``default`` is `default_embedder`'s choice; ``onnx`` and ``onnx-int8`` raise
    `EmbedderError` instead of falling back.

    Args:
        kind: One of ``EMBEDDER_KINDS``.
        model: The model (None: the configured one).

    >>> make_embedder("sentence-transformers")  # doctest: +ELLIPSIS
    SentenceTransformerEmbedder(model=...)
    """
    if kind not in EMBEDDER_KINDS:
        raise ConfigurationError(
            f"unknown embedder {kind!r}: use one of {', '.join(EMBEDDER_KINDS)}"
        )
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(model)
    if kind == "default" and not onnx_runtime_installed():
        warn_once(
            "metallm embeds with sentence-transformers, not ONNX Runtime (2-5x slower per query): "
            "onnxruntime is not installed; pip install 'metallm[fast]'"
        )
        return SentenceTransformerEmbedder(model)
    from metallm.embedding._onnx import OnnxEmbedder

    if kind == "default":
        return OnnxEmbedder(model, quantize=DEFAULT_QUANTIZE, fallback=True)
    return OnnxEmbedder(model, quantize=kind == "onnx-int8")
