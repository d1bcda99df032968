"""Queries into checked vectors: the router's embedder, the prompt's length, the bounds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import numpy as np

from metallm.embedding import (
    Embedder,
    check_texts,
)
from metallm.exceptions import ConfigurationError, InvalidInputError
from metallm.learning import with_prompt_length
from metallm.serving._checks import Query, check_embeddings
from metallm.serving._learner import Learner

__all__ = ["QueryEmbedder"]

logger = logging.getLogger("metallm.serving._router")


class QueryEmbedder:
    """Turns a router's queries (texts, or vectors a caller embedded) into checked vectors.

    Args:
        embedder: What embeds text (None: the caller passes vectors).
        learner: The router's learned state (whether it reads the length; its dimension).
    """

    def __init__(self, embedder: Embedder | None, learner: Learner) -> None:
        self.embedder = embedder
        self._learner = learner

    def embed(self, queries: Sequence[Query] | np.ndarray) -> np.ndarray:
        """Embeddings (n, dim) of texts, or the given embeddings checked (see ``Router.embed``)."""
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            matrix = np.asarray(queries, dtype=np.float64)
        else:
            items = list(queries)
            if items and all(isinstance(q, str) for q in items):
                if self.embedder is None:
                    raise ConfigurationError(
                        "this router has no embedder: pass embeddings, or an embedder"
                    )
                matrix = np.asarray(self.embedder.embed(check_texts(items)), dtype=np.float64)
                if self._learner.reads_prompt_length:
                    matrix = with_prompt_length(matrix, items)
            else:
                for i, q in enumerate(items):
                    if isinstance(q, str):
                        raise InvalidInputError(f"query {i} mixes text with embeddings")
                matrix = np.asarray(items, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InvalidInputError(
                f"expected a non-empty (n, dim) batch, got shape {matrix.shape}"
            )
        check_embeddings(matrix)
        bandit = self._learner.bandit
        if bandit.stats is not None and matrix.shape[1] != bandit.embedding_dim:
            raise bandit.dimension_mismatch(matrix.shape[1])
        return matrix

    def warmup(self, background: bool) -> threading.Thread | None:
        """Load the embedding model and embed once (see ``Router.warmup``)."""
        embedder = self.embedder
        if embedder is None:
            return None
        if not background:
            started = time.perf_counter()
            embedder.embed(["metallm warm-up"])
            logger.debug("metallm warmed up %r in %.2f s", embedder, time.perf_counter() - started)
            return None

        def warm() -> None:
            try:
                self.warmup(False)
            except Exception as e:  # the first routed call raises it, typed
                if not threading.main_thread().is_alive():  # the script ended meanwhile
                    logger.debug("metallm warm-up stopped at exit: %s", e)
                    return
                logger.warning("metallm could not warm up %r: %s", embedder, e)

        # Not a daemon: a daemon thread still inside ONNX Runtime or tokenizers when the
        # interpreter finalizes aborts the process (rc 134), and one still exporting with torch
        # at exit prints torch's finalizer tracebacks. A script that exits during warm-up
        # waits for it (about a second once the model is exported) and exits cleanly.
        thread = threading.Thread(target=warm, name="metallm-warmup", daemon=False)
        thread.start()
        return thread
