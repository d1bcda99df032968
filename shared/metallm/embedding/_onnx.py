"""OnnxEmbedder: a Sentence-BERT model run by ONNX Runtime, the same embeddings at a fraction of the cost.

On first use the model (a local sentence-transformers folder) is exported to ONNX with torch,
once, and cached under ``~/.cache/metallm/onnx`` keyed by the content of the model's weights;
later processes only load the cached file (no torch import). Queries are tokenized with the
model's own fast tokenizer, cut to its maximum sequence length, and pooled and normalised the
way the model's ``modules.json`` says (mean pooling, L2 normalisation for MiniLM). One query
runs on ``query_threads`` intra-op threads (measured per precision, see ``QUERY_THREADS``);
batches use every core. No thread pool spins after a call (spinning workers steal the core a
busy server needs). ``quantize=True`` runs an int8 dynamically quantised copy.

With ``fallback=True`` (what `metallm.embedding.default_embedder` builds), a model that
cannot be exported or loaded (no torch for the first export, a hub name instead of a local
folder, a broken cache) is embedded by sentence-transformers instead, said once in a WARNING.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding._embedders import (
    SentenceTransformerEmbedder,
    VectorCache,
    check_texts,
    default_model,
    warn_once,
)
from metallm.embedding._hub import local_folder
from metallm.exceptions import EmbedderError

__all__ = ["QUERY_THREADS", "OnnxEmbedder", "default_onnx_dir"]

logger = logging.getLogger(__name__)

_OPENED: dict[tuple[str, bool, int, str], _Session] = {}
"""Loaded models, shared by every OnnxEmbedder of the same model and settings in the process."""
_OPEN_LOCK = threading.Lock()

QUERY_THREADS = {False: 2, True: 1}
"""Intra-op threads for one query, by ``quantize``: measured on 2 cores, idle and with the other
core busy (docs/performance.md). fp32 is faster on two non-spinning threads in both cases (3.6
vs 5.1 ms idle, 4.9 vs 5.2 ms busy); int8 is as fast on one idle and faster on one busy (1.9 vs
2.2 ms), so a busy server keeps its other core."""


def default_onnx_dir() -> Path:
    """``$METALLM_CACHE_DIR/onnx``, else ``~/.cache/metallm/onnx``."""
    return Path(os.environ.get("METALLM_CACHE_DIR") or Path.home() / ".cache" / "metallm") / "onnx"


class OnnxEmbedder:
    """Sentence-BERT embeddings through ONNX Runtime (the ``fast`` extra).

    Args:
        model: A local sentence-transformers folder; default ``$METALLM_EMBEDDING_MODEL``.
        quantize: Run an int8 dynamically quantised copy (faster, slightly different vectors).
        cache_dir: Where exported models are kept (default `default_onnx_dir`).
        cache_size: Embeddings kept in the in-memory LRU cache (keyed by a hash of the text).
        cache_bytes: What that cache may hold, in bytes.
        query_threads: Intra-op threads for a single query (default: ``QUERY_THREADS``).
        fallback: Embed with sentence-transformers when the ONNX model cannot be made or
            loaded (logged once) instead of raising `EmbedderError`.

    >>> embedder = OnnxEmbedder()  # doctest: +SKIP
    >>> embedder.embed(["What is the capital of France?"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        quantize: bool = False,
        cache_dir: str | Path | None = None,
        cache_size: int = 10_000,
        cache_bytes: int = 64 * 2**20,
        query_threads: int | None = None,
        fallback: bool = False,
    ) -> None:
        self.model_name = model or default_model()
        self.quantize = quantize
        self.query_threads = query_threads or QUERY_THREADS[quantize]
        self.fallback = fallback
        self.fallen_back: SentenceTransformerEmbedder | None = None
        """The sentence-transformers embedder in use when ONNX could not be (``fallback=True``)."""
        self.load_seconds: float | None = None
        """How long loading took (export included, the first time), once loaded."""
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_onnx_dir()
        self.cache_size = cache_size
        self.onnx_path: Path | None = None
        """The ONNX file in use, once loaded."""
        self._cache = VectorCache(cache_size, cache_bytes)
        self._loaded: _Session | None = None

    # -- loading --------------------------------------------------------------------------
    def _folder(self) -> Path:
        return local_folder(self.model_name)  # a hub name is fetched once, then cached

    def _load(self) -> _Session | SentenceTransformerEmbedder:
        """The ONNX session (loaded once), or the fallback embedder when it cannot be."""
        loaded = self._loaded or self.fallen_back
        if loaded is not None:
            return loaded
        key = (self.model_name, self.quantize, self.query_threads, str(self.cache_dir))
        with _OPEN_LOCK:
            if self._loaded is None and self.fallen_back is None:
                started = time.perf_counter()
                opened = _OPENED.get(key)
                if opened is None:
                    try:
                        opened = _OPENED[key] = self._open()
                    except (EmbedderError, OSError, RuntimeError, ValueError) as e:
                        if not threading.main_thread().is_alive():  # the interpreter exits:
                            raise EmbedderError(f"could not load {self}: exiting") from e
                        if not self.fallback:
                            if isinstance(e, EmbedderError):
                                raise
                            raise EmbedderError(f"could not load {self}: {e}") from e
                        warn_once(
                            "metallm embeds with sentence-transformers, not ONNX Runtime "
                            f"(2-5x slower per query): {e}"
                        )
                        self.fallen_back = SentenceTransformerEmbedder(self.model_name)
                        return self.fallen_back
                    logger.info(
                        "metallm loaded %s in %.2f s from %s",
                        self,
                        time.perf_counter() - started,
                        opened.path,
                    )
                self.onnx_path = opened.path
                self.load_seconds = time.perf_counter() - started
                self._loaded = opened
        return self._loaded or self.fallen_back  # type: ignore[return-value]

    def _open(self) -> _Session:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise EmbedderError(
                "OnnxEmbedder needs onnxruntime: pip install 'metallm[fast]'"
            ) from e
        folder = self._folder()
        path = self._exported(folder)
        config = json.loads((folder / "sentence_bert_config.json").read_text())
        max_length = int(config.get("max_seq_length", 256))

        def tokenizer(padding: bool) -> Any:
            # Two tokenizers, as padding is a tokenizer's state and calls may run at once.
            loaded = Tokenizer.from_file(str(folder / "tokenizer.json"))
            loaded.enable_truncation(max_length=max_length)
            if padding:
                loaded.enable_padding()  # to the longest text of the batch
            else:
                loaded.no_padding()
            return loaded

        modules = json.loads((folder / "modules.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens", False):
            raise EmbedderError(f"{folder}: only mean pooling is reproduced by OnnxEmbedder")

        def session(threads: int) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        return _Session(
            path=path,
            single_tokenizer=tokenizer(padding=False),
            batch_tokenizer=tokenizer(padding=True),
            single=session(self.query_threads),
            batch=session(0),
            dimension=int(pooling.get("word_embedding_dimension", 0)),
            normalize=any(m.get("type", "").endswith("Normalize") for m in modules),
        )

    def _exported(self, folder: Path) -> Path:
        """The cached ONNX file for this model (exported with torch the first time)."""
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]
        fp32 = self.cache_dir / f"{digest}.onnx"
        target = self.cache_dir / f"{digest}-int8.onnx" if self.quantize else fp32
        if target.is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not fp32.is_file():
            _export(folder, fp32)
        if self.quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = target.with_suffix(f".{os.getpid()}.tmp")
            quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8)
            os.replace(partial, target)
        return target

    # -- embedding ------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """The size of the vectors `embed` returns."""
        return self._load().dimension

    @property
    def variant(self) -> str:
        """What computes the vectors: ``onnx-fp32``, ``onnx-int8``, or ``""`` after a fallback.

        On-disk caches key vectors by it beside the model, so variants never share vectors.
        Only an embedder that may fall back loads the model to answer.
        """
        if self.fallback and isinstance(self._load(), SentenceTransformerEmbedder):
            return ""
        return "onnx-int8" if self.quantize else "onnx-fp32"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings (n, dim) of ``texts``, pooled and normalised as the model says."""
        loaded = self._load()
        if isinstance(loaded, SentenceTransformerEmbedder):
            return loaded.embed(texts)
        return self._cache.embed(check_texts(texts), self._run)

    def _run(self, texts: list[str]) -> np.ndarray:
        loaded = self._load()
        assert isinstance(loaded, _Session)
        one = len(texts) == 1
        tokenizer = loaded.single_tokenizer if one else loaded.batch_tokenizer
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        session = loaded.single if one else loaded.batch
        (hidden,) = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if loaded.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled, dtype=np.float64)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(model={self.model_name!r}, quantize={self.quantize})"


@dataclass(frozen=True)
class _Session:
    """A loaded model: tokenizers and sessions for one query and for batches, and how it pools."""

    path: Path
    single_tokenizer: Any
    batch_tokenizer: Any
    single: Any
    batch: Any
    dimension: int
    normalize: bool


def _export(folder: Path, target: Path) -> None:
    """Export the model's transformer to ONNX with torch (once per model; written atomically)."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise EmbedderError("exporting to ONNX needs torch and sentence-transformers") from e
    logger.info(
        "metallm is exporting %s to ONNX once (about 5 s; cached in %s)", folder, target.parent
    )
    bert: Any = SentenceTransformer(str(folder), device="cpu")[0].auto_model
    bert.eval()

    class _Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = torch.ones((1, 8), dtype=torch.long)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes (none matter here)
        torch.onnx.export(
            _Wrapper(),
            (sample, sample, torch.zeros_like(sample)),
            str(partial),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "tokens"}
                for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)
