"""An on-disk cache of embeddings, keyed by model and text, so a second run does not re-embed.

Stored in one SQLite file (``METALLM_CACHE_DIR`` or ``~/.cache/metallm``); each row holds
the float32 vector of one (model, text) pair.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metallm.embedding._embedders import Embedder, check_texts

__all__ = ["DiskCachedEmbedder", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$METALLM_CACHE_DIR``, else ``~/.cache/metallm``."""
    return Path(os.environ.get("METALLM_CACHE_DIR") or Path.home() / ".cache" / "metallm")


def _model_identity(name: str) -> str:
    """A hub name as is; a local folder by its content (the same weights anywhere share a key)."""
    folder = Path(name)
    if not folder.is_dir():
        return name
    digest = hashlib.sha256()
    for part in sorted(folder.rglob("*")):
        if part.is_file() and part.suffix in {".json", ".safetensors", ".bin", ".txt"}:
            digest.update(part.relative_to(folder).as_posix().encode())
            digest.update(str(part.stat().st_size).encode())
            with part.open("rb") as handle:
                digest.update(handle.read(1 << 20))
    return f"local:{digest.hexdigest()[:24]}"


class DiskCachedEmbedder:
    """Wraps an embedder; texts already embedded by the same model are read from disk.

    ``model_name`` identifies the model in the key (default: the wrapped embedder's
    ``model_name`` and ``variant``, e.g. ``onnx-int8``), so two models, or one model computed
    two ways, never share vectors.

    Args:
        embedder: The embedder to wrap.
        path: The cache's folder (None: the user's cache folder).
        model_name: The model's name in the cache's key (None: read from ``embedder``).
    """

    def __init__(
        self, embedder: Embedder, path: str | Path | None = None, *, model_name: str | None = None
    ) -> None:
        self.embedder = embedder
        variant = str(getattr(embedder, "variant", ""))
        self.model_name = model_name or _model_identity(
            str(getattr(embedder, "model_name", type(embedder).__name__))
        ) + (f"|{variant}" if variant else "")
        self.path = Path(path) if path is not None else default_cache_dir() / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
            )
        self.hits = 0
        self.misses = 0

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model_name}\0{text}".encode()).digest()

    @property
    def dimension(self) -> int:
        """The wrapped embedder's vector size."""
        return self.embedder.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``: cached rows read back, the rest embedded and stored."""
        items = check_texts(texts)
        keys = [self._key(t) for t in items]
        found: dict[bytes, np.ndarray] = {}
        with self._lock, self._connect() as db:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk
                ):
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        missing = list(dict.fromkeys((k, t) for k, t in zip(keys, items) if k not in found))
        self.hits += len(items) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = np.asarray(self.embedder.embed([t for _, t in missing]), dtype=np.float32)
            with self._lock, self._connect() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)",
                    [(k, v.tobytes()) for (k, _), v in zip(missing, vectors)],
                )
            for (k, _), v in zip(missing, vectors):
                found[k] = v
        return np.stack([found[k] for k in keys]).astype(np.float64)
